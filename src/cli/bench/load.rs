//! The load generator: runs an operation N times, C at a time, timing each into an HDR
//! histogram, with a progress line on stderr; and the job bodies it submits.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use hdrhistogram::Histogram;
use serde_json::{Value, json};

/// Latencies are recorded in microseconds, up to ten minutes, to three significant figures.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

/// What a load did: how many operations succeeded, how long it took, and their latencies.
pub struct Measured {
    pub ok: usize,
    pub failed: usize,
    pub elapsed: Duration,
    pub latency: Histogram<u64>,
}

impl Measured {
    /// Successful operations a second.
    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Two loads taken as one: their operations, times and latencies added up.
    pub fn sum(mut a: Measured, b: Measured) -> Measured {
        a.ok += b.ok;
        a.failed += b.failed;
        a.elapsed += b.elapsed;
        // Both have the same bounds, so adding cannot fail.
        let _ = a.latency.add(&b.latency);
        a
    }

    /// The latency at percentile `p` (0–100), in milliseconds.
    pub fn ms(&self, p: f64) -> f64 {
        self.latency.value_at_percentile(p) as f64 / 1000.0
    }
}

/// A gateway's group commits (its `safereach_batch_size` histogram): how many transactions,
/// how many items in them, and how many transactions held at most each bucket's size.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Batches {
    pub transactions: f64,
    pub items: f64,
    pub mean_size: f64,
    /// (size at most, transactions), cumulative as Prometheus gives them.
    pub at_most: Vec<(f64, f64)>,
}

impl Batches {
    /// From Prometheus text, the histogram's series for `batch`.
    pub fn read(text: &str, batch: &str) -> Batches {
        let label = format!("batch=\"{batch}\"");
        let value = |line: &str| line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        let mut b = Batches::default();
        for line in text.lines().filter(|l| l.starts_with("safereach_batch_size") && l.contains(&label)) {
            if line.starts_with("safereach_batch_size_sum") {
                b.items = value(line);
            } else if line.starts_with("safereach_batch_size_count") {
                b.transactions = value(line);
            } else if let Some(le) = line.split("le=\"").nth(1).and_then(|r| r.split('"').next()) {
                b.at_most.push((le.parse().unwrap_or(f64::INFINITY), value(line)));
            }
        }
        b.mean_size = b.mean();
        b
    }

    fn mean(&self) -> f64 {
        if self.transactions > 0.0 { self.items / self.transactions } else { 0.0 }
    }

    /// What happened between `before` and this.
    pub fn since(mut self, before: Batches) -> Batches {
        self.transactions -= before.transactions;
        self.items -= before.items;
        for ((_, n), (_, was)) in self.at_most.iter_mut().zip(&before.at_most) {
            *n -= was;
        }
        self.mean_size = self.mean();
        self
    }
}

/// Run `op(i)` for every `i` in `0..n`, `concurrency` at a time; `op` answers whether it worked.
pub async fn drive<F, Fut>(label: &str, n: usize, concurrency: usize, op: F) -> Measured
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = bool>,
{
    let progress = Progress::start(label, n);
    let started = Instant::now();
    let mut latency = histogram();
    let (mut ok, mut failed) = (0, 0);
    let mut results = futures::stream::iter((0..n).map(|i| {
        let fut = op(i);
        async move {
            let t = Instant::now();
            let worked = fut.await;
            (t.elapsed(), worked)
        }
    }))
    .buffer_unordered(concurrency.max(1));
    while let Some((took, worked)) = results.next().await {
        latency.saturating_record(took.as_micros() as u64);
        if worked {
            ok += 1;
        } else {
            failed += 1;
        }
        progress.add(1);
    }
    let elapsed = started.elapsed();
    progress.finish();
    Measured { ok, failed, elapsed, latency }
}

/// A line on stderr, rewritten in place every half second: what runs, how far it got.
pub struct Progress {
    done: Arc<AtomicUsize>,
    ticker: tokio::task::JoinHandle<()>,
    label: String,
    total: usize,
    started: Instant,
}

