//! Sandbox providers, the embedded default: they "send" by writing what a real provider would
//! have been given to the outbox directory (`SAFEREACH_OUTBOX_DIR`), and answer like one, with
//! our message id as the provider reference.
//!
//! - SMS: one JSON line per message appended to `{outbox}/sms.jsonl`;
//! - email: the formatted RFC 5322 message in `{outbox}/email/{id}.eml`;
//! - letters: the PDF in `{outbox}/letters/{id}.pdf`.
//!
//! Sending the same message again rewrites its file (or appends a second line): like a real
//! provider, the sandbox does not deduplicate; the worker does.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::SecondsFormat;
use lettre::message::Mailbox;

use super::email::build_email;
use super::letter::{LetterSender, render_outbound};
use super::{Accepted, OutboundMessage, Provider, SendError};
use crate::clock::Clock;

const PROVIDER: &str = "sandbox";

fn accepted(msg: &OutboundMessage) -> Accepted {
    Accepted { provider: PROVIDER, provider_ref: msg.id.clone() }
}

/// SMS into `{outbox}/sms.jsonl`.
pub struct SandboxSms {
    outbox: PathBuf,
    clock: Clock,
}

impl SandboxSms {
    /// `clock` stamps what was "sent" (the app's own, so `SAFEREACH_CLOCK` applies).
    pub fn new(outbox: impl Into<PathBuf>, clock: Clock) -> Self {
        SandboxSms { outbox: outbox.into(), clock }
    }
}

#[async_trait]
impl Provider for SandboxSms {
    fn name(&self) -> &'static str {
        PROVIDER
    }

    async fn send(&self, msg: &OutboundMessage) -> Result<Accepted, SendError> {
        let number = msg.sms_number()?;
        // What a real SMS provider refuses outright (Twilio: 21211 and 21602).
        if !is_e164(number) {
            return Err(SendError::Permanent("phone number is not in E.164 form".into()));
        }
        if msg.text.is_empty() {
            return Err(SendError::Permanent("sms body is empty".into()));
        }
        let sms = msg.sms.unwrap_or_else(|| crate::domain::sms::analyse(&msg.text));
        let record = serde_json::json!({
            "id": msg.id,
            "provider_ref": msg.id,
            "to": number,
            "body": msg.text,
            "encoding": sms.encoding,
            "segments": sms.segments,
            "at": self.clock.now().to_rfc3339_opts(SecondsFormat::Millis, true),
        });
        // serde_json escapes newlines inside strings, so the record is exactly one line.
        let mut line = record.to_string().into_bytes();
        line.push(b'\n');
        let path = self.outbox.join("sms.jsonl");
        blocking(move || append_line(&path, &line)).await?;
        tracing::debug!(message_id = %msg.id, "sandbox sms written");
        Ok(accepted(msg))
    }
}

fn is_e164(number: &str) -> bool {
    let digits = number.strip_prefix('+').unwrap_or("");
    (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0')
}

/// Email into `{outbox}/email/{id}.eml`.
pub struct SandboxEmail {
    outbox: PathBuf,
    from: Mailbox,
    message_id_domain: String,
}

impl SandboxEmail {
    pub fn new(outbox: impl Into<PathBuf>, from: Mailbox, message_id_domain: impl Into<String>) -> Self {
        SandboxEmail { outbox: outbox.into(), from, message_id_domain: message_id_domain.into() }
    }
}

#[async_trait]
impl Provider for SandboxEmail {
    fn name(&self) -> &'static str {
        PROVIDER
    }

    async fn send(&self, msg: &OutboundMessage) -> Result<Accepted, SendError> {
        // build_email also checks that the id is plain, so it is safe as a file name.
        let eml = build_email(&self.from, &self.message_id_domain, msg)?.formatted();
        let dir = self.outbox.join("email");
        let name = format!("{}.eml", msg.id);
        blocking(move || write_atomically(&dir, &name, &eml)).await?;
        tracing::debug!(message_id = %msg.id, "sandbox email written");
        Ok(accepted(msg))
    }
}

