//! Hostile values in valid jobs: generated first names and personalisation (template syntax such
//! as `{{#each x}}` and `{{> partial}}`, CR/LF and `\r\nBcc:`, control and bidi characters, SQL)
//! in pre-texts by SMS and information packs by email, accepted and sent by the worker through the
//! sandbox providers. Every message sent must be exactly the approved wording with each value put
//! in literally (on one line; GSM-7 for SMS; HTML-escaped in the HTML part), and every email must
//! carry exactly the headers of a message with plain values: no template code runs, no header is
//! added.
//!
//! The expected text is not computed by the renderer under test: two reference jobs with plain
//! placeholder values are sent first, and each hostile message must equal its reference with the
//! placeholders replaced by the values. The email wording here puts the first name in the subject
//! too (a header), as staff may write it.

use std::collections::BTreeMap;

use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config as RunnerConfig, TestRng, TestRunner};
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::hostile_input::hostile_text;
use super::{Figures, sized};
use crate::common::{APPROVER, AUTHOR, Options, TestApp, spawn_with, templates_dir};

const MONDAY_10AM: &str = "2026-11-23T10:00:00Z";
const FIRST: &str = "Qzfirstq";
const ADVOCATE: &str = "Qzadvocateq";

/// A job that the policy sends: a robbery victim's own safe mobile, or their safe email address.
fn job(n: u64, by_email: bool, first_name: &str, advocate: &str) -> Value {
    let mut job = json!({
        "request_id": format!("hv-{n}"),
        "case_ref": format!("HV-{n}"),
        "crime": {"categories": ["robbery"]},
        "victim": {"first_name": first_name},
        "personalisation": {"advocate_name": advocate},
    });
    if by_email {
        job["kind"] = json!("information_pack");
        job["contact"] = json!({"email": {"address": address(n), "safe": true}, "preferred_method": "email"});
        job["consent"] = json!({"information_pack": true});
    } else {
        job["kind"] = json!("priority_pretext");
        job["contact"] = json!({"phones": [{"number": number(n), "belongs_to": "victim", "safe_to_text": true}]});
    }
    job
}

fn number(n: u64) -> String {
    format!("+4477{:08}", n)
}

fn address(n: u64) -> String {
    format!("hv{n}@example.org")
}

/// What the service promises to do to a value: whitespace and control characters (line breaks)
/// become single spaces (templates/render.rs, `one_line`).
fn one_line(text: &str) -> String {
    text.split(|c: char| c.is_whitespace() || c.is_control()).filter(|w| !w.is_empty()).collect::<Vec<_>>().join(" ")
}

/// A sent email as the recipient's program reads it (parsed once).
#[derive(Debug)]
struct Email {
    /// The names of its headers, in order: a header added by a value shows here.
    header_names: Vec<String>,
    /// `From` and `To` (display name and address), and the subject, decoded.
    from: (Option<String>, Option<String>),
    to: Option<String>,
    subject: String,
    text: String,
    html: String,
    attachments: usize,
}

fn parse_email(eml: &str) -> Email {
    let parsed = mail_parser::MessageParser::default().parse(eml.as_bytes()).expect("an .eml parses");
    let from = parsed.from().and_then(|a| a.first()).expect("a From");
    Email {
        header_names: parsed.headers().iter().map(|h| h.name().to_ascii_lowercase()).collect(),
        from: (from.name().map(String::from), from.address().map(String::from)),
        to: parsed.to().and_then(|a| a.first()).and_then(|a| a.address()).map(String::from),
        subject: parsed.subject().expect("a subject").to_string(),
        text: parsed.body_text(0).expect("a text part").into_owned(),
        html: parsed.body_html(0).expect("an HTML part").into_owned(),
        attachments: parsed.attachments().count(),
    }
}

/// The outbox's SMS bodies by number, and every email by its `To`.
fn outbox(app: &TestApp) -> (BTreeMap<String, Vec<String>>, BTreeMap<String, Vec<Email>>) {
    let mut sms: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for m in app.sent_sms() {
        sms.entry(m["to"].as_str().unwrap().to_string()).or_default().push(m["body"].as_str().unwrap().to_string());
    }
    let mut email: BTreeMap<String, Vec<Email>> = BTreeMap::new();
    for entry in std::fs::read_dir(app.outbox().join("email")).into_iter().flatten() {
        let parsed = parse_email(&std::fs::read_to_string(entry.unwrap().path()).unwrap());
        email.entry(parsed.to.clone().unwrap_or_default()).or_default().push(parsed);
    }
    (sms, email)
}

/// The default wording, approved, with the first name in the email information pack's subject.
async fn approve_wording(app: &TestApp) {
    let mut sources = safereach::templates::load_dir(&templates_dir()).unwrap();
    sources.retain(|s| s.language == "en");
    let pack =
        sources.iter_mut().find(|s| s.name == "information_pack" && s.channel == safereach::domain::Channel::Email);
    pack.unwrap().content.subject = Some("Your information pack{{#if first_name}}, {{first_name}}{{/if}}".into());
    let (store, now) = (&app.state.store, app.state.clock.now_ms());
    safereach::service::templates::load_sources(store, &sources, AUTHOR, now).await.unwrap();
    safereach::service::templates::approve_submitted(store, None, APPROVER, now).await.unwrap();
}

