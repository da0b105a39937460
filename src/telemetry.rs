//! Metrics in Prometheus text at `/metrics`, through the `metrics` crate and its Prometheus
//! exporter.
//!
//! Each app instance owns its recorder (rather than installing a process-global one), so that two
//! apps in one test process keep their figures apart. Counters and the latency histogram count
//! what this process did; the gauges (jobs and messages by status, queue depth, dead letters) are
//! read from the database at each scrape, so every process reports the same shared state.
//!
//! Label values are only codes from our own enums and provider names: never an address, a name
//! or any text that came in from outside.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use metrics::{Key, Label, Metadata, Recorder};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusRecorder};

use crate::channels::{Accepted, Channels, OutboundMessage, Provider, SendError};
use crate::domain::{Channel, JobStatus, MessageStatus};
use crate::store::{Store, StoreError};

pub const ACCEPTED: &str = "safereach_outreach_accepted_total";
pub const PROVIDER_REQUESTS: &str = "safereach_provider_requests_total";
pub const PROVIDER_ERRORS: &str = "safereach_provider_errors_total";
pub const PROVIDER_SECONDS: &str = "safereach_provider_send_seconds";
pub const CALLBACK_REJECTIONS: &str = "safereach_callback_rejections_total";
pub const STATUS_CALLBACKS: &str = "safereach_status_callbacks_total";
pub const REPLIES: &str = "safereach_replies_total";
pub const REDACTIONS: &str = "safereach_redactions_total";
pub const PASSWORD_CHECKS: &str = "safereach_password_checks_total";
pub const JOBS: &str = "safereach_outreach_jobs";
pub const MESSAGES: &str = "safereach_messages";
pub const QUEUE_DEPTH: &str = "safereach_queue_depth";
pub const QUEUE_OLDEST: &str = "safereach_queue_oldest_due_seconds";
pub const DEAD_LETTERS: &str = "safereach_dead_letters";
pub const URGENT_OPEN: &str = "safereach_urgent_items_open";
pub const URGENT_OLDEST: &str = "safereach_urgent_oldest_age_seconds";
pub const BATCH_SIZE: &str = "safereach_batch_size";

/// Provider call latency buckets, in seconds.
const LATENCY_BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
/// Group-commit batch sizes (items per transaction; at most 64).
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0];

static METADATA: Metadata<'static> = Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));