impl Progress {
    pub fn start(label: &str, total: usize) -> Progress {
        let done = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let (counter, line) = (done.clone(), label.to_string());
        let ticker = tokio::spawn(async move {
            loop {
                print_progress(&line, counter.load(Ordering::Relaxed), total, started.elapsed(), false);
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
        Progress { done, ticker, label: label.to_string(), total, started }
    }

    pub fn add(&self, n: usize) {
        self.done.fetch_add(n, Ordering::Relaxed);
    }

    pub fn set(&self, n: usize) {
        self.done.store(n, Ordering::Relaxed);
    }

    pub fn finish(self) {
        self.ticker.abort();
        print_progress(&self.label, self.done.load(Ordering::Relaxed), self.total, self.started.elapsed(), true);
    }
}

fn print_progress(label: &str, done: usize, total: usize, elapsed: Duration, last: bool) {
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "\r\x1b[2K  {label}: {done}/{total}  {:.1} s", elapsed.as_secs_f64());
    if last {
        let _ = writeln!(err);
    }
    let _ = err.flush();
}

/// A fictional mobile number, one per index below 90,000: 07700 910000 to 999999, past Ofcom's
/// drama range 07700 900xxx, which the tests use (they share the fake SMSC with a smoke run).
pub fn number(i: usize) -> String {
    format!("+4477009{:05}", 10_000 + i % 90_000)
}

/// Intake job `i` (tagged so that ids differ between loads): mostly sendable pre-texts, some
/// email and letter packs, some held or blocked: the mix the service sees.
pub fn mixed_job(tag: &str, i: usize) -> Value {
    let phone = number(i);
    let (suffix, kind, contact, consent) = match i % 10 {
        0 => (
            "E",
            "information_pack",
            json!({"email": {"address": format!("v{i}@example.org"), "safe": true}, "preferred_method": "email"}),
            true,
        ),
        1 => (
            "L",
            "information_pack",
            json!({"postal": {"name": "A Victim", "lines": ["1 High Street"], "postcode": "CV1 2AB", "safe": true}, "preferred_method": "letter"}),
            true,
        ),
        2 => (
            "B",
            "information_pack",
            json!({"email": {"address": format!("v{i}@example.org")}, "preferred_method": "email"}),
            false,
        ),
        3 => ("H", "priority_pretext", json!({"phones": [{"number": phone, "safe_to_text": false}]}), false),
        _ => (
            "P",
            "priority_pretext",
            json!({"phones": [{"number": phone, "belongs_to": "victim", "safe_to_text": true}]}),
            false,
        ),
    };
    let category = if suffix == "H" { "hate_crime" } else { "robbery" };
    json!({
        "request_id": format!("{tag}-{i}"),
        "case_ref": format!("{}-{i}-{suffix}", tag.to_uppercase()),
        "kind": kind,
        "crime": {"categories": [category]},
        "victim": {"first_name": "Sam"},
        "contact": contact,
        "consent": {"information_pack": consent},
        "personalisation": {"advocate_name": "Jo"},
    })
}

/// End-to-end job `i`: a pre-text the rules send at once, as one SMS to `number(i)`.
pub fn sms_job(tag: &str, i: usize) -> Value {
    json!({
        "request_id": format!("{tag}-{i}"),
        "case_ref": format!("{}-{i}", tag.to_uppercase()),
        "kind": "priority_pretext",
        "crime": {"categories": ["robbery"]},
        "victim": {"first_name": "Sam"},
        "contact": {"phones": [{"number": number(i), "belongs_to": "victim", "safe_to_text": true}]},
        "personalisation": {"advocate_name": "Jo"},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn drive_counts_failures_apart_and_measures_each_operation() {
        let measured = drive("test", 20, 4, |i| async move {
            tokio::time::sleep(Duration::from_millis(if i % 2 == 0 { 5 } else { 20 })).await;
            i % 5 != 0
        })
        .await;
        assert_eq!((measured.ok, measured.failed), (16, 4));
        assert_eq!(measured.latency.len(), 20);
        assert!(measured.ms(10.0) >= 5.0 && measured.ms(10.0) < 20.0, "p10 {}", measured.ms(10.0));
        assert!(measured.ms(99.0) >= 20.0, "p99 {}", measured.ms(99.0));
        assert!((measured.rate() - 16.0 / measured.elapsed.as_secs_f64()).abs() < 1e-6);
    }

    #[tokio::test]
    async fn two_loads_sum_to_one() {
        let slow = drive("slow", 4, 1, |_| async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            true
        })
        .await;
        let fast = drive("fast", 4, 1, |i| async move { i > 0 }).await;
        let (slow_elapsed, fast_elapsed) = (slow.elapsed, fast.elapsed);
        let both = Measured::sum(slow, fast);
        assert_eq!((both.ok, both.failed, both.latency.len()), (7, 1, 8));
        assert_eq!(both.elapsed, slow_elapsed + fast_elapsed);
        assert!(both.ms(90.0) >= 20.0 && both.ms(40.0) < 20.0);
    }

    #[test]
    fn numbers_and_ids_differ_per_index_and_tag() {
        assert_eq!(number(7), "+447700910007");
        assert_eq!(number(89_999), "+447700999999");
        assert_ne!(number(1), number(2));
        assert_eq!(sms_job("e2e", 3)["case_ref"], "E2E-3");
        assert_ne!(mixed_job("a", 1)["request_id"], mixed_job("b", 1)["request_id"]);
        let sendable = (0..10).filter(|i| mixed_job("a", *i)["case_ref"].as_str().unwrap().ends_with("-P")).count();
        assert_eq!(sendable, 6);
    }
}

#[cfg(test)]
mod batch_tests {
    use super::Batches;

    #[test]
    fn batch_sizes_are_read_from_prometheus_text_and_differenced() {
        let text = |sum: u32, count: u32, ones: u32| {
            format!(
                "safereach_batch_size_bucket{{batch=\"accept\",le=\"1\"}} {ones}\n\
                 safereach_batch_size_bucket{{batch=\"accept\",le=\"+Inf\"}} {count}\n\
                 safereach_batch_size_sum{{batch=\"accept\"}} {sum}\n\
                 safereach_batch_size_count{{batch=\"accept\"}} {count}\n\
                 safereach_batch_size_sum{{batch=\"status\"}} 999\n"
            )
        };
        let before = Batches::read(&text(10, 5, 3), "accept");
        assert_eq!(before.mean_size, 2.0, "a fresh reading has its mean");
        let after = Batches::read(&text(70, 15, 4), "accept").since(before);
        assert_eq!((after.transactions, after.items, after.mean_size), (10.0, 60.0, 6.0));
        assert_eq!(after.at_most, [(1.0, 1.0), (f64::INFINITY, 10.0)]);
        assert_eq!(Batches::read("", "accept").since(Batches::default()).mean_size, 0.0);
    }
}
