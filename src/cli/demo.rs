//! `safereach demo`: a fresh embedded set-up with staff, approved templates and an API key,
//! a handful of realistic jobs covering send, defer, hold and block, and a summary of what
//! happened. Then it keeps serving so that the results can be looked at.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use super::error::CliError;
use crate::app::{self, Role};
use crate::config::Config;
use crate::domain::OutreachRequest;
use crate::service::accept::AcceptResult;

const AUTHOR: &str = "alex.author";
const APPROVER: &str = "sam.approver";

pub async fn run(mut config: Config, dir: &Path, keep_serving: bool) -> Result<(), CliError> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::create_dir_all(dir)?;
    let dir = dir.canonicalize()?;
    config.database_url = format!("sqlite://{}", dir.join("safereach.db").display());
    config.outbox_dir = dir.join("outbox").display().to_string();
    // A sample on-call rota (fictional), unless one is configured.
    if config.oncall_sms.is_empty() && config.oncall_email.is_empty() {
        config.oncall_sms = vec![DEMO_ONCALL_SMS.into()];
        config.oncall_email = vec![DEMO_ONCALL_EMAIL.into()];
    }
    // Outside texting hours the texts would wait for the morning; the demo's own throw-away
    // database runs in the afternoon instead, so that the survey is sent and answered now.
    let shifted = daytime_clock(&config, chrono::Utc::now());
    if let Some(start) = shifted {
        config.clock = Some(start);
        config.allow_clock = true;
    }

    let running = app::start(config, Role::Serve, true).await?;
    let state = running.state.clone();
    let store = &state.store;
    let now = state.clock.now_ms();

    let Setup { passwords, approved, key } = set_up(store, now).await?;

    let mut answers = Vec::new();
    for (label, body) in example_jobs(state.clock.now()) {
        let request: OutreachRequest = serde_json::from_value(body.clone()).expect("demo jobs fit the schema");
        let request = request.validate().expect("demo jobs are valid");
        let answer = match crate::service::accept::accept(&state, &request, &body, "demo".into(), false).await? {
            AcceptResult::Created { answer, .. } | AcceptResult::Replayed { answer } => answer,
            AcceptResult::Conflict => continue,
        };
        answers.push((label, answer));
    }
    // Give the worker a moment to send what it may.
    for _ in 0..50 {
        let mut waiting = 0;
        for (_, answer) in &answers {
            let id = answer["outreach_id"].as_str().unwrap_or_default();
            if store.outreach(id).await?.is_some_and(|o| o.status == crate::domain::JobStatus::Queued) {
                waiting += 1;
            }
        }
        if waiting == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let base = running.addr.map(|a| format!("http://{a}")).unwrap_or_default();
    let survey_answer = answer_the_survey(&state, &base).await;
    if let Some(start) = shifted {
        println!(
            "\nIt is outside texting hours now: the demo's clock started at {} so that its texts go at once.",
            crate::time::rfc3339(start)
        );
    }
    println!(
        "\nsafereach demo: {} templates approved four-eyes ({AUTHOR} wrote, {APPROVER} approved)\n",
        approved.len()
    );
    println!("{:<8} {:<17} {:<9} {:<48} {:<33} now", "case", "kind", "decision", "reason", "channel / template");
    for (label, answer) in &answers {
        let d = &answer["decision"];
        let id = answer["outreach_id"].as_str().unwrap_or_default();
        let status = store.outreach(id).await?.map(|o| o.status.as_str()).unwrap_or_default();
        let route = match (d["channel"].as_str(), d["template"].as_str()) {
            (Some(c), Some(t)) => format!("{c} / {t}"),
            _ => "-".into(),
        };
        let reason = match d["not_before"].as_str() {
            Some(t) => format!("{} until {t}", d["reason"].as_str().unwrap_or("-")),
            None => d["reason"].as_str().unwrap_or("-").to_string(),
        };
        println!(
            "{:<8} {:<17} {:<9} {:<48} {:<33} {status}",
            answer["case_ref"].as_str().unwrap_or_default(),
            label,
            d["outcome"].as_str().unwrap_or_default(),
            reason,
            route
        );
    }
    if let Some(pretext) = store.case_messages("DEMO-1").await?.first().and_then(|m| m.body.clone()) {
        println!("\nThe discreet pre-text DEMO-1 was sent:\n  {pretext}");
    }
    if let Some(pack) = store.case_messages("DEMO-10").await?.first() {
        println!(
            "\nThe information pack DEMO-10 was sent by {} in {} (language {}):\n  {}",
            pack.channel,
            crate::domain::language::name(&pack.language),
            pack.language,
            pack.subject.as_deref().or(pack.body.as_deref()).unwrap_or_default()
        );
    }
    // The survey: sent, answered by a text through the sandbox callback, counted in the report.
    if let Some(classification) = survey_answer {
        println!(
            "\nDEMO-12's satisfaction survey was answered \"{SURVEY_ANSWER}\" by text (sandbox callback): {classification}"
        );
    }
    let month = state.clock.now().with_timezone(&state.policy.timezone).format("%Y-%m").to_string();
    if let Some(period) = crate::reports::Period::parse_month(&month) {
        let report = crate::reports::report(store, &state.policy, period).await?;
        let (survey, first) = (&report.survey, &report.contacted_within_24h);
        println!(
            "Report {month}: satisfaction survey {} sent, {} answered ({:.1}%), {} satisfied ({:.1}%); contacted within 24 hours: {} of {} referrals ({:.1}%)",
            survey.sent,
            survey.answered,
            survey.answered_percent,
            survey.satisfied,
            survey.satisfied_percent,
            first.count,
            report.contact.cases_referred,
            first.percent
        );
    }
    // Case memory: the follow-up on DEMO-1 says only burglary.
    if let Some((_, follow_up)) = answers.iter().find(|(label, _)| *label == FOLLOW_UP) {
        println!(
            "\nDEMO-1's follow-up pack says only `burglary`, but the case remembers it is a domestic-abuse case:\n  {} with {}",
            follow_up["decision"]["outcome"].as_str().unwrap_or_default(),
            follow_up["decision"]["template"].as_str().unwrap_or("no template"),
        );
    }
    if let Some(text) = distress_reply(&state).await? {
        println!(
            "\nDEMO-1's victim replied \"help he's here\": staff on call were texted at once (SAFEREACH_ONCALL_SMS), at any hour:\n  {text}"
        );
    }
    println!("\nSandbox outbox (what was \"sent\"): {}", state.config.outbox_dir);
    println!("  sms.jsonl, email/*.eml, letters/*.pdf");
    println!(
        "\nStaff logins: {}",
        passwords.iter().map(|(u, r, p)| format!("{u} ({r}) / {p}")).collect::<Vec<_>>().join(", ")
    );
    println!("API key (all scopes): {key}");
    println!("\nLook at:");
    println!("  curl -H 'Authorization: Bearer {key}' {base}/v1/cases/DEMO-1");
    println!("  {base}/readyz");
    println!("  {base}/staff/  (staff pages: log in with a staff login above)");
    println!(
        "  curl -X POST -H 'Content-Type: application/json' '{base}/webhooks/sandbox/status?token={}' -d '{{\"provider_ref\": \"<message id>\", \"status\": \"delivered\"}}'",
        state.webhooks.sandbox.as_deref().unwrap_or("<SAFEREACH_SANDBOX_WEBHOOK_TOKEN>")
    );
    if keep_serving {
        println!("\nServing on {base} until Ctrl-C.");
        running.until_signal().await;
    } else {
        running.stop().await;
    }
    Ok(())
}

