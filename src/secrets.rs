//! Secrets that must not live in the database: the key of the address hashes
//! (`SAFEREACH_HASH_KEY`) and the webhook token of each provider's callbacks.
//!
//! Each is at least 32 random bytes. Given in the environment, a secret is checked here and a
//! weak one refuses the start, naming its variable. On the embedded default (an SQLite file), a
//! secret that is not given is generated once into a key file beside the database
//! (`<database file>.keys`, readable by its owner only), never inside it: a copy of the database
//! alone then gives back neither the hashed numbers nor a way to forge a callback.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::config::Config;

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("{var} is too weak: {why} (use at least 32 random bytes, e.g. `openssl rand -hex 32`)")]
    Weak { var: &'static str, why: String },
    #[error("{var} and {other} are the same secret: each provider needs its own")]
    Shared { var: &'static str, other: &'static str },
    #[error("{var} must be set for the providers configured (at least 32 random bytes, e.g. `openssl rand -hex 32`)")]
    Missing { var: &'static str },
    #[error("the key file {path} cannot be used: {source}")]
    File { path: String, source: std::io::Error },
    #[error("the key file {path} is not valid: {why}")]
    Corrupt { path: String, why: String },
}

/// Values known from documentation and old examples; refused whatever their length.
const WELL_KNOWN_WORDS: &[&str] = &["change", "example", "secret", "password", "token", "webhook", "sandbox", "kannel"];

/// A secret's strength: only URL-safe characters (tokens go into callback URLs as they are), at
/// least 256 bits if every character were random (64 hex digits, or 43 characters of base64url),
/// no word from the examples, and enough different characters to rule out a typed pattern.
pub fn check_strength(var: &'static str, value: &str) -> Result<(), SecretError> {
    let weak = |why: &str| Err(SecretError::Weak { var, why: why.to_string() });
    if !value.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b)) {
        return weak("only letters, digits and - . _ ~ may be used");
    }
    let bits_per_char = if value.bytes().all(|b| b.is_ascii_hexdigit()) { 4 } else { 6 };
    if value.len() * bits_per_char < 256 {
        return weak(&format!("{} characters are fewer than 32 random bytes", value.len()));
    }
    let lower = value.to_ascii_lowercase();
    if let Some(word) = WELL_KNOWN_WORDS.iter().find(|w| lower.contains(*w)) {
        return weak(&format!("it contains the word {word:?}, so it is not random"));
    }
    let mut distinct: Vec<u8> = value.bytes().collect();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() < 10 {
        return weak("it repeats a few characters, so it is not random");
    }
    Ok(())
}

/// 32 random bytes as 64 hex digits.
pub fn generate() -> String {
    random_token()
}

/// Refuse two variables holding one secret: whoever holds one provider's token must not hold
/// another's.
pub fn all_different(secrets: &[(&'static str, Option<&str>)]) -> Result<(), SecretError> {
    for (i, (var, value)) in secrets.iter().enumerate() {
        let Some(value) = value else { continue };
        if let Some((other, _)) = secrets[..i].iter().find(|(_, v)| v.as_deref() == Some(*value)) {
            return Err(SecretError::Shared { var, other });
        }
    }
    Ok(())
}

/// The webhook token of each provider callback that is mounted (None: that provider is not
/// configured, so its routes are not there).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebhookTokens {
    pub sandbox: Option<String>,
    pub kannel: Option<String>,
    pub print: Option<String>,
    pub bounce: Option<String>,
}

pub const SANDBOX_TOKEN_VAR: &str = "SAFEREACH_SANDBOX_WEBHOOK_TOKEN";

/// Which providers the configuration uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Configured {
    pub sandbox: bool,
    pub kannel: bool,
    pub twilio: bool,
    pub print: bool,
    pub bounce: bool,
}

impl Configured {
    pub fn from_config(config: &Config) -> Configured {
        let sms: Vec<&str> = config.sms_provider.split(',').map(str::trim).collect();
        Configured {
            sandbox: sms.contains(&"sandbox")
                || config.email_provider == "sandbox"
                || config.letter_provider == "sandbox",
            kannel: sms.contains(&"kannel"),
            twilio: sms.contains(&"twilio"),
            print: config.letter_provider == "http",
            bounce: config.email_provider == "smtp",
        }
    }
}

