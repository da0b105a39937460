//! The database: SQLite (embedded default) or Postgres, through sqlx's `Any` driver so that one
//! set of queries serves both. Times are stored as epoch milliseconds and JSON as text, which both
//! databases and the `Any` driver handle alike; the few dialect differences live in `Dialect`.

mod accounts;
mod calls;
mod cases;
mod commissioner;
mod dead_letters;
mod deliveries;
mod event_outbox;
mod events;
mod history;
mod messages;
mod oncall;
mod outbox;
mod outreach;
mod replies;
mod reports;
mod retention;
mod review;
mod sessions;
mod statements;
mod survey;
mod templates;
mod two_factor;

pub use accounts::{
    ApiKey, ApiKeyListing, AuditAction, AuditEvent, DEFAULT_RATE_LIMIT, KeyOptions, StaffAccount, audit, key_hash,
};
pub use calls::{CallRecord, NewCall};
pub use cases::CaseRecord;
pub use commissioner::DeclinedRow;
pub use dead_letters::DeadLetter;
pub use deliveries::NewMessageRow;
pub use event_outbox::OutboundEvent;
pub use events::{Event, EventRow};
pub use history::{Histories, JobNote, ThisJob};
pub use messages::{Claim, MessageKey, MessageRecord, NewMessage, ReportedMessage};
pub use oncall::{
    Acknowledged, ITEM_PREFIX, NOTIFICATION_PREFIX, NewUrgentItem, OncallNotification, UrgentItem, UrgentTiming,
};
pub use outbox::DueJob;
pub use outreach::{NewOutreach, OutreachRecord};
pub use replies::{ReplyRecord, SuppressionKind};
pub use reports::{AcceptedRow, CaseRow, MessageRow};
pub use retention::{Cursor, DueCallReason, DueMessage, DueNote, DueReply, FinishedJob, StaleJob};
pub use review::{OpenAlert, StaffNote, UnmatchedReply, Waiting, WaitingItem, review_code};
pub use sessions::{LOGIN_FAILURES_FORGOTTEN_MS, SessionLimits, StaffSession};
pub use statements::Writes;
use statements::json;
pub use templates::{NewVersion, TemplateState, TemplateVersion};
pub use two_factor::{LoginChallenge, TwoFactor};

pub use crate::secrets::random_token;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Transaction};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("not found")]
    NotFound,
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("stored data is not valid: {0}")]
    Corrupt(String),
    /// The personal data this needs was removed by retention or erasure.
    #[error("redacted")]
    Redacted,
    /// The key of the address hashes is missing, weak, or not this database's.
    #[error("{0}")]
    HashKey(String),
    /// The database could not be reached by the batch this was part of (another item of it was
    /// told the error itself), or the batch did not answer.
    #[error("database unavailable: {0}")]
    Unavailable(String),
}