/// This instance's metrics. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    recorder: Arc<PrometheusRecorder>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(PROVIDER_SECONDS.into()), LATENCY_BUCKETS)
            .expect("the bucket list is not empty")
            .set_buckets_for_metric(Matcher::Full(BATCH_SIZE.into()), BATCH_BUCKETS)
            .expect("the bucket list is not empty")
            .build_recorder();
        let m = Metrics { recorder: Arc::new(recorder) };
        m.describe();
        m
    }

    fn describe(&self) {
        let counters = [
            (ACCEPTED, "Outreach jobs accepted, by the decision taken at acceptance"),
            (PROVIDER_REQUESTS, "Messages handed to a provider, by result"),
            (PROVIDER_ERRORS, "Provider errors, by kind (transient, permanent or in_doubt)"),
            (CALLBACK_REJECTIONS, "Provider callbacks refused (bad token or signature, unreadable body)"),
            (STATUS_CALLBACKS, "Provider status reports, by what they did"),
            (REPLIES, "Inbound replies, by classification"),
            (REDACTIONS, "Records whose personal data retention or erasure removed"),
            (PASSWORD_CHECKS, "Staff logins whose password check had to wait for a free place, or was refused (busy)"),
        ];
        for (name, help) in counters {
            self.recorder.describe_counter(name.into(), None, help.into());
        }
        let gauges = [
            (JOBS, "Outreach jobs by status (from the database)"),
            (MESSAGES, "Messages by channel and status (from the database)"),
            (QUEUE_DEPTH, "Outreach jobs due and waiting for a worker, wherever the queue holds them"),
            (QUEUE_OLDEST, "How long the oldest job waiting for a worker has been due, in seconds (0 when none)"),
            (DEAD_LETTERS, "Outreach jobs dead-lettered for staff (retries exhausted, or a send interrupted)"),
            (URGENT_OPEN, "Urgent replies (distress, unsafe) not yet acknowledged by a person"),
            (URGENT_OLDEST, "How long the oldest unacknowledged urgent reply has waited, in seconds (0 when none)"),
        ];
        for (name, help) in gauges {
            self.recorder.describe_gauge(name.into(), None, help.into());
        }
        self.recorder.describe_histogram(
            PROVIDER_SECONDS.into(),
            Some(metrics::Unit::Seconds),
            "How long a provider took to take or refuse a message".into(),
        );
        self.recorder.describe_histogram(
            BATCH_SIZE.into(),
            None,
            "Items committed together by a group commit (`batch`: accept, status), per transaction".into(),
        );
    }

    fn key(name: &'static str, labels: &[(&'static str, &str)]) -> Key {
        Key::from_parts(name, labels.iter().map(|(k, v)| Label::new(*k, v.to_string())).collect::<Vec<_>>())
    }

    fn count(&self, name: &'static str, labels: &[(&'static str, &str)]) {
        self.recorder.register_counter(&Self::key(name, labels), &METADATA).increment(1);
    }

    fn gauge(&self, name: &'static str, labels: &[(&'static str, &str)], value: f64) {
        self.recorder.register_gauge(&Self::key(name, labels), &METADATA).set(value);
    }

    /// A job accepted with this decision (`reason` is None for a send).
    pub fn job_accepted(&self, outcome: &str, reason: Option<&str>) {
        self.count(ACCEPTED, &[("outcome", outcome), ("reason", reason.unwrap_or("none"))]);
    }

    /// A callback refused before it touched anything (`bad_token`, `bad_signature`, `bad_status`).
    pub fn callback_rejected(&self, reason: &'static str) {
        self.count(CALLBACK_REJECTIONS, &[("reason", reason)]);
    }

    /// A provider status report: `result` is `moved`, `ignored` or `unknown_message`, or
    /// `acknowledged` for an email bounce that changes nothing (a delay).
    pub fn status_callback(&self, provider: &str, result: &'static str) {
        self.count(STATUS_CALLBACKS, &[("provider", provider), ("result", result)]);
    }

    /// A login's password check `waited` for one of the few places, or was `refused_busy`.
    pub fn password_check(&self, result: &'static str) {
        self.count(PASSWORD_CHECKS, &[("result", result)]);
    }

    /// A group commit (`batch`: `accept`, `status`, the worker's `claim` or `record`) ran `size`
    /// items in one transaction.
    pub fn batch(&self, batch: &'static str, size: usize) {
        self.recorder.register_histogram(&Self::key(BATCH_SIZE, &[("batch", batch)]), &METADATA).record(size as f64);
    }

    pub fn reply(&self, classification: &'static str) {
        self.count(REPLIES, &[("classification", classification)]);
    }

    pub fn redacted(&self, what: &'static str, n: u64) {
        self.recorder.register_counter(&Self::key(REDACTIONS, &[("what", what)]), &METADATA).increment(n);
    }

    fn provider_call(
        &self,
        channel: Channel,
        provider: &'static str,
        result: &Result<Accepted, SendError>,
        took: Duration,
    ) {
        let channel = channel.as_str();
        let outcome = match result {
            Ok(_) => "accepted",
            Err(SendError::Transient(_)) => "transient",
            Err(SendError::Permanent(_)) => "permanent",
            Err(SendError::InDoubt { .. }) => "in_doubt",
        };
        self.count(PROVIDER_REQUESTS, &[("channel", channel), ("provider", provider), ("result", outcome)]);
        if result.is_err() {
            self.count(PROVIDER_ERRORS, &[("channel", channel), ("provider", provider), ("kind", outcome)]);
        }
        self.recorder
            .register_histogram(
                &Self::key(PROVIDER_SECONDS, &[("channel", channel), ("provider", provider)]),
                &METADATA,
            )
            .record(took.as_secs_f64());
    }

    /// Read the gauges from the database, then render everything in Prometheus text.
    pub async fn render(&self, store: &Store, now_ms: i64) -> Result<String, StoreError> {
        let jobs = store.outreach_status_counts().await?;
        // Every status, so that a status with no jobs shows 0 rather than disappearing.
        let count = |status: JobStatus| jobs.iter().find(|(s, _)| s == status.as_str()).map_or(0, |(_, n)| *n);
        for status in JobStatus::ALL {
            self.gauge(JOBS, &[("status", status.as_str())], count(*status) as f64);
        }
        let dead = count(JobStatus::DeadLettered);
        self.gauge(DEAD_LETTERS, &[], dead as f64);
        let messages = store.message_status_counts().await?;
        for channel in Channel::ALL {
            for status in MessageStatus::ALL {
                let n = messages
                    .iter()
                    .find(|(c, s, _)| c == channel.as_str() && s == status.as_str())
                    .map_or(0, |(_, _, n)| *n);
                self.gauge(MESSAGES, &[("channel", channel.as_str()), ("status", status.as_str())], n as f64);
            }
        }
        let (depth, oldest) = store.queue_backlog(now_ms).await?;
        self.gauge(QUEUE_DEPTH, &[], depth as f64);
        let age = oldest.map_or(0.0, |t| (now_ms - t).max(0) as f64 / 1000.0);
        self.gauge(QUEUE_OLDEST, &[], age);
        let (open, oldest) = store.urgent_open().await?;
        self.gauge(URGENT_OPEN, &[], open as f64);
        self.gauge(URGENT_OLDEST, &[], oldest.map_or(0.0, |t| (now_ms - t).max(0) as f64 / 1000.0));
        let handle = self.recorder.handle();
        handle.run_upkeep();
        Ok(handle.render())
    }
}

