//! Many processes of the real binary sharing one Postgres and one Redis: two `api` and two
//! `worker` processes take 2,000 jobs of mixed outcomes through both APIs at once; every job
//! reaches its expected state, every sendable one is sent exactly once, and each timeline is
//! complete and in order. The same load on the embedded default (one `serve`) gives a
//! comparison. A worker killed mid-run loses nothing and sends nothing twice; one stopped with
//! SIGTERM finishes what it holds and exits 0.
//!
//! `SAFEREACH_TEST_LOAD_JOBS` changes the load's size (CI runs the default 2,000).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use reqwest::StatusCode;
use safereach::store::Store;
use serde_json::{Value, json};

use crate::common::{fresh_postgres_database, read, service};

const BIN: &str = env!("CARGO_BIN_EXE_safereach");
/// Real time (SAFEREACH_CLOCK would start each process's clock at its own start, so events
/// written by different processes would not be in time order), with SMS allowed all day.
const QUIET_HOURS: &str = "00:00-23:59";

/// One deployment: a database (and maybe a Redis), an outbox shared by its workers, and the
/// processes started on it.
struct Deployment {
    dir: tempfile::TempDir,
    database_url: String,
    /// The hash key every process of the deployment is given.
    hash_key: String,
    token: String,
    redis_url: Option<String>,
    extra: Vec<(&'static str, String)>,
    processes: Vec<Process>,
}

struct Process {
    role: &'static str,
    child: Child,
    base: Option<String>,
}

impl Deployment {
    fn new(database_url: String, redis_url: Option<String>) -> Deployment {
        // The test's own HTTP client needs TLS set up, as the app's does.
        safereach::channels::install_crypto_provider();
        Deployment {
            dir: tempfile::tempdir().unwrap(),
            database_url,
            hash_key: safereach::secrets::generate(),
            token: safereach::secrets::generate(),
            redis_url,
            extra: Vec::new(),
            processes: Vec::new(),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("SAFEREACH_DATABASE_URL", &self.database_url)
            .env("SAFEREACH_OUTBOX_DIR", self.outbox())
            .env("SAFEREACH_SANDBOX_WEBHOOK_TOKEN", &self.token)
            .env("SAFEREACH_HASH_KEY", &self.hash_key)
            .env("SAFEREACH_BIND", "127.0.0.1:0")
            .env("SAFEREACH_QUIET_HOURS", QUIET_HOURS)
            .env("SAFEREACH_SHUTDOWN_TIMEOUT_SECS", "20")
            .env("RUST_LOG", "warn");
        if let Some(redis) = &self.redis_url {
            cmd.env("SAFEREACH_REDIS_URL", redis);
        }
        for (k, v) in &self.extra {
            cmd.env(k, v);
        }
        cmd
    }

    /// The deployment's database, opened as its processes do.
    async fn store(&self) -> Store {
        let key = safereach::store::HashKeySource::Given(self.hash_key.clone());
        Store::open(&self.database_url, false, &key).await.unwrap()
    }

    fn outbox(&self) -> PathBuf {
        self.dir.path().join("outbox")
    }

    /// Run a CLI command to completion; its stdout.
    fn run(&self, args: &[&str]) -> String {
        let out = self.command(args).env("SAFEREACH_PASSWORD", "a long test password").output().unwrap();
        assert!(out.status.success(), "safereach {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// Migrate, staff, approved templates, and an API key.
    fn set_up(&self) -> String {
        self.run(&["migrate"]);
        self.run(&["staff", "create", "--username", "ana.author", "--role", "author"]);
        self.run(&["staff", "create", "--username", "bo.approver", "--role", "approver"]);
        self.run(&["templates", "load", "message_templates", "--author", "ana.author"]);
        self.run(&["templates", "approve", "--all", "--as", "bo.approver", "--yes"]);
        let keys = self.run(&["keys", "create", "--name", "triage", "--scopes", "outreach:write,cases:read"]);
        keys.lines().last().unwrap().trim().to_string()
    }

    /// Start `role` (serve, api, worker); returns its index. HTTP roles answer on their address.
    fn start(&mut self, role: &'static str) -> usize {
        let n = self.processes.len();
        let log = std::fs::File::create(self.dir.path().join(format!("{role}-{n}.log"))).unwrap();
        let mut child =
            self.command(&[role, "--no-migrate"]).stdout(Stdio::piped()).stderr(Stdio::from(log)).spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("safereach listening on ") {
                    let _ = tx.send(addr.to_string());
                }
            }
        });
        let log = self.dir.path().join(format!("{role}-{n}.log"));
        let base = (role != "worker").then(|| {
            rx.recv_timeout(Duration::from_secs(30)).unwrap_or_else(|_| {
                panic!("{role} did not start:\n{}", std::fs::read_to_string(&log).unwrap_or_default())
            })
        });
        self.processes.push(Process { role, child, base });
        n
    }

