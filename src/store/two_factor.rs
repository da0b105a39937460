//! Staff second factors (TOTP): the sealed secrets, recovery codes and the sign-ins that wait for
//! a code. The secret is sealed with ChaCha20-Poly1305 under a key derived from the hash key,
//! which is never kept in the database, and bound to its username; recovery codes are kept as
//! keyed hashes. A copy of the database alone can neither make codes nor use a recovery code.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::Mac;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use sha2::{Digest, Sha256};
use sqlx::AnyConnection;

use super::{Result, Store, StoreError, random_token};

/// A member of staff's second factor.
#[derive(Debug, Clone)]
pub struct TwoFactor {
    pub secret: Vec<u8>,
    pub created_at: i64,
    /// None: enrolment started, not confirmed with a code yet.
    pub enrolled_at: Option<i64>,
    /// The last time step a code was accepted for.
    pub last_step: i64,
}

/// A sign-in whose password was right, waiting for its second factor.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LoginChallenge {
    pub username: String,
    pub next: String,
    pub attempts: i64,
}

fn id_hash(id: &str) -> String {
    hex::encode(Sha256::digest(id.as_bytes()))
}

impl Store {
    fn sealing_key(&self) -> LessSafeKey {
        let mut mac = self.keyer.mac.clone();
        mac.update(b"safereach staff second factor v1");
        let key = mac.finalize().into_bytes();
        LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, &key).expect("a 32-byte key"))
    }

    fn seal(&self, username: &str, secret: &[u8]) -> String {
        let nonce: [u8; NONCE_LEN] = rand::random();
        let mut sealed = secret.to_vec();
        self.sealing_key()
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(username.as_bytes()), &mut sealed)
            .expect("sealing a short secret");
        STANDARD.encode([nonce.as_slice(), &sealed].concat())
    }

    fn unseal(&self, username: &str, stored: &str) -> Result<Vec<u8>> {
        let corrupt = || StoreError::Corrupt("a second factor that does not open with this hash key".into());
        let bytes = STANDARD.decode(stored).map_err(|_| corrupt())?;
        if bytes.len() < NONCE_LEN {
            return Err(corrupt());
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| corrupt())?;
        let mut sealed = sealed.to_vec();
        let secret = self
            .sealing_key()
            .open_in_place(nonce, Aad::from(username.as_bytes()), &mut sealed)
            .map_err(|_| corrupt())?;
        Ok(secret.to_vec())
    }

    /// The keyed hash a recovery code is kept as.
    fn recovery_hash(&self, username: &str, code: &str) -> String {
        self.address_key(&format!("recovery-code:{username}:{code}"))
    }

    pub async fn two_factor(&self, username: &str) -> Result<Option<TwoFactor>> {
        let row: Option<(String, i64, Option<i64>, i64)> = sqlx::query_as(
            "SELECT secret, created_at, enrolled_at, last_step FROM staff_two_factor WHERE username = $1",
        )
        .bind(username)
        .fetch_optional(&self.pool)
        .await?;
        let Some((sealed, created_at, enrolled_at, last_step)) = row else { return Ok(None) };
        Ok(Some(TwoFactor { secret: self.unseal(username, &sealed)?, created_at, enrolled_at, last_step }))
    }

    /// Whether `username` has a second factor on (enrolled, not just started).
    pub async fn has_two_factor(&self, username: &str) -> Result<bool> {
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM staff_two_factor WHERE username = $1 AND enrolled_at IS NOT NULL")
                .bind(username)
                .fetch_one(&self.pool)
                .await?;
        Ok(n > 0)
    }

    /// Start (or start again) an enrolment with `secret`; refused once enrolled.
    pub async fn start_two_factor(&self, username: &str, secret: &[u8], now: i64) -> Result<()> {
        let sealed = self.seal(username, secret);
        let changed = sqlx::query(
            "INSERT INTO staff_two_factor (username, secret, created_at) VALUES ($1, $2, $3)
             ON CONFLICT (username) DO UPDATE SET secret = excluded.secret, created_at = excluded.created_at
             WHERE staff_two_factor.enrolled_at IS NULL",
        )
        .bind(username)
        .bind(sealed)
        .bind(now)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if changed == 0 {
            return Err(StoreError::Conflict("a second factor is already set up".into()));
        }
        Ok(())
    }

    /// The enrolment was confirmed with a code for time step `step`: the second factor is on.
    /// False when no enrolment was waiting.
    pub async fn set_two_factor_enrolled(
        &self,
        conn: &mut AnyConnection,
        username: &str,
        step: i64,
        now: i64,
    ) -> Result<bool> {
        Ok(sqlx::query(
            "UPDATE staff_two_factor SET enrolled_at = $2, last_step = $3 WHERE username = $1 AND enrolled_at IS NULL",
        )
        .bind(username)
        .bind(now)
        .bind(step)
        .execute(conn)
        .await?
        .rows_affected()
            == 1)
    }

    /// `username`'s recovery codes are these (kept as keyed hashes); any earlier ones go.
    pub async fn replace_recovery_codes(
        &self,
        conn: &mut AnyConnection,
        username: &str,
        codes: &[String],
    ) -> Result<()> {
        sqlx::query("DELETE FROM staff_recovery_codes WHERE username = $1").bind(username).execute(&mut *conn).await?;
        for code in codes {
            sqlx::query("INSERT INTO staff_recovery_codes (username, code_hash) VALUES ($1, $2)")
                .bind(username)
                .bind(self.recovery_hash(username, code))
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    }

    /// Accept a code for time step `step` once: false when that step (or a later one) was used
    /// already (a code seen over a shoulder or replayed).
    pub async fn use_code_step(&self, username: &str, step: i64) -> Result<bool> {
        Ok(sqlx::query(
            "UPDATE staff_two_factor SET last_step = $2
             WHERE username = $1 AND enrolled_at IS NOT NULL AND last_step < $2",
        )
        .bind(username)
        .bind(step)
        .execute(&self.pool)
        .await?
        .rows_affected()
            == 1)
    }

    /// Use a recovery code (normalised): true once, false ever after.
    pub async fn use_recovery_code(&self, username: &str, code: &str, now: i64) -> Result<bool> {
        Ok(sqlx::query(
            "UPDATE staff_recovery_codes SET used_at = $3 WHERE username = $1 AND code_hash = $2 AND used_at IS NULL",
        )
        .bind(username)
        .bind(self.recovery_hash(username, code))
        .bind(now)
        .execute(&self.pool)
        .await?
        .rows_affected()
            == 1)
    }

    pub async fn recovery_codes_left(&self, username: &str) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM staff_recovery_codes WHERE username = $1 AND used_at IS NULL")
            .bind(username)
            .fetch_one(&self.pool)
            .await?)
    }

    /// Take `username`'s second factor off, with its recovery codes and any sign-in waiting for a
    /// code. False when there was none.
    pub async fn delete_two_factor(&self, conn: &mut AnyConnection, username: &str) -> Result<bool> {
        let removed = sqlx::query("DELETE FROM staff_two_factor WHERE username = $1")
            .bind(username)
            .execute(&mut *conn)
            .await?
            .rows_affected();
        for sql in [
            "DELETE FROM staff_recovery_codes WHERE username = $1",
            "DELETE FROM staff_login_challenges WHERE username = $1",
        ] {
            sqlx::query(sql).bind(username).execute(&mut *conn).await?;
        }
        Ok(removed == 1)
    }

    /// Usernames with a second factor on (for the admin page).
    pub async fn staff_with_two_factor(&self) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar("SELECT username FROM staff_two_factor WHERE enrolled_at IS NOT NULL")
            .fetch_all(&self.pool)
            .await?)
    }

    /// A sign-in waiting for its second factor until `now + ttl`; returns the cookie value.
    pub async fn create_login_challenge(&self, username: &str, next: &str, now: i64, ttl: i64) -> Result<String> {
        let id = random_token();
        sqlx::query("DELETE FROM staff_login_challenges WHERE expires_at <= $1").bind(now).execute(&self.pool).await?;
        sqlx::query(
            "INSERT INTO staff_login_challenges (id_hash, username, next, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id_hash(&id))
        .bind(username)
        .bind(next)
        .bind(now)
        .bind(now + ttl)
        .execute(&self.pool)
        .await?;
        Ok(id)
    }

    pub async fn login_challenge(&self, id: &str, now: i64) -> Result<Option<LoginChallenge>> {
        Ok(sqlx::query_as(
            "SELECT c.username, c.next, c.attempts FROM staff_login_challenges c JOIN staff s ON s.username = c.username
             WHERE c.id_hash = $1 AND c.expires_at > $2 AND s.disabled = 0",
        )
        .bind(id_hash(id))
        .bind(now)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Count a wrong code against the sign-in; how many it has had.
    pub async fn count_challenge_attempt(&self, id: &str) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "UPDATE staff_login_challenges SET attempts = attempts + 1 WHERE id_hash = $1 RETURNING attempts",
        )
        .bind(id_hash(id))
        .fetch_optional(&self.pool)
        .await?
        .unwrap_or(i64::MAX))
    }

    pub async fn delete_login_challenge(&self, id: &str) -> Result<()> {
        sqlx::query("DELETE FROM staff_login_challenges WHERE id_hash = $1")
            .bind(id_hash(id))
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