impl WebhookTokens {
    /// The tokens of the configured providers, from the environment, each checked; the
    /// sandbox's may instead come from `sandbox_fallback` (the key file). A configured provider
    /// without its token refuses the start, naming the variable.
    pub fn from_config(
        config: &Config,
        sandbox_fallback: impl FnOnce() -> Result<Option<String>, SecretError>,
    ) -> Result<WebhookTokens, SecretError> {
        let on = Configured::from_config(config);
        let given = |v: &Option<String>| v.clone().filter(|t| !t.is_empty());
        let need = |var: &'static str, value: &Option<String>, used: bool| -> Result<Option<String>, SecretError> {
            if !used {
                return Ok(None);
            }
            let value = given(value).ok_or(SecretError::Missing { var })?;
            check_strength(var, &value)?;
            Ok(Some(value))
        };
        let sandbox = match (on.sandbox, given(&config.sandbox_webhook_token), given(&config.webhook_token)) {
            (false, _, _) => None,
            (true, Some(t), _) => Some((SANDBOX_TOKEN_VAR, t)),
            (true, None, Some(t)) => Some(("SAFEREACH_WEBHOOK_TOKEN", t)),
            (true, None, None) => sandbox_fallback()?.map(|t| (SANDBOX_TOKEN_VAR, t)),
        };
        let sandbox = match sandbox {
            Some((var, token)) => {
                check_strength(var, &token)?;
                Some(token)
            }
            None if on.sandbox => return Err(SecretError::Missing { var: SANDBOX_TOKEN_VAR }),
            None => None,
        };
        let tokens = WebhookTokens {
            sandbox,
            kannel: need("SAFEREACH_KANNEL_WEBHOOK_TOKEN", &config.kannel_webhook_token, on.kannel)?,
            print: need("SAFEREACH_PRINT_WEBHOOK_TOKEN", &config.print_webhook_token, on.print)?,
            bounce: need("SAFEREACH_BOUNCE_WEBHOOK_TOKEN", &config.bounce_webhook_token, on.bounce)?,
        };
        all_different(&[
            (SANDBOX_TOKEN_VAR, tokens.sandbox.as_deref()),
            ("SAFEREACH_KANNEL_WEBHOOK_TOKEN", tokens.kannel.as_deref()),
            ("SAFEREACH_PRINT_WEBHOOK_TOKEN", tokens.print.as_deref()),
            ("SAFEREACH_BOUNCE_WEBHOOK_TOKEN", tokens.bounce.as_deref()),
            ("SAFEREACH_HASH_KEY", config.hash_key.as_deref().filter(|k| !k.is_empty())),
        ])?;
        Ok(tokens)
    }
}

/// The key file of an SQLite database URL (`sqlite://path` or `sqlite:path`); None for an
/// in-memory database or another database.
pub fn key_file_for(database_url: &str) -> Option<PathBuf> {
    let rest = database_url.strip_prefix("sqlite://").or_else(|| database_url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path.contains(":memory:") {
        return None;
    }
    Some(PathBuf::from(format!("{path}.keys")))
}

/// The key file beside an SQLite database: `NAME=value` lines, created readable by its owner
/// only. Reads and additions hold an exclusive lock on the file, so two processes starting at
/// once on one database agree on one value.
pub struct KeyFile {
    path: PathBuf,
}

impl KeyFile {
    pub fn new(path: impl Into<PathBuf>) -> KeyFile {
        KeyFile { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The value of `name` in the file, if it is there.
    pub fn get(&self, name: &str) -> Result<Option<String>, SecretError> {
        if !self.path.exists() {
            return Ok(None);
        }
        let mut file = File::open(&self.path).map_err(|e| self.io(e))?;
        file.lock_shared().map_err(|e| self.io(e))?;
        let found = self.read(&mut file).map(|entries| lookup(&entries, name));
        let _ = file.unlock();
        found
    }

    /// The value of `name`, written with `make` first when the file does not have it. Returns
    /// the value and whether it was made now.
    pub fn get_or_add(&self, name: &str, make: impl FnOnce() -> String) -> Result<(String, bool), SecretError> {
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| self.io(e))?;
        }
        let mut options = OpenOptions::new();
        options.read(true).append(true).create(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&self.path).map_err(|e| self.io(e))?;
        file.lock().map_err(|e| self.io(e))?;
        let result = (|| {
            let entries = self.read(&mut file)?;
            if let Some(value) = lookup(&entries, name) {
                return Ok((value, false));
            }
            let value = make();
            file.write_all(format!("{name}={value}\n").as_bytes()).map_err(|e| self.io(e))?;
            file.sync_all().map_err(|e| self.io(e))?;
            Ok((value, true))
        })();
        let _ = file.unlock();
        result
    }

    fn read(&self, file: &mut File) -> Result<Vec<(String, String)>, SecretError> {
        let mut text = String::new();
        file.seek(SeekFrom::Start(0)).map_err(|e| self.io(e))?;
        file.read_to_string(&mut text).map_err(|e| self.io(e))?;
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| {
                l.split_once('=').map(|(k, v)| (k.trim().to_string(), v.trim().to_string())).ok_or_else(|| {
                    SecretError::Corrupt { path: self.path.display().to_string(), why: "a line without `=`".into() }
                })
            })
            .collect()
    }

    fn io(&self, source: std::io::Error) -> SecretError {
        SecretError::File { path: self.path.display().to_string(), source }
    }
}

