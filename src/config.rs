//! Configuration from the environment (names fixed by the contract), also settable as flags.

use chrono::{DateTime, NaiveTime, Utc};
use clap::Args;

use crate::domain::request::hhmm;

/// Every setting has an environment variable; `safereach --help` lists them.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Listen address.
    #[arg(long, env = "SAFEREACH_BIND", default_value = "127.0.0.1:8080")]
    pub bind: String,
    /// `sqlite://…` (embedded default) or `postgres://…`.
    #[arg(long, env = "SAFEREACH_DATABASE_URL", default_value = "sqlite://safereach.db")]
    pub database_url: String,
    /// Set: the job queue lives in Redis; unset: in the database.
    #[arg(long, env = "SAFEREACH_REDIS_URL")]
    pub redis_url: Option<String>,
    /// `sandbox`, `twilio`, `kannel`; a comma list is the failover order.
    #[arg(long, env = "SAFEREACH_SMS_PROVIDER", default_value = "sandbox")]
    pub sms_provider: String,
    /// `sandbox` or `smtp`.
    #[arg(long, env = "SAFEREACH_EMAIL_PROVIDER", default_value = "sandbox")]
    pub email_provider: String,
    /// `sandbox` (PDF files in the outbox) or `http` (POST to a print service).
    #[arg(long, env = "SAFEREACH_LETTER_PROVIDER", default_value = "sandbox")]
    pub letter_provider: String,
    /// The sender of emails; its domain also names our Message-IDs.
    #[arg(
        long,
        env = "SAFEREACH_EMAIL_FROM",
        default_value = "Northgate Victim Care <noreply@victimcare.example.org>"
    )]
    pub email_from: String,
    /// SMTP server for `SAFEREACH_EMAIL_PROVIDER=smtp`: `smtp://host:port` (plain, or STARTTLS
    /// with `?tls=required`) or `smtps://host:port` (TLS); `user:password@` for AUTH.
    #[arg(long, env = "SAFEREACH_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,
    /// Twilio account SID, auth token (also checks callback signatures), sender number, and the
    /// API base URL (overridable for tests).
    #[arg(long, env = "SAFEREACH_TWILIO_ACCOUNT_SID")]
    pub twilio_account_sid: Option<String>,
    #[arg(long, env = "SAFEREACH_TWILIO_AUTH_TOKEN", hide_env_values = true)]
    pub twilio_auth_token: Option<String>,
    #[arg(long, env = "SAFEREACH_TWILIO_FROM")]
    pub twilio_from: Option<String>,
    #[arg(long, env = "SAFEREACH_TWILIO_BASE_URL", default_value = "https://api.twilio.com")]
    pub twilio_base_url: String,
    /// Kannel smsbox sendsms URL (e.g. `http://127.0.0.1:13013/cgi-bin/sendsms`), its
    /// sendsms-user, and the sender number.
    #[arg(long, env = "SAFEREACH_KANNEL_SENDSMS_URL")]
    pub kannel_sendsms_url: Option<String>,
    #[arg(long, env = "SAFEREACH_KANNEL_USER")]
    pub kannel_user: Option<String>,
    #[arg(long, env = "SAFEREACH_KANNEL_PASSWORD", hide_env_values = true)]
    pub kannel_password: Option<String>,
    #[arg(long, env = "SAFEREACH_KANNEL_FROM")]
    pub kannel_from: Option<String>,
    /// Print service for `SAFEREACH_LETTER_PROVIDER=http`: letters are POSTed here as PDF.
    #[arg(long, env = "SAFEREACH_PRINT_URL")]
    pub print_url: Option<String>,
    /// Sent as `Authorization: Bearer …` to the print service when set.
    #[arg(long, env = "SAFEREACH_PRINT_TOKEN", hide_env_values = true)]
    pub print_token: Option<String>,
    /// Seconds a call to a provider may take (an HTTP request and its answer; an SMTP
    /// conversation). A call cut off after the request went is in doubt: the job is dead-lettered
    /// for staff (`send_in_doubt`), never sent again by itself.
    #[arg(long, env = "SAFEREACH_PROVIDER_TIMEOUT_SECS", default_value_t = 30)]
    pub provider_timeout_secs: u64,
    /// Consecutive failures (transient or in doubt) after which an SMS provider is skipped for a
    /// cool-down.
    #[arg(long, env = "SAFEREACH_BREAKER_FAILURES", default_value_t = 3)]
    pub breaker_failures: u32,
    /// Seconds a failing SMS provider is skipped before it is tried again.
    #[arg(long, env = "SAFEREACH_BREAKER_COOLDOWN_SECS", default_value_t = 60)]
    pub breaker_cooldown_secs: u64,
    /// Where case events are POSTed (Standard Webhooks); unset: not sent.
    #[arg(long, env = "SAFEREACH_EVENTS_URL")]
    pub events_url: Option<String>,
    /// The signing secret for case events: `whsec_` + base64, or any other string used as is.
    #[arg(long, env = "SAFEREACH_EVENTS_SECRET", hide_env_values = true)]
    pub events_secret: Option<String>,
    /// Tries per case event before it is dead-lettered.
    #[arg(long, env = "SAFEREACH_EVENTS_MAX_ATTEMPTS", default_value_t = 10)]
    pub events_max_attempts: u32,
    /// Milliseconds before the first retry of a case event; each later wait is four times longer
    /// (capped at 6 h): with the defaults the last try comes about 20 hours after the first.
    #[arg(long, env = "SAFEREACH_EVENTS_RETRY_BASE_MS", default_value_t = 5000)]
    pub events_retry_base_ms: u64,
    /// Where sandbox providers write what they "sent".
    #[arg(long, env = "SAFEREACH_OUTBOX_DIR", default_value = "./outbox")]
    pub outbox_dir: String,
    /// The sandbox's callback secret when `SAFEREACH_SANDBOX_WEBHOOK_TOKEN` is not set (the name
    /// it had when one token served every provider).
    #[arg(long, env = "SAFEREACH_WEBHOOK_TOKEN", hide_env_values = true)]
    pub webhook_token: Option<String>,
    /// Secret in the URL of sandbox callbacks (at least 32 random bytes). Unset on the embedded
    /// default: generated into the key file beside the database and printed once.
    #[arg(long, env = "SAFEREACH_SANDBOX_WEBHOOK_TOKEN", hide_env_values = true)]
    pub sandbox_webhook_token: Option<String>,
    /// Secret in the URL of Kannel's delivery reports and replies (needed with Kannel).
    #[arg(long, env = "SAFEREACH_KANNEL_WEBHOOK_TOKEN", hide_env_values = true)]
    pub kannel_webhook_token: Option<String>,
    /// Secret in the URL of the print service's status reports (needed with the print service).
    #[arg(long, env = "SAFEREACH_PRINT_WEBHOOK_TOKEN", hide_env_values = true)]
    pub print_webhook_token: Option<String>,
    /// Secret in the URL email bounces are delivered to (needed with SMTP).
    #[arg(long, env = "SAFEREACH_BOUNCE_WEBHOOK_TOKEN", hide_env_values = true)]
    pub bounce_webhook_token: Option<String>,
    /// The key of the keyed hashes of phone numbers and addresses (at least 32 random bytes).
    /// Required on Postgres; on the embedded default it is generated into the key file beside
    /// the database. Never kept in the database.
    #[arg(long, env = "SAFEREACH_HASH_KEY", hide_env_values = true)]
    pub hash_key: Option<String>,
    /// Addresses of the reverse proxies in front (comma list). A request from one of them is
    /// counted, for the login slow-down, by the client address it gives in `X-Forwarded-For`;
    /// unset, by the connection's own address (then every client of a proxy shares one).
    #[arg(long, env = "SAFEREACH_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// The base URL providers call back on.
    #[arg(long, env = "SAFEREACH_PUBLIC_URL", default_value = "http://127.0.0.1:8080")]
    pub public_url: String,
    /// The window in which SMS may be sent, local time in Europe/London.
    #[arg(long, env = "SAFEREACH_QUIET_HOURS", default_value = "08:00-20:00", value_parser = parse_window)]
    pub quiet_hours: (NaiveTime, NaiveTime),
    /// Tests only: the clock of every command starts at this RFC 3339 time and runs on from there.
    /// Refused unless `SAFEREACH_ALLOW_CLOCK=1`.
    #[arg(long, env = "SAFEREACH_CLOCK")]
    pub clock: Option<DateTime<Utc>>,
    /// `1` allows `SAFEREACH_CLOCK` (tests only).
    #[arg(long, env = "SAFEREACH_ALLOW_CLOCK", value_parser = clap::builder::BoolishValueParser::new())]
    pub allow_clock: bool,
    /// `text` or `json` log lines.
    #[arg(long, env = "SAFEREACH_LOG_FORMAT", default_value = "text")]
    pub log_format: String,
    /// Jobs one worker process handles at once. Their decide-and-claims, and their results, are
    /// each written in one transaction for the jobs that arrive together (`service::deliver`),
    /// so the more at once, the larger those batches: a job mostly waits for its provider.
    #[arg(long, env = "SAFEREACH_WORKER_CONCURRENCY", default_value_t = 64)]
    pub worker_concurrency: usize,
    /// Transient send failures before a job is dead-lettered for staff.
    #[arg(long, env = "SAFEREACH_MAX_ATTEMPTS", default_value_t = 5)]
    pub max_attempts: u32,
    /// Seconds before the first retry of a transient failure; doubles each time.
    #[arg(long, env = "SAFEREACH_RETRY_BASE_SECS", default_value_t = 30)]
    pub retry_base_secs: u64,
    /// Seconds a worker holds a message it is sending. A worker that dies mid-send leaves the
    /// message in doubt for this long; then it is dead-lettered for staff (never sent twice).
    /// Longer than a send can take: the provider timeout times the number of SMS providers.
    #[arg(long, env = "SAFEREACH_SEND_LEASE_SECS", default_value_t = 120)]
    pub send_lease_secs: u64,
    /// Days a message's text and recipient, a reply's text and sender, and a sent job's request are
    /// kept after the message's last status (or the reply's arrival).
    #[arg(long, env = "SAFEREACH_RETENTION_DAYS", default_value_t = 7)]
    pub retention_days: u32,
    /// Days the same are kept on a case not taken up (the victim declined a call, or the case was
    /// cancelled), instead of the other two.
    #[arg(long, env = "SAFEREACH_RETENTION_NOT_TAKEN_UP_DAYS", default_value_t = 7)]
    pub retention_not_taken_up_days: u32,
    /// Days the request of a job that ended without reaching anyone (blocked, cancelled) is kept.
    #[arg(long, env = "SAFEREACH_RETENTION_NEVER_REACHED_DAYS", default_value_t = 30)]
    pub retention_never_reached_days: u32,
    /// Days the reason a victim gave for declining on a call is kept (from when the call was
    /// recorded), instead of the others: long enough to report on the quarter it falls in.
    #[arg(long, env = "SAFEREACH_RETENTION_CALL_REASON_DAYS", default_value_t = 100)]
    pub retention_call_reason_days: u32,
    /// Seconds between retention passes (each worker process runs one at start and then so often).
    #[arg(long, env = "SAFEREACH_RETENTION_INTERVAL_SECS", default_value_t = 600)]
    pub retention_interval_secs: u64,
    /// Seconds a stopping process waits for jobs in flight.
    #[arg(long, env = "SAFEREACH_SHUTDOWN_TIMEOUT_SECS", default_value_t = 30)]
    pub shutdown_timeout_secs: u64,
    /// On-call staff mobile numbers, in escalation order (comma list): each urgent reply notifies
    /// the first at any hour, then the next while nobody acknowledges it. Staff data: never logged.
    #[arg(long, env = "SAFEREACH_ONCALL_SMS", value_delimiter = ',', hide_env_values = true)]
    pub oncall_sms: Vec<String>,
    /// On-call staff email addresses, likewise (the n-th of each list is notified at step n).
    #[arg(long, env = "SAFEREACH_ONCALL_EMAIL", value_delimiter = ',', hide_env_values = true)]
    pub oncall_email: Vec<String>,
    /// Minutes an urgent item may wait unacknowledged before the next on-call contact is notified.
    #[arg(long, env = "SAFEREACH_ONCALL_ESCALATE_MINUTES", default_value_t = 15)]
    pub oncall_escalate_minutes: u64,
    /// When the offices are staffed, Europe/London: `DAYS HH:MM-HH:MM` windows separated by `;`
    /// (days: `mon`, a range `mon-fri`, or a comma list). For the report of urgent items that
    /// arrived outside them.
    #[arg(long, env = "SAFEREACH_STAFFED_HOURS", default_value = crate::domain::staffed_hours::DEFAULT,
          value_parser = crate::domain::staffed_hours::StaffedHours::parse)]
    pub staffed_hours: crate::domain::staffed_hours::StaffedHours,
    /// `required`: approvers and admins must sign in with a second factor (TOTP) after their
    /// password; unset: a second factor is optional for everyone.
    #[arg(long, env = "SAFEREACH_STAFF_2FA", value_enum, default_value_t = TwoFactor::Optional, hide_default_value = true)]
    pub staff_2fa: TwoFactor,
}