/// Letters into `{outbox}/letters/{id}.pdf`, dated today in Europe/London.
pub struct SandboxLetter {
    outbox: PathBuf,
    sender: Arc<LetterSender>,
    clock: Clock,
}

impl SandboxLetter {
    pub fn new(outbox: impl Into<PathBuf>, sender: LetterSender, clock: Clock) -> Self {
        SandboxLetter { outbox: outbox.into(), sender: Arc::new(sender), clock }
    }
}

#[async_trait]
impl Provider for SandboxLetter {
    fn name(&self) -> &'static str {
        PROVIDER
    }

    async fn send(&self, msg: &OutboundMessage) -> Result<Accepted, SendError> {
        // Also checks that the id is plain, so it is safe as a file name.
        let pdf = render_outbound(self.sender.clone(), msg, self.clock).await?;
        let dir = self.outbox.join("letters");
        let name = format!("{}.pdf", msg.id);
        blocking(move || write_atomically(&dir, &name, &pdf)).await?;
        tracing::debug!(message_id = %msg.id, "sandbox letter written");
        Ok(accepted(msg))
    }
}

/// Runs file I/O on the blocking pool; any failure is worth retrying (disk full, permissions fixed).
async fn blocking(f: impl FnOnce() -> io::Result<()> + Send + 'static) -> Result<(), SendError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(())) => Ok(()),
        // The kind only: an io::Error never carries the path, and the path holds no personal data.
        Ok(Err(e)) => Err(SendError::Transient(format!("sandbox outbox write failed: {}", e.kind()))),
        Err(_) => Err(SendError::Transient("sandbox outbox write was interrupted".into())),
    }
}

/// Remove what the sandbox "sent" for `message_ids` (retention and erasure: the outbox is a copy
/// of personal data outside the database): their email and letter files go, and their SMS lines
/// are overwritten in place with `{"id": …, "redacted": true}` padded with spaces to the same
/// length. In place, so that lines other processes append meanwhile (O_APPEND, at the end) are
/// never lost, as a rewrite and rename could lose them.
pub fn forget(outbox: &Path, message_ids: &[String]) -> io::Result<()> {
    for id in message_ids {
        // Ids are ours (msg_ and hex); anything else cannot name a file of ours.
        if !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            continue;
        }
        for file in [outbox.join("email").join(format!("{id}.eml")), outbox.join("letters").join(format!("{id}.pdf"))] {
            match fs::remove_file(&file) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
    }
    let path = outbox.join("sms.jsonl");
    let mut file = match OpenOptions::new().read(true).write(true).open(&path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        other => other?,
    };
    let mut text = Vec::new();
    io::Read::read_to_end(&mut file, &mut text)?;
    let mut offset = 0;
    for line in text.split_inclusive(|&b| b == b'\n') {
        let start = offset;
        offset += line.len();
        // Only whole lines: one being appended right now has no newline yet.
        let Some(content) = line.strip_suffix(b"\n") else { continue };
        let Ok(record) = serde_json::from_slice::<serde_json::Value>(content) else { continue };
        let Some(id) = record["id"].as_str().filter(|id| message_ids.iter().any(|m| m == id)) else { continue };
        if record.get("redacted").is_some() {
            continue;
        }
        let mut blank = serde_json::json!({ "id": id, "redacted": true }).to_string().into_bytes();
        if blank.len() > content.len() {
            continue;
        }
        blank.resize(content.len(), b' ');
        io::Seek::seek(&mut file, io::SeekFrom::Start(start as u64))?;
        file.write_all(&blank)?;
    }
    file.sync_data()
}