/// Every provider of `channels`, timed and counted.
pub fn instrument(channels: Channels, metrics: &Metrics) -> Channels {
    let wrap = |channel: Channel, inner: Arc<dyn Provider>| -> Arc<dyn Provider> {
        Arc::new(Instrumented { inner, channel, metrics: metrics.clone() })
    };
    Channels {
        sms: channels.sms.into_iter().map(|p| wrap(Channel::Sms, p)).collect(),
        email: wrap(Channel::Email, channels.email),
        letter: wrap(Channel::Letter, channels.letter),
    }
}

struct Instrumented {
    inner: Arc<dyn Provider>,
    channel: Channel,
    metrics: Metrics,
}

#[async_trait]
impl Provider for Instrumented {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    async fn send(&self, message: &OutboundMessage) -> Result<Accepted, SendError> {
        let started = Instant::now();
        let result = self.inner.send(message).await;
        self.metrics.provider_call(self.channel, self.inner.name(), &result, started.elapsed());
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_with_their_labels_and_help() {
        let m = Metrics::new();
        m.job_accepted("block", Some("no_consent"));
        m.job_accepted("block", Some("no_consent"));
        m.job_accepted("send", None);
        m.callback_rejected("bad_token");
        let text = m.recorder.handle().render();
        assert!(text.contains("# HELP safereach_outreach_accepted_total"), "{text}");
        assert!(text.contains(r#"safereach_outreach_accepted_total{outcome="block",reason="no_consent"} 2"#), "{text}");
        assert!(text.contains(r#"safereach_outreach_accepted_total{outcome="send",reason="none"} 1"#), "{text}");
        assert!(text.contains(r#"safereach_callback_rejections_total{reason="bad_token"} 1"#), "{text}");
    }

    #[test]
    fn two_instances_keep_their_figures_apart() {
        let (a, b) = (Metrics::new(), Metrics::new());
        a.reply("opt_out");
        assert!(a.recorder.handle().render().contains(r#"safereach_replies_total{classification="opt_out"} 1"#));
        assert!(!b.recorder.handle().render().contains("safereach_replies_total{"));
    }
}