impl StoreError {
    /// The database could not be reached (as opposed to a query that is wrong).
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Unavailable(_) => true,
            StoreError::Database(
                sqlx::Error::Io(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::Tls(_)
                | sqlx::Error::WorkerCrashed
                | sqlx::Error::Protocol(_),
            ) => true,
            // Postgres going away: connection exceptions (08…), and shutting down or starting up
            // (57P01 admin shutdown, 57P02 crash shutdown, 57P03 cannot connect now).
            StoreError::Database(sqlx::Error::Database(e)) => {
                e.code().is_some_and(|c| c.starts_with("08") || c.starts_with("57P"))
            }
            _ => false,
        }
    }

    pub fn is_unique_violation(&self) -> bool {
        matches!(self, StoreError::Database(sqlx::Error::Database(e)) if e.is_unique_violation())
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A write transaction; `&mut *tx` is its connection. On SQLite it also holds the process's
/// write turn (see `Store::begin`).
pub struct Tx {
    inner: Transaction<'static, sqlx::Any>,
    _turn: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Tx {
    pub async fn commit(self) -> Result<()> {
        Ok(self.inner.commit().await?)
    }
}

impl std::ops::Deref for Tx {
    type Target = sqlx::AnyConnection;
    fn deref(&self) -> &sqlx::AnyConnection {
        &self.inner
    }
}

impl std::ops::DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut sqlx::AnyConnection {
        &mut self.inner
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    dialect: Dialect,
    keyer: AddressKeyer,
    /// SQLite: one write transaction at a time in this process, taken in turn.
    write_turn: Arc<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("dialect", &self.dialect).finish_non_exhaustive()
    }
}

/// Where the key of the address hashes comes from (see `crate::secrets`).
#[derive(Debug, Clone)]
pub enum HashKeySource {
    /// `SAFEREACH_HASH_KEY`.
    Given(String),
    /// The key file beside an SQLite database (generated there on first start).
    File(PathBuf),
    /// An in-memory SQLite database: a key for this process only.
    Ephemeral,
    /// Nothing given for a database that needs it (Postgres).
    Missing,
}

impl HashKeySource {
    pub fn from_config(config: &crate::config::Config) -> HashKeySource {
        match (&config.hash_key, crate::secrets::key_file_for(&config.database_url)) {
            (Some(key), _) if !key.is_empty() => HashKeySource::Given(key.clone()),
            (_, Some(file)) => HashKeySource::File(file),
            _ if config.is_sqlite() => HashKeySource::Ephemeral,
            _ => HashKeySource::Missing,
        }
    }
}

/// The variable and the key file entry of the hash key.
pub const HASH_KEY_VAR: &str = "SAFEREACH_HASH_KEY";
/// Where versions before 0.2 kept the hash key: in the database, beside the hashes.
const LEGACY_KEY_SETTING: &str = "address_key";
/// A pooled connection idle this long is pinged before use (see `connect`).
const IDLE_BEFORE_PING: Duration = Duration::from_secs(1);
/// A check value of the key (an HMAC of a constant), so that a process started with another
/// key refuses to start instead of silently matching no suppression.
const KEY_CHECK_SETTING: &str = "hash_key_check";

impl Store {
    /// Connect (creating an SQLite file when missing), migrate when asked, and load the key of
    /// the address hashes from outside the database (see [`HashKeySource`]). A key still kept in
    /// the database by an older version is moved out into the key file (SQLite) or must be
    /// exported and given (Postgres, `safereach hash-key export`), then deleted from it.
    pub async fn open(url: &str, migrate: bool, key: &HashKeySource) -> Result<Store> {
        let (pool, dialect) = Self::connect(url).await?;
        if migrate {
            Self::migrate(&pool, dialect).await?;
        }
        let key = resolve_hash_key(&pool, key).await?;
        Ok(Store { pool, dialect, keyer: AddressKeyer::new(key.as_bytes()), write_turn: Arc::default() })
    }

    /// The hash key an older version kept in the database, if it is still there (for
    /// `safereach hash-key export`); connects without needing the key.
    pub async fn legacy_hash_key(url: &str) -> Result<Option<String>> {
        let (pool, _) = Self::connect(url).await?;
        setting(&pool, LEGACY_KEY_SETTING).await
    }

    async fn connect(url: &str) -> Result<(AnyPool, Dialect)> {
        sqlx::any::install_default_drivers();
        let dialect = if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Dialect::Postgres
        } else if url.starts_with("sqlite:") {
            Dialect::Sqlite
        } else {
            return Err(StoreError::Corrupt("SAFEREACH_DATABASE_URL must start with sqlite: or postgres:".into()));
        };
        let url = match dialect {
            // Create the file on first start; WAL lets readers work while a writer commits.
            Dialect::Sqlite if !url.contains("mode=") => {
                format!("{url}{}mode=rwc", if url.contains('?') { '&' } else { '?' })
            }
            _ => url.to_string(),
        };
        let options = AnyConnectOptions::from_str(&url)?;
        let pool = AnyPoolOptions::new()
            .max_connections(if dialect == Dialect::Sqlite { 4 } else { 10 })
            .acquire_timeout(Duration::from_secs(5))
            // sqlx pings a connection on every acquire (a round trip per transaction on
            // Postgres) and again when it comes back; one back a moment ago is alive. Only one
            // that sat idle is pinged (and replaced when the server went away meanwhile).
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= IDLE_BEFORE_PING {
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            })
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if dialect == Dialect::Sqlite {
                        sqlx::query("PRAGMA busy_timeout = 10000").execute(&mut *conn).await?;
                        sqlx::query("PRAGMA foreign_keys = ON").execute(&mut *conn).await?;
                        // What is deleted or redacted is overwritten, not left in free pages.
                        sqlx::query("PRAGMA secure_delete = ON").execute(&mut *conn).await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        if dialect == Dialect::Sqlite {
            sqlx::query("PRAGMA journal_mode = WAL").execute(&pool).await?;
        }
        Ok((pool, dialect))
    }

    /// Apply this crate's migrations. They are booked in their own table: the queue library
    /// keeps its migrations in sqlx's default one, in the same database.
    async fn migrate(pool: &AnyPool, dialect: Dialect) -> Result<()> {
        let mut migrator = match dialect {
            Dialect::Sqlite => sqlx::migrate!("./migrations/sqlite"),
            Dialect::Postgres => sqlx::migrate!("./migrations/postgres"),
        };
        migrator.dangerous_set_table_name("safereach_migrations");
        migrator.run(pool).await?;
        Ok(())
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Writes to run as one (see `Writes`).
    pub fn writes(&self) -> Writes {
        Writes::new(self.dialect)
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// A write transaction. SQLite takes the write lock up front so that two writers never
    /// deadlock upgrading read locks; and since it has one writer at a time anyway, writers of
    /// this process wait their turn here, in order, rather than in SQLite's busy handler, which
    /// sleeps and retries (under load most of the time went in those sleeps, and requests timed
    /// out waiting for a connection).
    pub async fn begin(&self) -> Result<Tx> {
        Ok(match self.dialect {
            Dialect::Sqlite => {
                let turn = self.write_turn.clone().lock_owned().await;
                Tx { inner: self.pool.begin_with("BEGIN IMMEDIATE").await?, _turn: Some(turn) }
            }
            Dialect::Postgres => Tx { inner: self.pool.begin().await?, _turn: None },
        })
    }

    /// `FOR UPDATE` where the database has row locks; SQLite's write lock already serialises.
    fn for_update(&self) -> &'static str {
        match self.dialect {
            Dialect::Sqlite => "",
            Dialect::Postgres => " FOR UPDATE",
        }
    }

    /// Keyed hash of a normalised address: lets us match numbers and suppressions without
    /// keeping the address itself, and survives redaction.
    pub fn address_key(&self, normalised: &str) -> String {
        self.keyer.key(normalised)
    }

    /// A keyed fingerprint of a whole request, to tell a repeat of its `request_id` from a
    /// different body. Keyed (unlike a plain hash), it cannot confirm a guess of the request
    /// without the hash key; retention blanks it with the request.
    pub fn request_fingerprint(&self, canonical: &str) -> String {
        self.keyer.key(&format!("request\n{canonical}"))
    }

    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn setting(&self, key: &str) -> Result<Option<String>> {
        setting(&self.pool, key).await
    }

    pub async fn delete_setting(&self, key: &str) -> Result<()> {
        sqlx::query("DELETE FROM settings WHERE key = $1").bind(key).execute(&self.pool).await?;
        Ok(())
    }
}

async fn setting(pool: &AnyPool, key: &str) -> Result<Option<String>> {
    Ok(sqlx::query_scalar::<_, String>("SELECT value FROM settings WHERE key = $1")
        .bind(key)
        .fetch_optional(pool)
        .await?)
}

async fn resolve_hash_key(pool: &AnyPool, source: &HashKeySource) -> Result<String> {
    let legacy = setting(pool, LEGACY_KEY_SETTING).await?;
    let file_error = |e: crate::secrets::SecretError| StoreError::HashKey(e.to_string());
    let key = match source {
        HashKeySource::Given(key) => {
            crate::secrets::check_strength(HASH_KEY_VAR, key).map_err(file_error)?;
            key.clone()
        }
        HashKeySource::File(path) => {
            let file = crate::secrets::KeyFile::new(path);
            // An older version's key moves out of the database as it is, so that the stored
            // hashes (suppressions above all) still match.
            let init = legacy.clone().unwrap_or_else(crate::secrets::generate);
            file.get_or_add(HASH_KEY_VAR, || init).map_err(file_error)?.0
        }
        HashKeySource::Ephemeral => legacy.clone().unwrap_or_else(crate::secrets::generate),
        HashKeySource::Missing if legacy.is_some() => {
            return Err(StoreError::HashKey(format!(
                "{HASH_KEY_VAR} is not set, and this database still keeps its hash key inside it: print it with \
                 `safereach hash-key export`, set {HASH_KEY_VAR} to it, and start again (it is then deleted from the database)"
            )));
        }
        HashKeySource::Missing => {
            return Err(StoreError::HashKey(format!(
                "{HASH_KEY_VAR} must be set on Postgres: the key of the phone and address hashes, kept outside the \
                 database (at least 32 random bytes, e.g. `openssl rand -hex 32`)"
            )));
        }
    };
    let wrong = || {
        StoreError::HashKey(format!(
            "{HASH_KEY_VAR} is not the key this database's hashes were made with: with it no suppression or \
             number would match (give the key it was started with)"
        ))
    };
    if legacy.as_ref().is_some_and(|l| *l != key) {
        return Err(wrong());
    }
    let check = AddressKeyer::new(key.as_bytes()).key("safereach hash key check");
    match setting(pool, KEY_CHECK_SETTING).await? {
        Some(stored) if stored != check => return Err(wrong()),
        Some(_) => {}
        None => {
            sqlx::query("INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
                .bind(KEY_CHECK_SETTING)
                .bind(&check)
                .execute(pool)
                .await?;
            if setting(pool, KEY_CHECK_SETTING).await?.as_deref() != Some(check.as_str()) {
                return Err(wrong());
            }
        }
    }
    if legacy.is_some() {
        // Now kept outside (and checked): the copy inside goes. SQLite overwrites what it
        // deletes (`secure_delete`, set on every connection), so the file keeps no trace of it.
        sqlx::query("DELETE FROM settings WHERE key = $1").bind(LEGACY_KEY_SETTING).execute(pool).await?;
        tracing::info!("the hash key was moved out of the database");
    }
    Ok(key)
}

/// A boolean column. Flags are stored as 0/1 BIGINT because sqlx's `Any` driver cannot decode
/// SQLite's BOOLEAN; read them with `#[sqlx(try_from = "i64")]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flag(pub bool);

impl From<i64> for Flag {
    fn from(v: i64) -> Flag {
        Flag(v != 0)
    }
}

/// SQL assembled at run time. Every caller builds it only from constants and `$n` placeholders;
/// values are always bound, never formatted in.
fn dynamic(sql: String) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(sql)
}

/// Sortable unique ids (UUIDv7) with a readable prefix.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

#[derive(Clone)]
struct AddressKeyer {
    mac: Hmac<Sha256>,
}

impl AddressKeyer {
    fn new(key: &[u8]) -> AddressKeyer {
        AddressKeyer { mac: Hmac::new_from_slice(key).expect("HMAC takes any key length") }
    }

    fn key(&self, normalised: &str) -> String {
        let mut mac = self.mac.clone();
        mac.update(normalised.as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..16])
    }
}
