//! The phases of a run: each measures one figure (or a few) against its baseline.

#[allow(unused_imports)]
use super::*;

impl Bench {
    pub(super) async fn backend(&mut self, backend: &Backend) -> Result<(), BenchError> {
        let sizes = self.sizes.clone();
        // 1. The raw insert rate at each concurrency.
        let scratch = gateway::scratch_database(backend, &self.settings.dir).await?;
        let mut raw = HashMap::new();
        for c in sizes.levels {
            let m = baseline::raw_inserts(&scratch, sizes.baseline_rows, c, &format!("raw inserts c={c}")).await?;
            raw.insert(c, m.rate());
            let mut figure = Figure::rate(backend, format!("raw insert c={c}"), &m, "rows/s");
            if backend.key() == "sqlite" {
                figure = figure.detail(json!({ "settings": baseline::SQLITE_SETTINGS }));
            }
            self.figures.push(figure);
        }

        // 2. Intake against an `api` process on an empty database (concurrency 16 first, while
        // it is really empty: the figure the 100,000-stored one is compared with).
        let mut intake = self.deploy(backend, "intake").await?;
        self.clock();
        let startup = intake.start("api", &self.settings).await?;
        self.startup(backend, "api, empty database", startup);
        self.warm_up(&intake).await;
        let mut first = INTAKE_NUMBERS;
        for c in [16, 1, 64] {
            let n = if c == 1 { sizes.jobs / 4 } else { sizes.jobs };
            let before = self.batches(&intake, "accept").await;
            let m = self.intake(&intake, &format!("i{c}"), first, n, c).await;
            let batches = self.batches(&intake, "accept").await.since(before);
            first += n;
            let baseline = raw[&c];
            let figure = Figure::rate(backend, format!("intake c={c}"), &m, "req/s")
                .against(format!("raw insert c={c}"), baseline, "rows/s")
                .detail(json!({ "requests": n, "failed": m.failed, "batches": batches }));
            self.figures.push(figure);
        }
        intake.stop().await;
        self.memory(backend, &intake);

        // 3. End to end through Kannel, per process layout.
        let Some(kannel_rate) = self.kannel_baseline(backend).await? else { return Ok(()) };
        let mut layouts = vec![("api + 1 worker", 1), ("api + 2 workers", 2)];
        if backend.key() == "sqlite" {
            layouts.insert(0, ("serve", 0));
        }
        let mut kept = None;
        for (i, (layout, workers)) in layouts.into_iter().enumerate() {
            let mut d = self.deploy(backend, &format!("e2e{i}")).await?;
            self.clock();
            let startup = if workers == 0 {
                d.start("serve", &self.settings).await?
            } else {
                let s = d.start("api", &self.settings).await?;
                for _ in 0..workers {
                    d.start("worker", &self.settings).await?;
                }
                s
            };
            if workers == 0 {
                self.startup(backend, "serve, empty database", startup);
            }
            let figure = self.end_to_end(backend, &d, layout, kannel_rate).await?;
            self.figures.push(figure);
            d.stop().await;
            self.memory(backend, &d);
            if kept.is_none() {
                kept = Some(d);
            }
        }
        let mut d = kept.expect("at least one layout ran");

        // 4. Delivery reports for messages sent earlier, against an `api` process alone.
        let seeds = d.count("SELECT COUNT(*) FROM messages").await?.max(1) as usize;
        let overrides = [
            ("messages", "status", "'sent'"),
            ("messages", "final_at", "NULL"),
            ("messages", "status_at", "t.sent_at"),
        ];
        seed::copy_jobs(&d.store, "E2E", 'd', sizes.reports.div_ceil(seeds), &overrides).await?;
        let ids: Vec<String> =
            sqlx::query_scalar("SELECT id FROM messages WHERE status = 'sent' AND id LIKE '%~d%' ORDER BY id")
                .fetch_all(d.store.pool())
                .await?;
        let ids: Vec<String> = ids.into_iter().take(sizes.reports).collect();
        self.clock();
        d.start("api", &self.settings).await?;
        self.warm_up(&d).await;
        let dlr = format!(
            "{}/webhooks/kannel/dlr?token={}&status=1&answer=id%3A1+stat%3ADELIVRD+err%3A000&id=",
            d.base(),
            d.webhook_token
        );
        let before = self.batches(&d, "status").await;
        let m = drive("delivery reports", ids.len(), sizes.concurrency, |i| {
            let request = self.http.get(format!("{dlr}{}", ids[i]));
            async move { request.send().await.is_ok_and(|r| r.status().is_success()) }
        })
        .await;
        let batches = self.batches(&d, "status").await.since(before);
        let moved = d.count("SELECT COUNT(*) FROM messages WHERE status = 'delivered' AND id LIKE '%~d%'").await?;
        if moved as usize != ids.len() {
            eprintln!("  ! {moved} of {} delivery reports were recorded", ids.len());
        }
        let c = sizes.concurrency;
        self.figures.push(
            Figure::rate(backend, format!("delivery-report ingest c={c}"), &m, "reports/s")
                .against(format!("raw insert c={c}"), raw[&c], "rows/s")
                .detail(json!({ "reports": ids.len(), "failed": m.failed, "recorded": moved, "batches": batches })),
        );
        d.stop().await;

        // 5. Intake with `stored` jobs already there (copies of the finished end-to-end jobs).
        let have = d.count("SELECT COUNT(*) FROM outreach").await? as usize;
        let finished = d
            .count("SELECT COUNT(*) FROM outreach WHERE case_ref LIKE 'E2E%' AND case_ref NOT LIKE '%~%'")
            .await?
            .max(1) as usize;
        let copies = sizes.stored.saturating_sub(have).div_ceil(finished);
        let progress = load::Progress::start("storing jobs", sizes.stored);
        progress.set(have);
        seed::copy_jobs(&d.store, "E2E", 's', copies, &[]).await?;
        let stored = d.count("SELECT COUNT(*) FROM outreach").await? as usize;
        progress.set(stored);
        progress.finish();
        // Against a fresh empty database, measured in turns with it (half the requests each,
        // twice), so that the machine's other load falls on both alike.
        let mut empty = self.deploy(backend, "empty").await?;
        self.clock();
        empty.start("api", &self.settings).await?;
        let startup = d.start("api", &self.settings).await?;
        self.startup(backend, &format!("api, {} jobs stored", number(stored as f64)), startup);
        self.warm_up(&empty).await;
        self.warm_up(&d).await;
        let half = sizes.jobs / 2;
        let (mut on_empty, mut on_stored) = (None, None);
        for round in 0..2 {
            let first = STORED_NUMBERS + round * half;
            let e = self.intake(&empty, &format!("s{round}"), first, half, c).await;
            let s = self.intake(&d, &format!("s{round}"), first, half, c).await;
            on_empty = Some(match on_empty {
                Some(m) => Measured::sum(m, e),
                None => e,
            });
            on_stored = Some(match on_stored {
                Some(m) => Measured::sum(m, s),
                None => s,
            });
        }
        let (e, m) = (on_empty.expect("two rounds"), on_stored.expect("two rounds"));
        self.figures.push(
            Figure::rate(backend, format!("intake c={c}, {} jobs stored", number(stored as f64)), &m, "req/s")
                .against(format!("intake c={c}, empty database"), e.rate(), "req/s")
                .detail(json!({
                    "requests": 2 * half,
                    "failed": m.failed,
                    "stored": stored,
                    "empty_p50_ms": e.ms(50.0),
                    "empty_p99_ms": e.ms(99.0),
                    "empty_failed": e.failed,
                })),
        );
        empty.stop().await;
        d.stop().await;
        self.memory(backend, &d);
        Ok(())
    }