/// Appends one whole line. Each call opens the file with O_APPEND and hands the line to a single
/// write(2): the kernel then positions at the end and writes under the inode lock, so lines from
/// concurrent writers (threads or processes) never interleave or overwrite one another on a local
/// filesystem. (Not on NFS, where O_APPEND is emulated.) A crash mid-write can at worst leave a cut
/// last line, which a reader skips; we don't fsync each SMS, to keep the sandbox fast.
fn append_line(path: &Path, line: &[u8]) -> io::Result<()> {
    let open = || OpenOptions::new().create(true).append(true).open(path);
    let mut file = match open() {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::create_dir_all(path.parent().unwrap_or(Path::new(".")))?;
            open()?
        }
        other => other?,
    };
    // For a regular file, write_all is one write(2) unless the disk is full or a signal interrupts.
    file.write_all(line)
}

/// Writes `dir/name` so that readers see either no file or the whole file, never a partial one:
/// write a hidden temporary in the same directory, flush it to disk, then rename it into place.
fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    // Unique per call, so two concurrent sends of the same message don't share a temporary.
    let tmp = dir.join(format!(".{name}.{}.tmp", uuid::Uuid::now_v7()));
    let result = File::create_new(&tmp)
        .and_then(|mut file| {
            file.write_all(bytes)?;
            file.sync_all()
        })
        .and_then(|()| fs::rename(&tmp, dir.join(name)));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Recipient;
    use crate::domain::sms::{Encoding, SmsInfo};
    use chrono::{TimeZone, Utc};

    fn fixed_clock() -> Clock {
        Clock::starting_at(Utc.with_ymd_and_hms(2026, 11, 20, 23, 30, 0).unwrap())
    }

    fn sms(id: &str, number: &str, text: &str) -> OutboundMessage {
        OutboundMessage {
            language: "en".into(),
            id: id.into(),
            recipient: Recipient::Phone { number: number.into() },
            subject: None,
            text: text.into(),
            html: None,
            sms: Some(SmsInfo { encoding: Encoding::Ucs2, units: text.encode_utf16().count(), segments: 1 }),
        }
    }

    fn email(id: &str) -> OutboundMessage {
        OutboundMessage {
            language: "en".into(),
            id: id.into(),
            recipient: Recipient::Email { address: "sam@example.org".into() },
            subject: Some("Support – if you want it".into()),
            text: "Hello Zoë".into(),
            html: Some("<p>Hello Zoë</p>".into()),
            sms: None,
        }
    }

    fn letter(id: &str) -> OutboundMessage {
        OutboundMessage {
            language: "en".into(),
            id: id.into(),
            recipient: Recipient::Postal {
                name: "Sam Smith".into(),
                lines: vec!["1 High Street".into(), "Birmingham".into()],
                postcode: "B1 1AA".into(),
            },
            subject: None,
            text: "Dear Sam,\n\nWe are here if you want to talk.\n\nYours sincerely,\nJo".into(),
            html: None,
            sms: None,
        }
    }

    fn lines(path: &Path) -> Vec<serde_json::Value> {
        fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).expect("one JSON value per line"))
            .collect()
    }

    fn no_temporaries(dir: &Path) {
        for entry in fs::read_dir(dir).unwrap() {
            let name = entry.unwrap().file_name();
            assert!(!name.to_string_lossy().ends_with(".tmp"), "left a temporary: {name:?}");
        }
    }

    #[tokio::test]
    async fn sms_appends_one_json_line_per_message() {
        let outbox = tempfile::tempdir().unwrap();
        // The outbox does not exist yet: the provider creates it.
        let provider = SandboxSms::new(outbox.path().join("nested/outbox"), fixed_clock());
        let accepted = provider.send(&sms("m-1", "+447700900123", "Hi Zoë,\nreply STOP")).await.unwrap();
        assert_eq!(accepted, Accepted { provider: "sandbox", provider_ref: "m-1".into() });
        provider.send(&sms("m-2", "+447700900124", "Second")).await.unwrap();

        let mut records = lines(&outbox.path().join("nested/outbox/sms.jsonl"));
        assert_eq!(records.len(), 2);
        // Stamped by the clock given, which runs on from its start.
        let at: chrono::DateTime<Utc> = records[0]["at"].as_str().unwrap().parse().unwrap();
        let start = Utc.with_ymd_and_hms(2026, 11, 20, 23, 30, 0).unwrap();
        assert!(at >= start && at - start < chrono::TimeDelta::seconds(5), "{at}");
        records[0].as_object_mut().unwrap().remove("at");
        assert_eq!(
            records[0],
            serde_json::json!({
                "id": "m-1", "provider_ref": "m-1", "to": "+447700900123", "body": "Hi Zoë,\nreply STOP",
                "encoding": "ucs2", "segments": 1
            })
        );
        assert_eq!(records[1]["id"], "m-2");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_sms_sends_never_interleave() {
        let outbox = tempfile::tempdir().unwrap();
        // A body longer than a typical buffer, so interleaving would show.
        let body = "x".repeat(4000);
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..200 {
            // A provider per task: each opens the file itself, as separate processes would.
            let provider = SandboxSms::new(outbox.path(), Clock::system());
            let msg = sms(&format!("m-{i}"), "+447700900123", &body);
            tasks.spawn(async move { provider.send(&msg).await });
        }
        while let Some(result) = tasks.join_next().await {
            result.unwrap().unwrap();
        }
        let records = lines(&outbox.path().join("sms.jsonl"));
        assert_eq!(records.len(), 200);
        let mut ids: Vec<String> = records.iter().map(|r| r["id"].as_str().unwrap().to_owned()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 200);
        assert!(records.iter().all(|r| r["body"] == body.as_str()));
    }

    #[tokio::test]
    async fn forgetting_removes_a_messages_copies_and_keeps_the_rest() {
        let outbox = tempfile::tempdir().unwrap();
        let sms_provider = SandboxSms::new(outbox.path(), fixed_clock());
        sms_provider.send(&sms("msg_a", "+447700900111", "Hello Annabel")).await.unwrap();
        sms_provider.send(&sms("msg_b", "+447700900222", "Hello Bartholomew")).await.unwrap();
        sms_provider.send(&sms("msg_a", "+447700900111", "Hello Annabel")).await.unwrap();
        let email_provider = SandboxEmail::new(
            outbox.path(),
            "Victim Care <noreply@victimcare.example.org>".parse().unwrap(),
            "victimcare.example.org",
        );
        email_provider.send(&email("msg_a")).await.unwrap();
        email_provider.send(&email("msg_c")).await.unwrap();
        let before = std::fs::metadata(outbox.path().join("sms.jsonl")).unwrap().len();

        forget(outbox.path(), &["msg_a".to_string(), "../escape".to_string()]).unwrap();

        let text = std::fs::read_to_string(outbox.path().join("sms.jsonl")).unwrap();
        assert_eq!(text.len() as u64, before, "overwritten in place");
        assert!(!text.contains("Annabel") && !text.contains("900111"), "{text}");
        let records = lines(&outbox.path().join("sms.jsonl"));
        assert_eq!(records.len(), 3);
        assert_eq!(records[0], serde_json::json!({"id": "msg_a", "redacted": true}));
        assert_eq!(records[1]["body"], "Hello Bartholomew");
        assert!(!outbox.path().join("email/msg_a.eml").exists());
        assert!(outbox.path().join("email/msg_c.eml").exists());
        // Forgetting again, or in an outbox with nothing in it, is harmless.
        forget(outbox.path(), &["msg_a".to_string()]).unwrap();
        forget(&outbox.path().join("none"), &["msg_a".to_string()]).unwrap();
    }

    #[tokio::test]
    async fn sms_refuses_what_a_provider_would() {
        let outbox = tempfile::tempdir().unwrap();
        let provider = SandboxSms::new(outbox.path(), Clock::system());
        for msg in [
            sms("m", "07700900123", "Hi"),
            sms("m", "+44 7700 900123", "Hi"),
            sms("m", "+447700900123", ""),
            email("m"),
        ] {
            assert!(matches!(provider.send(&msg).await, Err(SendError::Permanent(_))));
        }
        assert!(!outbox.path().join("sms.jsonl").exists());
    }

    #[tokio::test]
    async fn email_is_written_as_an_eml_file() {
        let outbox = tempfile::tempdir().unwrap();
        let from: Mailbox = "Northgate Victim Care <noreply@victimcare.example.org>".parse().unwrap();
        let provider = SandboxEmail::new(outbox.path(), from, "victimcare.example.org");
        let accepted = provider.send(&email("0190f3a2-7c1e")).await.unwrap();
        assert_eq!(accepted, Accepted { provider: "sandbox", provider_ref: "0190f3a2-7c1e".into() });

        let eml = fs::read(outbox.path().join("email/0190f3a2-7c1e.eml")).unwrap();
        let parsed = mail_parser::MessageParser::default().parse(&eml).unwrap();
        assert_eq!(parsed.message_id(), Some("0190f3a2-7c1e@victimcare.example.org"));
        assert_eq!(parsed.body_text(0).unwrap().trim_end(), "Hello Zoë");
        no_temporaries(&outbox.path().join("email"));

        for msg in [sms("m", "+447700900123", "Hi"), email("../escape")] {
            assert!(matches!(provider.send(&msg).await, Err(SendError::Permanent(_))));
        }
        assert!(!outbox.path().join("escape.eml").exists());
    }

    #[tokio::test]
    async fn letter_is_written_as_a_pdf_file() {
        let outbox = tempfile::tempdir().unwrap();
        let provider = SandboxLetter::new(outbox.path(), LetterSender::default(), fixed_clock());
        let accepted = provider.send(&letter("0190f3a2-7c1e")).await.unwrap();
        assert_eq!(accepted.provider_ref, "0190f3a2-7c1e");

        let pdf = fs::read(outbox.path().join("letters/0190f3a2-7c1e.pdf")).unwrap();
        assert!(pdf.starts_with(b"%PDF"));
        no_temporaries(&outbox.path().join("letters"));
        if std::process::Command::new("pdftotext").arg("-v").output().is_ok() {
            let out = std::process::Command::new("pdftotext")
                .arg(outbox.path().join("letters/0190f3a2-7c1e.pdf"))
                .arg("-")
                .output()
                .unwrap();
            // 23:30 UTC on 20 November is still 20 November in London (GMT).
            assert!(String::from_utf8(out.stdout).unwrap().contains("20 November 2026"));
        }

        for msg in [email("m"), letter("a/b")] {
            assert!(matches!(provider.send(&msg).await, Err(SendError::Permanent(_))));
        }
    }

    #[tokio::test]
    async fn unwritable_outbox_is_transient() {
        let outbox = tempfile::tempdir().unwrap();
        // A file where the directory should be: creating the directory fails.
        let blocked = outbox.path().join("blocked");
        fs::write(&blocked, b"").unwrap();
        let from: Mailbox = "Care <noreply@example.org>".parse().unwrap();
        let result = SandboxEmail::new(&blocked, from, "example.org").send(&email("m-1")).await;
        assert!(matches!(result, Err(SendError::Transient(_))), "{result:?}");
        let result = SandboxSms::new(&blocked, Clock::system()).send(&sms("m-1", "+447700900123", "Hi")).await;
        assert!(matches!(result, Err(SendError::Transient(_))), "{result:?}");
    }

    #[test]
    fn atomic_write_replaces_whole_files() {
        let dir = tempfile::tempdir().unwrap();
        write_atomically(dir.path(), "a.eml", b"first").unwrap();
        write_atomically(dir.path(), "a.eml", b"second").unwrap();
        assert_eq!(fs::read(dir.path().join("a.eml")).unwrap(), b"second");
        no_temporaries(dir.path());
    }
}