async fn queued(app: &TestApp) -> i64 {
    sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM outreach WHERE status = 'queued'")
        .fetch_one(app.state.store.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn hostile_values_in_accepted_jobs_are_sent_literally_and_add_no_header() {
    let jobs: u64 = sized(400, 10_000);
    let app =
        spawn_with(Options { clock: Some(MONDAY_10AM.into()), approve_templates: false, ..Options::default() }).await;
    approve_wording(&app).await;

    // The references: one SMS and one email with plain placeholders.
    for (n, by_email) in [(0, false), (1, true)] {
        let (status, answer) = app.post_outreach(&job(n, by_email, FIRST, ADVOCATE)).await;
        assert_eq!((status, answer["decision"]["outcome"].as_str()), (StatusCode::ACCEPTED, Some("send")), "{answer}");
    }
    app.wait_for_message("HV-0", "sent").await;
    app.wait_for_message("HV-1", "sent").await;
    let (sms, email) = outbox(&app);
    let sms_reference = sms[&number(0)][0].clone();
    let reference = &email[&address(1)][0];
    assert_eq!(reference.subject, format!("Your information pack, {FIRST}"));
    for placeholder in [FIRST, ADVOCATE] {
        assert_eq!(sms_reference.matches(placeholder).count(), 1, "{sms_reference}");
        assert_eq!(reference.text.matches(placeholder).count(), 1, "{}", reference.text);
        assert_eq!(reference.html.matches(placeholder).count(), 1, "{}", reference.html);
    }

    // The hostile jobs. A value starts with a letter, so that `{{#if first_name}}` takes the same
    // branch as in the reference; the rest is generated, up to 60 characters.
    let value = hostile_text().prop_map(|text| format!("x{}", text.chars().take(60).collect::<String>()));
    let seed: [u8; 32] = rand::random();
    eprintln!("seed {}", seed.iter().map(|b| format!("{b:02x}")).collect::<String>());
    let mut runner = TestRunner::new_with_rng(
        RunnerConfig::default(),
        TestRng::from_seed(proptest::test_runner::RngAlgorithm::ChaCha, &seed),
    );
    let mut accepted: Vec<(u64, bool, String, String)> = Vec::new();
    let mut answers: BTreeMap<u16, u64> = BTreeMap::new();
    for n in 2..jobs + 2 {
        let first = value.new_tree(&mut runner).unwrap().current();
        let advocate = value.new_tree(&mut runner).unwrap().current();
        let by_email = n % 2 == 1;
        let (status, answer) = app.post_outreach(&job(n, by_email, &first, &advocate)).await;
        *answers.entry(status.as_u16()).or_default() += 1;
        if status == StatusCode::ACCEPTED {
            assert_eq!(answer["decision"]["outcome"], "send", "{answer}");
            accepted.push((n, by_email, first, advocate));
        }
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(sized(120, 900));
    while queued(&app).await > 0 {
        assert!(std::time::Instant::now() < deadline, "{} jobs still queued", queued(&app).await);
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }

    let (sms, sent_email) = outbox(&app);
    let (mut literal, mut lost, mut doubled, mut header_sets) = (0u64, 0u64, 0u64, 0u64);
    let mut mismatches: Vec<String> = Vec::new();
    for (n, by_email, first, advocate) in &accepted {
        let (first, advocate) = (one_line(first), one_line(advocate));
        // How many copies, and what was sent when it is not what it should be.
        let (copies, wrong) = if *by_email {
            let Some(sent) = sent_email.get(&address(*n)) else {
                lost += 1;
                continue;
            };
            let e = &sent[0];
            let same_headers = e.header_names == reference.header_names
                && e.subject == reference.subject.replace(FIRST, &first)
                && e.from == reference.from
                && e.to.as_deref() == Some(address(*n).as_str());
            header_sets += u64::from(same_headers);
            let escape = handlebars::html_escape;
            let matches = same_headers
                && e.attachments == 0
                && e.text == reference.text.replace(FIRST, &first).replace(ADVOCATE, &advocate)
                && e.html == reference.html.replace(FIRST, &escape(&first)).replace(ADVOCATE, &escape(&advocate));
            (sent.len(), (!matches).then(|| format!("{e:?}")))
        } else {
            let Some(sent) = sms.get(&number(*n)) else {
                lost += 1;
                continue;
            };
            let gsm = safereach::domain::sms::downgrade_to_gsm;
            let matches = sent[0] == sms_reference.replace(FIRST, &gsm(&first)).replace(ADVOCATE, &gsm(&advocate));
            (sent.len(), (!matches).then(|| format!("{:?}", sent[0])))
        };
        doubled += copies as u64 - 1;
        match wrong {
            None => literal += 1,
            Some(seen) if mismatches.len() < 3 => mismatches.push(format!("job {n} ({first:?}, {advocate:?}): {seen}")),
            Some(_) => {}
        }
    }
    let emails = accepted.iter().filter(|j| j.1).count() as u64;
    Figures {
        fault: "hostile values in accepted jobs (sent literally, no header added)",
        backend: "SQLite",
        size: jobs,
        unit: "jobs",
        lost,
        doubled,
        server_errors: answers.range(500..).map(|(_, n)| n).sum(),
        combinations: None,
        detail: json!({"answers": answers, "accepted": accepted.len(), "emails": emails,
                       "sent_literally": literal, "emails_with_the_reference_headers": header_sets,
                       "first_mismatches": mismatches}),
    }
    .record_and_check();
    // Values are at most 61 characters, well inside the request's limits: all are taken.
    assert_eq!(accepted.len() as u64, jobs, "answers: {answers:?}");
    assert_eq!(header_sets, emails, "every email has exactly the reference's headers");
    assert_eq!(
        literal,
        accepted.len() as u64,
        "every message is the wording with the values put in literally: {mismatches:?}"
    );
    app.stop().await;
}