    /// The clock of the processes started next: the bench's Monday morning, moved on by the time
    /// the run has taken, so that every process's clock agrees with the others'.
    fn clock(&mut self) {
        let at = CLOCK.parse::<chrono::DateTime<chrono::Utc>>().expect("valid");
        let now = at + chrono::TimeDelta::from_std(self.started.elapsed()).unwrap_or_default();
        self.settings.clock = now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    }

    fn startup(&mut self, backend: &Backend, what: &str, took: Option<Duration>) {
        if let Some(took) = took {
            self.figures.push(Figure::new(backend, format!("start-up ({what})"), took.as_secs_f64() * 1000.0, "ms"));
        }
    }

    /// Peak memory of each role of a deployment, after it stopped.
    fn memory(&mut self, backend: &Backend, d: &Deployment) {
        for (role, kib) in &d.peak_rss_kib {
            let measure = format!("peak RSS {role}");
            let mib = *kib as f64 / 1024.0;
            match self.figures.iter_mut().find(|f| f.backend == backend.key() && f.measure == measure) {
                Some(f) => f.value = f.value.max(mib),
                None => self.figures.push(Figure::new(backend, measure, mib, "MiB")),
            }
        }
    }

    /// A few requests before measuring, so that connections are open and caches filled as in a
    /// process that has been running (not measured).
    async fn warm_up(&mut self, d: &Deployment) {
        self.warm_ups += 1;
        let n = (self.sizes.jobs / 10).max(4);
        let first = WARM_UP_NUMBERS + (self.warm_ups % 5) * 5_000;
        let m = self.intake(d, &format!("w{}", self.warm_ups), first, n, self.sizes.concurrency).await;
        if m.failed > 0 {
            eprintln!("  ! {} of {n} warm-up requests failed", m.failed);
        }
    }

