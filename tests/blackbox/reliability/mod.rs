//! The reliability suite (RELIABILITY.md): each thing a victim support service must never do —
//! lose an outreach request, send a text twice, let a stranger read or change a case, fall over
//! on bad input — made a repeatable test that inflicts the fault at scale and reports figures.
//!
//! Every test runs at a default size inside `scripts/test.sh` (so the README's one test command
//! runs them), and at a full size with `SAFEREACH_RELIABILITY_SIZE=full`
//! (`scripts/reliability.sh --full`). Each writes its figures as JSON lines (one per run of a
//! fault on a backend) to `SAFEREACH_RELIABILITY_OUT`, or `target/reliability/figures.jsonl`;
//! `scripts/reliability.sh` turns them into RELIABILITY.md's table. Figures are written before
//! the test asserts on them, so that a failing run is in the table too.

mod access_matrix;
mod access_staff_roles;
mod access_webhooks;
mod backend_restarts;
mod fault_proxy;
mod gateway;
mod hostile_input;
mod hostile_values;
mod load;
mod provider_outage;
mod soak;
mod worker_crash;

use std::io::Write;
use std::path::PathBuf;

use serde_json::{Value, json};

/// `SAFEREACH_RELIABILITY_SIZE=full`: the sizes of RELIABILITY.md's figures.
pub fn full() -> bool {
    std::env::var("SAFEREACH_RELIABILITY_SIZE").is_ok_and(|s| s == "full")
}

/// `default` in the test suite, `full` for the figures.
pub fn sized<T>(default: T, full_size: T) -> T {
    if full() { full_size } else { default }
}

/// One row of the table: a fault inflicted on a backend, what it did to the work.
pub struct Figures {
    pub fault: &'static str,
    pub backend: &'static str,
    /// The size of the run: jobs, requests or combinations (`unit` says which).
    pub size: u64,
    pub unit: &'static str,
    /// Accepted work that never reached a final state or its recipient.
    pub lost: u64,
    /// Messages a recipient got more than once.
    pub doubled: u64,
    /// Answers 500 and above that should not have been (a 503 with `Retry-After` while a backend
    /// is down is the documented answer, counted apart in `detail`).
    pub server_errors: u64,
    /// Route × credential combinations checked (the access matrix).
    pub combinations: Option<u64>,
    /// Everything else worth reading: kills, times, rates, what each phase did.
    pub detail: Value,
}

impl Figures {
    /// Append this run's figures to the figures file.
    pub fn record(&self) {
        let line = json!({
            "fault": self.fault,
            "backend": self.backend,
            "size": self.size,
            "unit": self.unit,
            "full": full(),
            "lost": self.lost,
            "doubled": self.doubled,
            "server_errors": self.server_errors,
            "combinations": self.combinations,
            "detail": self.detail,
            "at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        });
        eprintln!("RELIABILITY {line}");
        let path = figures_file();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        // One write of one line to a file opened for appending: tests in parallel processes don't
        // interleave.
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&path).unwrap();
        file.write_all(format!("{line}\n").as_bytes()).unwrap();
    }

    /// Record, then hold the run to its goals: nothing lost, nothing doubled, no server error.
    pub fn record_and_check(&self) {
        self.record();
        assert_eq!(
            (self.lost, self.doubled, self.server_errors),
            (0, 0, 0),
            "{} on {}: lost, doubled, 5xx (details: {})",
            self.fault,
            self.backend,
            self.detail
        );
    }
}

fn figures_file() -> PathBuf {
    match std::env::var("SAFEREACH_RELIABILITY_OUT") {
        Ok(path) if !path.is_empty() => PathBuf::from(path),
        _ => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/reliability/figures.jsonl"),
    }
}
