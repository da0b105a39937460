//! Every public example decision, driven through POST /v1/outreach. The copy in
//! tests/fixtures keeps a fresh clone testable; ../shared's file, when present, adds new ones.

use std::collections::BTreeMap;
use std::path::PathBuf;

use reqwest::StatusCode;
use serde_json::Value;

use crate::common::spawn_at;

const DEFAULT_CLOCK: &str = "2026-11-23T10:00:00Z";

fn scenarios() -> Vec<Value> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut by_name = BTreeMap::new();
    for file in [root.join("tests/fixtures/scenarios.json"), root.join("../shared/contract/examples/scenarios.json")] {
        let Ok(text) = std::fs::read_to_string(&file) else { continue };
        let doc: Value = serde_json::from_str(&text).expect("scenarios file is JSON");
        for s in doc["scenarios"].as_array().expect("scenarios list") {
            by_name.insert(s["name"].as_str().expect("named").to_string(), s.clone());
        }
    }
    by_name.into_values().collect()
}

on_backends! {
    sqlite, postgres_redis;
    async fn every_public_scenario_is_decided_as_expected() {
        let all = scenarios();
        assert!(all.len() >= 7, "the fixture holds the seven public examples");
        // One app per clock: SAFEREACH_CLOCK is per process.
        let mut by_clock: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for s in all {
            let clock = s["clock"].as_str().unwrap_or(DEFAULT_CLOCK).to_string();
            by_clock.entry(clock).or_default().push(s);
        }
        let mut failures = Vec::new();
        for (clock, list) in by_clock {
            let app = spawn_at(&clock).await;
            for s in list {
                let (status, answer) = app.post_outreach(&s["request"]).await;
                if status != StatusCode::ACCEPTED {
                    failures.push(format!("{}: status {status}: {answer}", s["name"]));
                    continue;
                }
                let decision = &answer["decision"];
                for (field, expected) in s["expect"].as_object().expect("expect object") {
                    if &decision[field] != expected {
                        failures.push(format!("{}: {field} was {} not {expected}", s["name"], decision[field]));
                    }
                }
                let status_for = match decision["outcome"].as_str() {
                    Some("send") => "queued",
                    Some("defer") => "deferred",
                    Some("hold") => "held",
                    _ => "blocked",
                };
                assert_eq!(answer["status"], status_for, "{}", s["name"]);
            }
            app.stop().await;
        }
        assert!(failures.is_empty(), "scenario failures:\n{}", failures.join("\n"));
    }
}