    async fn intake(&self, d: &Deployment, tag: &str, first: usize, n: usize, concurrency: usize) -> Measured {
        let url = format!("{}/v1/outreach", d.base());
        drive(&format!("intake c={concurrency}"), n, concurrency, |i| {
            let request = self.http.post(&url).bearer_auth(&d.key).json(&load::mixed_job(tag, first + i));
            async move { request.send().await.is_ok_and(|r| r.status() == reqwest::StatusCode::ACCEPTED) }
        })
        .await
    }

    /// The group commits of the deployment's HTTP process so far (`batch`: accept or status),
    /// from its `/metrics`.
    async fn batches(&self, d: &Deployment, batch: &str) -> load::Batches {
        let text = match self.http.get(format!("{}/metrics", d.base())).send().await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        load::Batches::read(&text, batch)
    }

    /// A fresh deployment, sending SMS from a number of its own.
    async fn deploy(&mut self, backend: &Backend, name: &str) -> Result<Deployment, BenchError> {
        self.senders += 1;
        let sender = (self.sender_base + self.senders).to_string();
        Deployment::create(backend, name, &self.settings, sender).await
    }

    /// Kannel's own sendsms rate at the submitting concurrency, and how fast those messages
    /// reached the fake SMSC. None when there is no Kannel.
    async fn kannel_baseline(&mut self, backend: &Backend) -> Result<Option<f64>, BenchError> {
        self.senders += 1;
        let from = (self.sender_base + self.senders).to_string();
        let Some(k) = &self.kannel else { return Ok(None) };
        let (n, c) = (self.sizes.kannel_requests, self.sizes.concurrency);
        let mut log = smsc::MtLog::from_end(&k.mt_log)?;
        let started = Instant::now();
        let m = baseline::kannel_sendsms(&self.http, &k.sendsms, &k.user, &k.password, &from, n, c).await?;
        let mut tally = smsc::Tally::new(&from);
        let deadline = Instant::now() + Duration::from_secs(60);
        while tally.messages() < m.ok && Instant::now() < deadline {
            tally.add(&log.new_lines()?, Instant::now());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let at_smsc =
            tally.messages() as f64 / tally.last_arrival.map_or(f64::INFINITY, |t| (t - started).as_secs_f64());
        let figure = Figure::rate(backend, format!("Kannel sendsms c={c}"), &m, "req/s").detail(
            json!({ "requests": n, "failed": m.failed, "at_smsc": tally.messages(), "at_smsc_per_s": at_smsc }),
        );
        let rate = figure.value;
        self.figures.push(figure);
        Ok(Some(rate))
    }

    /// `e2e_jobs` SMS jobs submitted at the submitting concurrency: the rate from the first POST
    /// to the last message at the fake SMSC; each message's time from its POST to the SMSC; that
    /// each reached it exactly once; and when all their delivery reports were recorded.
    async fn end_to_end(
        &mut self,
        backend: &Backend,
        d: &Deployment,
        layout: &str,
        kannel_rate: f64,
    ) -> Result<Figure, BenchError> {
        let from = d.sender.clone();
        let k = self.kannel.as_ref().expect("checked by the caller");
        let (n, c) = (self.sizes.e2e_jobs, self.sizes.concurrency);
        let numbers: Vec<String> = (0..n).map(load::number).collect();
        // The deployment sends from its own number, so that only its messages are counted.
        let mut log = smsc::MtLog::from_end(&k.mt_log)?;
        let tally = Arc::new(Mutex::new(smsc::Tally::new(&from)));
        let watching = {
            let tally = tally.clone();
            tokio::spawn(async move {
                loop {
                    let lines = log.new_lines().unwrap_or_default();
                    tally.lock().expect("not poisoned").add(&lines, Instant::now());
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
        };
        let started = Instant::now();
        let posted: Arc<Mutex<Vec<Option<Instant>>>> = Arc::new(Mutex::new(vec![None; n]));
        let url = format!("{}/v1/outreach", d.base());
        let submitted = drive(&format!("end to end ({layout}): submit"), n, c, |i| {
            let request = self.http.post(&url).bearer_auth(&d.key).json(&load::sms_job("e2e", i));
            let posted = posted.clone();
            async move {
                posted.lock().expect("not poisoned")[i] = Some(Instant::now());
                request.send().await.is_ok_and(|r| r.status() == reqwest::StatusCode::ACCEPTED)
            }
        })
        .await;
        let deadline = started + Duration::from_secs(30) + Duration::from_millis(50) * n as u32;
        let progress = load::Progress::start(&format!("end to end ({layout}): at the SMSC"), n);
        loop {
            let reached = tally.lock().expect("not poisoned").check(&numbers).reached;
            progress.set(reached);
            if reached >= submitted.ok || Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        progress.finish();
        let progress = load::Progress::start(&format!("end to end ({layout}): reports recorded"), n);
        let mut recorded = 0;
        while Instant::now() < deadline {
            recorded = d.count("SELECT COUNT(*) FROM messages WHERE status = 'delivered'").await? as usize;
            progress.set(recorded);
            if recorded >= submitted.ok {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let reports_done = started.elapsed();
        progress.finish();
        // A little longer, for any message sent twice to show.
        tokio::time::sleep(Duration::from_millis(500)).await;
        watching.abort();
        // The worker's batches, where its metrics are served (`serve`: one process does it all; a
        // fresh deployment, so its totals are this run's).
        let worker_batches = if layout == "serve" {
            json!({"claim": self.batches(d, "claim").await, "record": self.batches(d, "record").await})
        } else {
            Value::Null
        };
        let tally = tally.lock().expect("not poisoned");
        let delivery = tally.check(&numbers);
        let posted = posted.lock().expect("not poisoned");
        let mut latency = load::histogram();
        for (i, number) in numbers.iter().enumerate() {
            if let (Some(sent), Some(arrived)) = (posted[i], tally.first_arrival(number)) {
                latency.saturating_record(arrived.saturating_duration_since(sent).as_micros() as u64);
            }
        }
        let took = tally.last_arrival.map_or(Duration::MAX, |t| t - started);
        let m = Measured { ok: delivery.reached, failed: submitted.failed, elapsed: took, latency };
        eprintln!(
            "  end to end ({layout}): dup {}, lost {}, reports recorded {recorded} of {}",
            delivery.duplicates, delivery.lost, delivery.reached
        );
        Ok(Figure::rate(backend, format!("end to end via Kannel ({layout})"), &m, "msg/s")
            .against("Kannel sendsms", kannel_rate, "req/s")
            .detail(json!({
                "jobs": n,
                "rejected": submitted.failed,
                "at_smsc": delivery.reached,
                "dup": delivery.duplicates,
                "lost": delivery.lost,
                "reports_recorded": recorded,
                "reports_recorded_after_s": reports_done.as_secs_f64(),
                "submit_rate": submitted.rate(),
                "worker_batches": worker_batches,
            })))
    }

    pub(super) fn results(&self, args: &BenchArgs) -> Value {
        json!({
            "date": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "machine": machine(),
            "git_commit": git_commit(),
            "command": std::env::var("SAFEREACH_BENCH_COMMAND").unwrap_or_else(|_| std::env::args().collect::<Vec<_>>().join(" ")),
            "build": build(),
            "smoke": args.smoke,
            "sizes": self.sizes,
            "run_seconds": self.started.elapsed().as_secs_f64(),
            "figures": self.figures,
        })
    }
}