    fn bases(&self) -> Vec<String> {
        self.processes.iter().filter_map(|p| p.base.clone()).collect()
    }

    fn signal(&self, i: usize, signal: &str) {
        let pid = self.processes[i].child.id().to_string();
        assert!(Command::new("kill").args([signal, &pid]).status().unwrap().success());
    }

    /// Wait for process `i` to exit; its status.
    fn wait_exit(&mut self, i: usize, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.processes[i].child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "{} did not stop within {within:?}", self.processes[i].role);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn sms_lines(&self) -> Vec<Value> {
        read_sms(&self.outbox())
    }

    /// No process logged a victim's number or name (the load's numbers all start +4477).
    fn assert_no_personal_data_logged(&self) {
        for entry in std::fs::read_dir(self.dir.path()).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "log") {
                let log = std::fs::read_to_string(&path).unwrap();
                for value in ["+4477", "Robin"] {
                    assert!(!log.contains(value), "{value} in {}", path.display());
                }
            }
        }
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        for p in &mut self.processes {
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
    }
}

fn read_sms(outbox: &Path) -> Vec<Value> {
    std::fs::read_to_string(outbox.join("sms.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object a line"))
        .collect()
}

/// Job `i` of the load and the status it must end in: a quarter each of send, defer (a safe
/// time window only on the day after tomorrow), hold (a minor) and block (a landline for a
/// pre-text).
fn job(i: usize, mix: bool) -> (Value, &'static str) {
    use chrono::Datelike;
    let later = (chrono::Utc::now().with_timezone(&chrono_tz::Europe::London) + chrono::Days::new(2)).weekday();
    let day = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"][later.num_days_from_monday() as usize];
    let mut body = json!({
        "request_id": format!("load-{i}"),
        "case_ref": format!("LOAD-{i:05}"),
        "kind": "priority_pretext",
        "crime": {"categories": ["robbery"]},
        "victim": {"first_name": "Robin"},
        "contact": {"phones": [{"number": format!("+4477{i:08}"), "belongs_to": "victim", "safe_to_text": true}]},
        "personalisation": {"advocate_name": "Jo"}
    });
    let kind = if mix { i % 4 } else { 0 };
    match kind {
        0 => (body, "sent"),
        1 => {
            body["contact"]["safe_times"] = json!([{"days": [day], "from": "10:00", "to": "12:00"}]);
            (body, "deferred")
        }
        2 => {
            body["victim"]["is_under_18"] = json!(true);
            (body, "held")
        }
        _ => {
            body["contact"]["phones"][0]["number"] = json!("0121 496 0000");
            (body, "blocked")
        }
    }
}

fn load_size() -> usize {
    std::env::var("SAFEREACH_TEST_LOAD_JOBS").ok().and_then(|n| n.parse().ok()).unwrap_or(2_000)
}

/// Sends are allowed until 23:59 London time: don't start a load just before midnight.
async fn not_at_midnight() {
    use chrono::Timelike;
    let london = chrono::Utc::now().with_timezone(&chrono_tz::Europe::London);
    if london.hour() == 23 && london.minute() >= 54 {
        tokio::time::sleep(Duration::from_secs(u64::from(60 - london.minute()) * 60 + 5)).await;
    }
}