/// Whether staff need a second factor to sign in (`SAFEREACH_STAFF_2FA`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TwoFactor {
    /// Anyone may enrol; nobody must.
    Optional,
    /// Approvers and admins must (authors may).
    Required,
}

fn parse_window(s: &str) -> Result<(NaiveTime, NaiveTime), String> {
    let (from, to) = s.split_once('-').ok_or("expected HH:MM-HH:MM")?;
    let from = hhmm::parse(from.trim()).ok_or("expected HH:MM-HH:MM")?;
    let to = hhmm::parse(to.trim()).ok_or("expected HH:MM-HH:MM")?;
    if from >= to {
        return Err("the window must start before it ends".into());
    }
    Ok((from, to))
}

impl Config {
    /// The defaults, ignoring the environment: the base for tests and for `demo`.
    pub fn defaults() -> Config {
        #[derive(clap::Parser)]
        struct Only {
            #[command(flatten)]
            config: Config,
        }
        // Parsing an empty command line still reads the environment, so clear what it would read.
        let cmd = <Only as clap::CommandFactory>::command();
        let cmd = cmd.mut_args(|a| a.env(None::<&str>));
        let matches = cmd.get_matches_from(["safereach"]);
        <Only as clap::FromArgMatches>::from_arg_matches(&matches).expect("defaults parse").config
    }