fn lookup(entries: &[(String, String)], name: &str) -> Option<String> {
    entries.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).filter(|v| !v.is_empty())
}

/// 32 random bytes, hex: API keys, tokens and secrets.
pub fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_are_strong_and_short_or_known_ones_are_not() {
        for _ in 0..200 {
            check_strength("X", &generate()).unwrap();
        }
        // 32 bytes as base64url (43 characters) will do too.
        check_strength("X", "q8Zr1Xn0Ck3vB9sLwE7tYhU2mPa6dGfJ4oRiKxNcSVe").unwrap();
        for (weak, why) in [
            ("change-me", "fewer than 32"),
            ("test-webhook-token", "fewer than 32"),
            (&"ab".repeat(40), "repeats"),
            ("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde", "fewer than 32"),
            ("my-webhook-q8Zr1Xn0Ck3vB9sLwE7tYhU2mPa6dGfJ4oRiKx", "webhook"),
            ("q8Zr1Xn0Ck3vB9sLwE7tYhU2mPa6dGfJ4oRiKxNcSVe/", "letters, digits"),
        ] {
            let err = check_strength("SAFEREACH_KANNEL_WEBHOOK_TOKEN", weak).unwrap_err().to_string();
            assert!(err.starts_with("SAFEREACH_KANNEL_WEBHOOK_TOKEN is too weak"), "{err}");
            assert!(err.contains(why), "{weak}: {err}");
        }
    }

    #[test]
    fn one_secret_may_not_serve_two_providers() {
        let (a, b) = (generate(), generate());
        all_different(&[("A", Some(&a)), ("B", None), ("C", Some(&b))]).unwrap();
        let err = all_different(&[("A", Some(&a)), ("B", Some(&b)), ("C", Some(&a))]).unwrap_err();
        assert_eq!(err.to_string(), "C and A are the same secret: each provider needs its own");
    }

    #[test]
    fn the_key_file_sits_beside_an_sqlite_file_only() {
        assert_eq!(key_file_for("sqlite://safereach.db"), Some(PathBuf::from("safereach.db.keys")));
        assert_eq!(key_file_for("sqlite:///var/lib/s.db?mode=rwc"), Some(PathBuf::from("/var/lib/s.db.keys")));
        assert_eq!(key_file_for("sqlite::memory:"), None);
        assert_eq!(key_file_for("postgres://x/y"), None);
    }

    #[test]
    fn a_key_file_keeps_what_was_added_first_and_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let file = KeyFile::new(dir.path().join("db.sqlite.keys"));
        assert_eq!(file.get("A").unwrap(), None);
        assert_eq!(file.get_or_add("A", || "one".into()).unwrap(), ("one".into(), true));
        assert_eq!(file.get_or_add("A", || "two".into()).unwrap(), ("one".into(), false));
        assert_eq!(file.get_or_add("B", || "three".into()).unwrap(), ("three".into(), true));
        assert_eq!(file.get("A").unwrap().as_deref(), Some("one"));
        assert_eq!(std::fs::read_to_string(file.path()).unwrap(), "A=one\nB=three\n");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(file.path()).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "only its owner may read the key file");
        }
    }
}