/// Post `jobs` through the given APIs in turn, `concurrency` at a time. Every answer is 202.
async fn submit(bases: &[String], key: &str, jobs: &[(Value, &'static str)], concurrency: usize) {
    let http = reqwest::Client::new();
    let posts = jobs.iter().enumerate().map(|(i, (body, _))| {
        let url = format!("{}/v1/outreach", bases[i % bases.len()]);
        let request = http.post(url).bearer_auth(key).json(body);
        async move { read(request.send().await.expect("the API answers")).await }
    });
    let answers: Vec<(StatusCode, Value)> = futures::stream::iter(posts).buffer_unordered(concurrency).collect().await;
    for (status, answer) in answers {
        assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    }
}

/// Wait until `sent` jobs are sent (or `within` passes); how long it took.
async fn wait_sent(store: &Store, sent: i64, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outreach WHERE status IN ('sent', 'dead_lettered')")
            .fetch_one(store.pool())
            .await
            .unwrap();
        if n >= sent {
            return started.elapsed();
        }
        assert!(started.elapsed() < within, "only {n} of {sent} sent after {within:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every job in its expected status; every sendable one sent exactly once (outbox lines,
/// message ids, provider references); every timeline complete and in order.
async fn check_outcomes(store: &Store, outbox: &Path, jobs: &[(Value, &'static str)]) {
    let statuses: BTreeMap<String, String> =
        sqlx::query_as::<_, (String, String)>("SELECT request_id, status FROM outreach")
            .fetch_all(store.pool())
            .await
            .unwrap()
            .into_iter()
            .collect();
    assert_eq!(statuses.len(), jobs.len(), "every job stored once");
    let mut wrong = Vec::new();
    for (body, expected) in jobs {
        let got = &statuses[body["request_id"].as_str().unwrap()];
        if got != expected {
            wrong.push(format!("{}: {got}, expected {expected}", body["request_id"]));
        }
    }
    assert!(wrong.is_empty(), "{} jobs in the wrong state: {:?}", wrong.len(), &wrong[..wrong.len().min(10)]);

    let sendable = jobs.iter().filter(|(_, s)| *s == "sent").count();
    let lines = read_sms(outbox);
    let ids: BTreeSet<&str> = lines.iter().map(|l| l["id"].as_str().unwrap()).collect();
    let refs: BTreeSet<&str> = lines.iter().map(|l| l["provider_ref"].as_str().unwrap()).collect();
    assert_eq!((lines.len(), ids.len(), refs.len()), (sendable, sendable, sendable), "each sent exactly once");
    let recorded: Vec<String> = sqlx::query_scalar("SELECT provider_ref FROM messages WHERE status = 'sent'")
        .fetch_all(store.pool())
        .await
        .unwrap();
    assert_eq!(recorded.iter().map(String::as_str).collect::<BTreeSet<_>>(), refs, "what was sent is what is recorded");

    // Timelines: accepted first; a sent job then decided and sent once, last; times in order.
    let events: Vec<(String, i64, String, i64)> =
        sqlx::query_as("SELECT case_ref, id, type, at FROM events ORDER BY case_ref, id")
            .fetch_all(store.pool())
            .await
            .unwrap();
    let mut by_case: BTreeMap<String, Vec<(String, i64)>> = BTreeMap::new();
    for (case, _, kind, at) in events {
        by_case.entry(case).or_default().push((kind, at));
    }
    assert_eq!(by_case.len(), jobs.len());
    for (body, expected) in jobs {
        let case = body["case_ref"].as_str().unwrap();
        let timeline = &by_case[case];
        let kinds: Vec<&str> = timeline.iter().map(|(k, _)| k.as_str()).collect();
        assert!(timeline.windows(2).all(|w| w[0].1 <= w[1].1), "{case}: times out of order {timeline:?}");
        assert_eq!(kinds[0], "accepted", "{case}: {kinds:?}");
        if *expected == "sent" {
            assert_eq!(kinds.last(), Some(&"sent"), "{case}: {kinds:?}");
            assert_eq!(kinds.iter().filter(|k| **k == "sent").count(), 1, "{case}: {kinds:?}");
            assert!(kinds[1..kinds.len() - 1].iter().all(|k| *k == "decided"), "{case}: {kinds:?}");
        } else {
            assert_eq!(kinds, ["accepted"], "{case}");
        }
    }
}

/// The same timeline through the API, for a sample of cases.
async fn check_api_sample(base: &str, key: &str, jobs: &[(Value, &'static str)]) {
    let http = reqwest::Client::new();
    for (body, expected) in jobs.iter().step_by(97) {
        let case = body["case_ref"].as_str().unwrap();
        let (status, view) =
            read(http.get(format!("{base}/v1/cases/{case}")).bearer_auth(key).send().await.unwrap()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(view["outreach"][0]["status"], *expected, "{case}");
        let types: Vec<&str> =
            view["timeline"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(types.first(), Some(&"accepted"));
        if *expected == "sent" {
            assert_eq!(view["messages"][0]["provider_ref"], view["messages"][0]["id"]);
            assert_eq!(types.last(), Some(&"sent"));
        }
    }
}

async fn run_load(mut deployment: Deployment, roles: &[&'static str], concurrency: usize, label: &str) {
    let key = deployment.set_up();
    for role in roles {
        deployment.start(role);
    }
    let store = deployment.store().await;
    not_at_midnight().await;
    let jobs: Vec<(Value, &'static str)> = (0..load_size()).map(|i| job(i, true)).collect();
    let sendable = jobs.iter().filter(|(_, s)| *s == "sent").count() as i64;
    let started = Instant::now();
    submit(&deployment.bases(), &key, &jobs, concurrency).await;
    let accepted = started.elapsed();
    wait_sent(&store, sendable, Duration::from_secs(240)).await;
    let total = started.elapsed();
    eprintln!(
        "LOAD {label}: {} jobs ({sendable} sent) accepted in {:.1} s ({:.0}/s), all final in {:.1} s ({:.0} jobs/s)",
        jobs.len(),
        accepted.as_secs_f64(),
        jobs.len() as f64 / accepted.as_secs_f64(),
        total.as_secs_f64(),
        jobs.len() as f64 / total.as_secs_f64()
    );
    // Nothing more goes out after a pause (no job sent twice late).
    tokio::time::sleep(Duration::from_secs(1)).await;
    check_outcomes(&store, &deployment.outbox(), &jobs).await;
    check_api_sample(&deployment.bases()[0], &key, &jobs).await;
    for i in 0..deployment.processes.len() {
        deployment.signal(i, "-TERM");
        assert!(deployment.wait_exit(i, Duration::from_secs(30)).success(), "{} exits 0", deployment.processes[i].role);
    }
    deployment.assert_no_personal_data_logged();
}

#[tokio::test]
async fn two_apis_and_two_workers_on_postgres_and_redis_send_every_job_once() {
    let (Some(admin), Some(redis)) = (service("SAFEREACH_TEST_POSTGRES_URL"), service("SAFEREACH_TEST_REDIS_URL"))
    else {
        return;
    };
    let deployment = Deployment::new(fresh_postgres_database(&admin).await, Some(redis));
    run_load(deployment, &["api", "api", "worker", "worker"], 32, "postgres+redis, 2 api + 2 worker").await;
}

#[tokio::test]
async fn the_same_load_on_the_embedded_default_for_comparison() {
    let dir = tempfile::tempdir().unwrap();
    let deployment = Deployment::new(format!("sqlite://{}", dir.path().join("load.db").display()), None);
    run_load(deployment, &["serve"], 32, "sqlite, 1 serve").await;
}

#[tokio::test]
async fn a_killed_worker_loses_nothing_and_sends_nothing_twice_and_sigterm_finishes_in_flight_jobs() {
    let (Some(admin), Some(redis)) = (service("SAFEREACH_TEST_POSTGRES_URL"), service("SAFEREACH_TEST_REDIS_URL"))
    else {
        return;
    };
    let mut deployment = Deployment::new(fresh_postgres_database(&admin).await, Some(redis));
    // A short send lease, so that a send cut off by the kill is found in doubt within seconds.
    deployment.extra.push(("SAFEREACH_SEND_LEASE_SECS", "5".into()));
    deployment.extra.push(("RUST_LOG", "info".into()));
    // Few jobs at a time, so that the kill lands mid-run (at the default 64 the batched worker
    // can send all 600 before it) and so that what a killed worker held is a known bound.
    const CONCURRENCY: usize = 4;
    deployment.extra.push(("SAFEREACH_WORKER_CONCURRENCY", CONCURRENCY.to_string()));
    let key = deployment.set_up();
    not_at_midnight().await;
    deployment.start("api");
    let (a, b) = (deployment.start("worker"), deployment.start("worker"));
    let store = deployment.store().await;
    let jobs: Vec<(Value, &'static str)> = (0..600).map(|i| job(i, false)).collect();
    submit(&deployment.bases(), &key, &jobs, 16).await;

    // Mid-run: some sent, most not.
    let outbox = deployment.outbox();
    let deadline = Instant::now() + Duration::from_secs(60);
    while read_sms(&outbox).len() < 60 {
        assert!(Instant::now() < deadline, "sending did not start");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    deployment.signal(b, "-KILL");
    let killed_at = Instant::now();
    deployment.wait_exit(b, Duration::from_secs(10));
    let at_kill = deployment.sms_lines().len();
    assert!(at_kill < jobs.len(), "the kill came mid-run");
    // The orchestrator starts a new worker; then the first one is stopped while it is busy.
    deployment.start("worker");
    deployment.signal(a, "-TERM");
    let status = deployment.wait_exit(a, Duration::from_secs(30));
    assert!(status.success(), "SIGTERM: exit 0 after finishing jobs in flight, got {status:?}");
    wait_sent(&store, jobs.len() as i64, Duration::from_secs(120)).await;
    eprintln!(
        "KILL: {at_kill} of {} sent when the worker was killed; every job final {:.1} s after the kill",
        jobs.len(),
        killed_at.elapsed().as_secs_f64()
    );

    // Sends cut off by the kill are in doubt: dead-lettered for staff, never sent again by
    // themselves. Staff check the provider: those it never got are requeued (through the API) and
    // go once; one it did get stays as it is.
    let lines = deployment.sms_lines();
    let in_outbox: BTreeSet<String> = lines.iter().map(|l| l["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(lines.len(), in_outbox.len(), "nothing sent twice");
    let in_doubt: Vec<(String, String)> = sqlx::query_as(
        "SELECT o.id, m.id FROM outreach o JOIN messages m ON m.outreach_id = o.id WHERE o.status = 'dead_lettered'",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    eprintln!("KILL: {} send(s) in doubt", in_doubt.len());
    assert!(in_doubt.len() <= CONCURRENCY, "at most what the killed worker held: {in_doubt:?}");
    let http = reqwest::Client::new();
    let base = &deployment.bases()[0];
    let (status, listed) =
        read(http.get(format!("{base}/v1/dead-letters")).bearer_auth(&key).send().await.unwrap()).await;
    assert_eq!((status, listed["count"].as_u64()), (StatusCode::OK, Some(in_doubt.len() as u64)), "{listed}");
    let mut requeued = 0;
    for (outreach_id, message_id) in &in_doubt {
        if !in_outbox.contains(message_id) {
            let url = format!("{base}/v1/outreach/{outreach_id}/requeue");
            let (status, answer) = read(http.post(url).bearer_auth(&key).send().await.unwrap()).await;
            assert_eq!((status, answer["status"].as_str()), (StatusCode::OK, Some("queued")), "{answer}");
            requeued += 1;
        }
    }
    if requeued > 0 {
        deployment.start("worker");
    }
    let expected_sent = (jobs.len() - (in_doubt.len() - requeued)) as i64;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let sent: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outreach WHERE status = 'sent'")
            .fetch_one(store.pool())
            .await
            .unwrap();
        if sent == expected_sent {
            break;
        }
        assert!(Instant::now() < deadline, "{sent} of {expected_sent} sent");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let lines = deployment.sms_lines();
    let ids: BTreeSet<&str> = lines.iter().map(|l| l["id"].as_str().unwrap()).collect();
    assert_eq!((lines.len(), ids.len()), (jobs.len(), jobs.len()), "every job reached the provider exactly once");
    deployment.assert_no_personal_data_logged();
}

/// Issue 18: the process that recorded an urgent reply is killed before anything was sent (the
/// `api` role alone: no worker); a worker started afterwards notifies the on-call number, once.
async fn an_urgent_reply_recorded_just_before_a_kill_still_notifies_on_call_once(mut deployment: Deployment) {
    const ONCALL: &str = "+447700900971";
    const NEXT: &str = "+447700900972";
    deployment.extra.push(("SAFEREACH_ONCALL_SMS", format!("{ONCALL},{NEXT}")));
    deployment.extra.push(("RUST_LOG", "info".into()));
    let key = deployment.set_up();
    // The victim was texted first, so that the reply finds its case.
    let serve = deployment.start("serve");
    let job = json!({
        "request_id": "kill-oncall-1", "case_ref": "KILL-OC-1", "kind": "priority_pretext",
        "crime": {"categories": ["robbery"]},
        "contact": {"phones": [{"number": "+447700900555", "belongs_to": "victim", "safe_to_text": true}]}
    });
    let http = reqwest::Client::new();
    let base = deployment.bases()[0].clone();
    let (status, _) =
        read(http.post(format!("{base}/v1/outreach")).bearer_auth(&key).json(&job).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let deadline = Instant::now() + Duration::from_secs(30);
    while deployment.sms_lines().is_empty() {
        assert!(Instant::now() < deadline, "the pre-text was never sent");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    deployment.signal(serve, "-TERM");
    assert!(deployment.wait_exit(serve, Duration::from_secs(30)).success());

    // Only the HTTP side: the reply is recorded, and killed at once after the answer.
    let api = deployment.start("api");
    let base = deployment.bases().last().unwrap().clone();
    let url = format!("{base}/webhooks/sandbox/inbound?token={}", deployment.token);
    let (status, reply) =
        read(http.post(url).json(&json!({"from": "07700 900555", "body": "help he's here"})).send().await.unwrap())
            .await;
    deployment.signal(api, "-KILL");
    deployment.wait_exit(api, Duration::from_secs(10));
    assert_eq!(
        (status, reply["classification"].as_str(), reply["matched"].as_bool()),
        (StatusCode::OK, Some("distress"), Some(true))
    );
    let outbox = deployment.outbox();
    let to = |number: &str| read_sms(&outbox).into_iter().filter(|l| l["to"] == number).count();
    assert_eq!(to(ONCALL), 0, "nothing was sent before the kill");

    deployment.start("worker");
    let started = Instant::now();
    // Within a second, unless the kill caught the api's relay between claiming the outbox row
    // and handing it to the queue: then the row waits out the relay's 15-second lease.
    while to(ONCALL) == 0 {
        assert!(started.elapsed() < Duration::from_secs(30), "the on-call number was never notified");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("KILL-ONCALL: notified {:.2} s after the worker started", started.elapsed().as_secs_f64());
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!((to(ONCALL), to(NEXT)), (1, 0), "notified exactly once; the escalation waits 15 minutes");
    let line = deployment.sms_lines().into_iter().find(|l| l["to"] == ONCALL).unwrap();
    assert!(line["body"].as_str().unwrap().contains("Case KILL-OC-1. Review: "), "{line}");
    let store = deployment.store().await;
    let statuses: Vec<String> =
        sqlx::query_scalar("SELECT status FROM oncall_notifications").fetch_all(store.pool()).await.unwrap();
    assert_eq!(statuses, ["sent"]);
    // The on-call numbers are staff data: in no log.
    for entry in std::fs::read_dir(deployment.dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "log") {
            let log = std::fs::read_to_string(&path).unwrap();
            assert!(!log.contains("900971") && !log.contains("900972"), "an on-call number in {}", path.display());
            assert!(!log.contains("he's here"), "the reply in {}", path.display());
        }
    }
}

#[tokio::test]
async fn an_urgent_reply_survives_a_kill_on_the_embedded_default() {
    let dir = tempfile::tempdir().unwrap();
    let deployment = Deployment::new(format!("sqlite://{}", dir.path().join("kill.db").display()), None);
    an_urgent_reply_recorded_just_before_a_kill_still_notifies_on_call_once(deployment).await;
}

#[tokio::test]
async fn an_urgent_reply_survives_a_kill_on_postgres_and_redis() {
    let (Some(admin), Some(redis)) = (service("SAFEREACH_TEST_POSTGRES_URL"), service("SAFEREACH_TEST_REDIS_URL"))
    else {
        return;
    };
    let deployment = Deployment::new(fresh_postgres_database(&admin).await, Some(redis));
    an_urgent_reply_recorded_just_before_a_kill_still_notifies_on_call_once(deployment).await;
}