const DEMO_ONCALL_SMS: &str = "07700 900919";
const DEMO_ONCALL_EMAIL: &str = "duty.manager@victimcare.example.org";

/// A distress reply from DEMO-1's number, as the sandbox would deliver it: it raises an urgent
/// item, and the on-call number is notified. What the text said, once a provider took it.
async fn distress_reply(state: &crate::service::AppState) -> Result<Option<String>, CliError> {
    let store = &state.store;
    let reply =
        crate::service::replies::receive_reply(state, "sandbox", "07700 900101", "help he's here", None, None).await?;
    let Some(item) = store.urgent_item_of_reply(reply["reply_id"].as_str().unwrap_or_default()).await? else {
        return Ok(None);
    };
    for _ in 0..50 {
        let notifications = store.oncall_notifications(&item.id).await?;
        if notifications.iter().any(|n| n.channel == "sms" && n.status == "sent") {
            let review = crate::domain::oncall::review_url(&state.config.public_url);
            return Ok(Some(crate::domain::oncall::notification_text(item.case_ref.as_deref(), &review)));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(None)
}

/// What `set_up` made: staff logins, the approval report lines, an API key with every scope.
pub struct Setup {
    pub passwords: Vec<(&'static str, &'static str, String)>,
    pub approved: Vec<String>,
    pub key: String,
}

/// A fresh database made ready to use: two staff users, the default templates (built into the
/// binary, so it runs from any directory) approved four-eyes, and an API key.
pub async fn set_up(store: &crate::store::Store, now: i64) -> Result<Setup, CliError> {
    let mut passwords = Vec::new();
    for (user, role) in [(AUTHOR, "author"), (APPROVER, "approver")] {
        let password = crate::store::random_token()[..20].to_string();
        crate::service::accounts::create_account(store, user, role, &password, now, super::error::CLI_ACTOR)
            .await
            .map_err(CliError::Usage)?;
        passwords.push((user, role, password));
    }
    crate::service::templates::load_defaults(store, AUTHOR, now).await?;
    let approved = crate::service::templates::approve_submitted(store, None, APPROVER, now).await?;
    let key = crate::service::accounts::create_api_key(
        store,
        "demo",
        &crate::http::auth::ALL_SCOPES.map(String::from),
        now,
        super::error::CLI_ACTOR,
    )
    .await?;
    Ok(Setup { passwords, approved, key })
}

/// The label of the job that shows case memory.
const FOLLOW_UP: &str = "follow-up pack";

/// The victim's reply to the demo's survey: very satisfied.
const SURVEY_ANSWER: &str = "5";
const SURVEY_NUMBER: &str = "07700 900112";

/// When the real time is outside quiet hours (London) and no clock was given: the middle of the
/// next texting window, for the demo's clock.
fn daytime_clock(config: &Config, now: chrono::DateTime<chrono::Utc>) -> Option<chrono::DateTime<chrono::Utc>> {
    use chrono::TimeZone;
    let tz = chrono_tz::Europe::London;
    let (open, close) = config.quiet_hours;
    let local = now.with_timezone(&tz);
    if config.clock.is_some() || (open..close).contains(&local.time()) {
        return None;
    }
    let day = if local.time() < open { local.date_naive() } else { local.date_naive() + chrono::TimeDelta::days(1) };
    let midday = day.and_time(open + (close - open) / 2);
    tz.from_local_datetime(&midday).earliest().map(|t| t.with_timezone(&chrono::Utc))
}

/// Once DEMO-12's survey is sent, its answer arrives as a provider would deliver it: a POST to
/// the sandbox's inbound callback. Returns the classification the gateway gave it.
async fn answer_the_survey(state: &crate::service::AppState, base: &str) -> Option<String> {
    let token = state.webhooks.sandbox.as_deref()?;
    let sent = state.store.case_messages("DEMO-12").await.ok()?.into_iter().any(|m| m.sent_at.is_some());
    if !sent {
        return None;
    }
    let http = crate::channels::http_client().ok()?;
    let reply = json!({ "from": SURVEY_NUMBER, "to": "60000", "body": SURVEY_ANSWER });
    let url = format!("{base}/webhooks/sandbox/inbound?token={token}");
    let answer: Value = http.post(url).json(&reply).send().await.ok()?.json().await.ok()?;
    answer["classification"].as_str().map(str::to_string)
}

/// Realistic jobs, one per interesting outcome, and a follow-up on the first case that shows the
/// case remembering what it is about. Names, numbers and addresses are fictional (Ofcom's drama
/// range 07700 900xxx, example.org, made-up streets).
fn example_jobs(now: chrono::DateTime<chrono::Utc>) -> Vec<(&'static str, Value)> {
    let referred = crate::time::rfc3339(now - chrono::TimeDelta::hours(2));
    let referral = json!({ "source": "police", "referred_at": referred, "local_authority": "Coventry" });
    vec![
        (
            "pre-text",
            json!({
                "request_id": "demo-1", "case_ref": "DEMO-1", "kind": "priority_pretext", "priority": true, "referral": referral,
                "crime": { "categories": ["domestic_abuse"], "summary": "assault by partner" },
                "victim": { "first_name": "Ana" },
                "contact": { "phones": [{ "number": "07700 900101", "belongs_to": "victim", "safe_to_text": true }], "preferred_method": "phone" },
                "personalisation": { "advocate_name": "Jo" }
            }),
        ),
        (
            "information pack",
            json!({
                "request_id": "demo-2", "case_ref": "DEMO-2", "kind": "information_pack", "referral": referral,
                "crime": { "categories": ["burglary"], "summary": "house broken into while away" },
                "victim": { "first_name": "Lee" },
                "contact": { "postal": { "name": "Lee Jones", "lines": ["2 Station Road", "Coventry"], "postcode": "CV1 2AB", "safe": true }, "preferred_method": "letter" },
                "consent": { "information_pack": true }
            }),
        ),
        (
            "information pack",
            json!({
                "request_id": "demo-3", "case_ref": "DEMO-3", "kind": "information_pack", "referral": referral,
                "crime": { "categories": ["theft"], "summary": "bike stolen from the station" },
                "victim": { "first_name": "Priya" },
                "contact": { "email": { "address": "priya@example.org", "safe": true }, "preferred_method": "email" },
                "consent": { "information_pack": true }
            }),
        ),
        (
            "information pack",
            json!({
                "request_id": "demo-4", "case_ref": "DEMO-4", "kind": "information_pack", "priority": true, "referral": referral,
                "crime": { "categories": ["serious_violence"] },
                "contact": { "phones": [{ "number": "07700 900104", "safe_to_text": true }], "preferred_method": "phone" },
                "consent": { "information_pack": true }
            }),
        ),
        (
            "pre-text",
            json!({
                "request_id": "demo-5", "case_ref": "DEMO-5", "kind": "priority_pretext", "referral": referral,
                "crime": { "categories": ["hate_crime"] },
                "contact": { "phones": [{ "number": "07700 900105", "belongs_to": "victim", "safe_to_text": false }] }
            }),
        ),
        (
            "information pack",
            json!({
                "request_id": "demo-6", "case_ref": "DEMO-6", "kind": "information_pack", "priority": false, "referral": referral,
                "crime": { "categories": ["criminal_damage"], "summary": "her ex-partner smashed the windows" },
                "contact": { "phones": [{ "number": "07700 900106", "safe_to_text": true }], "preferred_method": "sms" },
                "consent": { "information_pack": true }
            }),
        ),
        (
            "information pack",
            json!({
                "request_id": "demo-7", "case_ref": "DEMO-7", "kind": "information_pack", "referral": referral,
                "crime": { "categories": ["theft"] },
                "contact": { "email": { "address": "sam@example.org", "safe": true }, "preferred_method": "email" },
                "consent": { "information_pack": false }
            }),
        ),
        (
            "pre-text",
            json!({
                "request_id": "demo-8", "case_ref": "DEMO-8", "kind": "priority_pretext", "referral": referral,
                "crime": { "categories": ["robbery"] },
                "victim": { "first_name": "Max", "date_of_birth": "2011-05-05" },
                "contact": { "phones": [{ "number": "07700 900108", "safe_to_text": true }] }
            }),
        ),
        (
            "information pack",
            json!({
                "request_id": "demo-9", "case_ref": "DEMO-9", "kind": "information_pack", "referral": referral,
                "crime": { "categories": ["fraud"] },
                "contact": { "phones": [{ "number": "12345" }], "email": { "address": "not-an-email" }, "preferred_method": "email" },
                "consent": { "information_pack": true }
            }),
        ),
        (
            "information pack",
            json!({
                "request_id": "demo-10", "case_ref": "DEMO-10", "kind": "information_pack", "referral": referral,
                "crime": { "categories": ["burglary"], "summary": "shed broken into" },
                "victim": { "first_name": "Gwen", "language": "cy" },
                "contact": { "email": { "address": "gwen@example.org", "safe": true }, "preferred_method": "email" },
                "consent": { "information_pack": true }
            }),
        ),
        (
            // At the end of service: one question, answered by a text below.
            "survey",
            json!({
                "request_id": "demo-12", "case_ref": "DEMO-12", "kind": "satisfaction_survey", "referral": referral,
                "crime": { "categories": ["theft"], "summary": "phone taken on the bus" },
                "victim": { "first_name": "Sam" },
                "contact": { "phones": [{ "number": SURVEY_NUMBER, "belongs_to": "victim", "safe_to_text": true }] },
                "consent": { "survey": true }
            }),
        ),
        (
            // Says only burglary; DEMO-1 is a domestic-abuse case, so the pack is the discreet one.
            FOLLOW_UP,
            json!({
                "request_id": "demo-11", "case_ref": "DEMO-1", "kind": "information_pack", "referral": referral,
                "crime": { "categories": ["burglary"] },
                "victim": { "first_name": "Ana" },
                "contact": { "phones": [{ "number": "07700 900101", "belongs_to": "victim", "safe_to_text": true }], "preferred_method": "sms" },
                "consent": { "information_pack": true }
            }),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_night_the_demo_runs_in_the_next_afternoon_and_by_day_on_the_real_clock() {
        let config = Config::defaults();
        let at = |s: &str| s.parse::<chrono::DateTime<chrono::Utc>>().unwrap();
        // 22:30 and 06:00 in London (GMT in December): 14:00 the next day, and the same day.
        assert_eq!(daytime_clock(&config, at("2026-12-04T22:30:00Z")), Some(at("2026-12-05T14:00:00Z")));
        assert_eq!(daytime_clock(&config, at("2026-12-05T06:00:00Z")), Some(at("2026-12-05T14:00:00Z")));
        // 19:30 BST is inside texting hours; 07:30 BST is not.
        assert_eq!(daytime_clock(&config, at("2026-07-01T18:30:00Z")), None);
        assert_eq!(daytime_clock(&config, at("2026-07-01T06:30:00Z")), Some(at("2026-07-01T13:00:00Z")));
        // A clock given by the operator is left alone.
        let given = Config { clock: Some(at("2026-12-04T23:00:00Z")), ..Config::defaults() };
        assert_eq!(daytime_clock(&given, at("2026-12-04T22:30:00Z")), None);
    }
}