    pub fn is_sqlite(&self) -> bool {
        self.database_url.starts_with("sqlite:")
    }

    /// Refuse settings out of range (a huge lease or cool-down would overflow a time, a zero
    /// concurrency would stall) and the test clock without its permission. Every command runs
    /// this first; the error is one line naming the variable.
    pub fn check(&self) -> Result<(), ConfigError> {
        const DAY: u64 = 86_400;
        let ranges: [(&'static str, u64, u64, u64); 17] = [
            ("SAFEREACH_PROVIDER_TIMEOUT_SECS", self.provider_timeout_secs, 1, 600),
            ("SAFEREACH_BREAKER_FAILURES", self.breaker_failures.into(), 1, 1_000),
            ("SAFEREACH_BREAKER_COOLDOWN_SECS", self.breaker_cooldown_secs, 1, DAY),
            ("SAFEREACH_EVENTS_MAX_ATTEMPTS", self.events_max_attempts.into(), 1, 100),
            ("SAFEREACH_EVENTS_RETRY_BASE_MS", self.events_retry_base_ms, 1, 3_600_000),
            ("SAFEREACH_WORKER_CONCURRENCY", self.worker_concurrency as u64, 1, 1_024),
            ("SAFEREACH_MAX_ATTEMPTS", self.max_attempts.into(), 1, 100),
            ("SAFEREACH_RETRY_BASE_SECS", self.retry_base_secs, 0, DAY),
            ("SAFEREACH_SEND_LEASE_SECS", self.send_lease_secs, 1, DAY),
            ("SAFEREACH_RETENTION_DAYS", self.retention_days.into(), 1, 3_650),
            ("SAFEREACH_RETENTION_NOT_TAKEN_UP_DAYS", self.retention_not_taken_up_days.into(), 1, 3_650),
            ("SAFEREACH_RETENTION_NEVER_REACHED_DAYS", self.retention_never_reached_days.into(), 1, 3_650),
            ("SAFEREACH_RETENTION_CALL_REASON_DAYS", self.retention_call_reason_days.into(), 1, 3_650),
            ("SAFEREACH_RETENTION_INTERVAL_SECS", self.retention_interval_secs, 1, DAY),
            ("SAFEREACH_SHUTDOWN_TIMEOUT_SECS", self.shutdown_timeout_secs, 0, 3_600),
            ("SAFEREACH_ONCALL_ESCALATE_MINUTES", self.oncall_escalate_minutes, 1, 1_440),
            // Within 10 years of now either way: the clock's offset must stay a sane duration.
            ("SAFEREACH_CLOCK (years from now)", self.clock.map_or(0, clock_years_away), 0, 10),
        ];
        for (var, value, min, max) in ranges {
            if !(min..=max).contains(&value) {
                return Err(ConfigError::OutOfRange { var, value, min, max });
            }
        }
        if self.clock.is_some() && !self.allow_clock {
            return Err(ConfigError::ClockNotAllowed);
        }
        self.oncall_contacts()?;
        // A Redis URL that does not parse would never connect: refuse the start rather than
        // wait for it for ever. (The URL is not echoed: it may hold a password.)
        if let Some(url) = &self.redis_url
            && redis::Client::open(url.as_str()).is_err()
        {
            return Err(ConfigError::Invalid(
                "SAFEREACH_REDIS_URL is not a Redis URL (redis://host:port/db or rediss://…)".into(),
            ));
        }
        Ok(())
    }

    /// The on-call rota's contacts, normalised; an entry that is neither a number nor an address
    /// refuses the start (named by its place in the list: its value is staff data).
    pub fn oncall_contacts(&self) -> Result<crate::domain::oncall::Contacts, ConfigError> {
        crate::domain::oncall::Contacts::parse(&self.oncall_sms, &self.oncall_email).map_err(ConfigError::Invalid)
    }
}

fn clock_years_away(start: DateTime<Utc>) -> u64 {
    ((start - Utc::now()).num_days().unsigned_abs()) / 365
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{var} must be from {min} to {max}, not {value}")]
    OutOfRange { var: &'static str, value: u64, min: u64, max: u64 },
    #[error(
        "SAFEREACH_CLOCK is set but SAFEREACH_ALLOW_CLOCK=1 is not: the shifted clock is for tests only (it would send at the wrong real time and take other workers' live leases for expired)"
    )]
    ClockNotAllowed,
    #[error("{0}")]
    Invalid(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_contract() {
        let c = Config::defaults();
        assert_eq!(c.bind, "127.0.0.1:8080");
        assert_eq!(c.database_url, "sqlite://safereach.db");
        assert_eq!(c.sms_provider, "sandbox");
        assert_eq!(c.outbox_dir, "./outbox");
        assert_eq!(
            c.quiet_hours,
            (NaiveTime::from_hms_opt(8, 0, 0).unwrap(), NaiveTime::from_hms_opt(20, 0, 0).unwrap())
        );
        assert!(c.redis_url.is_none() && c.clock.is_none());
        assert_eq!(c.provider_timeout_secs, 30);
    }

    #[test]
    fn the_defaults_pass_the_checks_and_every_bound_is_enforced() {
        let ok = Config::defaults();
        ok.check().unwrap();
        let mut c = ok.clone();
        c.send_lease_secs = u64::MAX;
        assert_eq!(
            c.check().unwrap_err().to_string(),
            format!("SAFEREACH_SEND_LEASE_SECS must be from 1 to 86400, not {}", u64::MAX)
        );
        let mut c = ok.clone();
        c.breaker_cooldown_secs = 10_000_000_000;
        assert!(c.check().unwrap_err().to_string().starts_with("SAFEREACH_BREAKER_COOLDOWN_SECS"));
        let mut c = ok.clone();
        c.worker_concurrency = 0;
        assert!(c.check().unwrap_err().to_string().starts_with("SAFEREACH_WORKER_CONCURRENCY"));
        let mut c = ok.clone();
        c.retention_days = 0;
        assert!(c.check().unwrap_err().to_string().starts_with("SAFEREACH_RETENTION_DAYS"));
        assert_eq!(ok.retention_call_reason_days, 100, "a quarter and the time to report on it");
        let mut c = ok.clone();
        c.retention_call_reason_days = 0;
        assert_eq!(
            c.check().unwrap_err().to_string(),
            "SAFEREACH_RETENTION_CALL_REASON_DAYS must be from 1 to 3650, not 0"
        );
        c.retention_call_reason_days = 3_651;
        assert!(c.check().unwrap_err().to_string().starts_with("SAFEREACH_RETENTION_CALL_REASON_DAYS"));
        let mut c = ok.clone();
        c.redis_url = Some("redis://127.0.0.1:6379/0".into());
        c.check().unwrap();
        c.redis_url = Some("redis://:secret@[::1".into());
        let refused = c.check().unwrap_err().to_string();
        assert!(
            refused.starts_with("SAFEREACH_REDIS_URL is not a Redis URL") && !refused.contains("secret"),
            "{refused}"
        );
    }

    #[test]
    fn the_test_clock_needs_its_permission() {
        let mut c = Config::defaults();
        c.clock = Some("2026-11-23T10:00:00Z".parse().unwrap());
        assert!(matches!(c.check(), Err(ConfigError::ClockNotAllowed)));
        c.allow_clock = true;
        c.check().unwrap();
        c.clock = Some("2999-01-01T00:00:00Z".parse().unwrap());
        assert!(matches!(c.check(), Err(ConfigError::OutOfRange { .. })));
    }

    #[test]
    fn the_oncall_rota_is_checked_at_start_without_echoing_its_entries() {
        let mut c = Config::defaults();
        assert!(c.oncall_contacts().unwrap().is_empty());
        assert_eq!(c.oncall_escalate_minutes, 15);
        assert_eq!(c.staff_2fa, TwoFactor::Optional);
        c.oncall_sms = vec!["07700 900001".into(), "not a number".into()];
        let error = c.check().unwrap_err().to_string();
        assert!(error.starts_with("SAFEREACH_ONCALL_SMS: entry 2") && !error.contains("not a number"), "{error}");
        c.oncall_sms = vec!["07700 900001".into()];
        c.check().unwrap();
        c.oncall_escalate_minutes = 0;
        assert!(c.check().unwrap_err().to_string().starts_with("SAFEREACH_ONCALL_ESCALATE_MINUTES"));
    }

    #[test]
    fn quiet_hours_are_checked() {
        assert!(parse_window("20:00-08:00").is_err());
        assert!(parse_window("8-20").is_err());
        assert!(parse_window("09:30-17:00").is_ok());
    }
}
