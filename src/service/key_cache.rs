//! API keys as the API looked them up lately: a request with a key seen in the last
//! `KEY_CACHE_TTL` is not looked up again (one round trip less per request). A revocation takes
//! effect at once in the process that made it (`forget`), and within `KEY_CACHE_TTL` in every
//! other (another gateway, the command line). Only keys in use are kept, so unknown keys cannot
//! fill the memory; the whole cache is dropped should it ever hold `MOST` keys.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::store::{ApiKey, Result, Store, key_hash};

/// How long a key looked up is trusted without looking again: the bound on how late a
/// revocation made by another process takes effect here.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(5);

/// The most keys kept.
const MOST: usize = 1024;

#[derive(Default)]
pub struct KeyCache {
    /// By the key's hash (the plain key is not kept): when looked up, and what was found.
    keys: Mutex<HashMap<String, (Instant, ApiKey)>>,
}

impl KeyCache {
    /// The key in use that `key` is, if any.
    pub async fn find(&self, store: &Store, key: &str) -> Result<Option<ApiKey>> {
        let hash = key_hash(key);
        if let Some((at, found)) = self.keys.lock().expect("key cache lock").get(&hash)
            && at.elapsed() < KEY_CACHE_TTL
        {
            return Ok(Some(found.clone()));
        }
        let found = store.find_api_key(key).await?;
        let mut keys = self.keys.lock().expect("key cache lock");
        match &found {
            Some(found) => {
                if keys.len() >= MOST {
                    keys.clear();
                }
                keys.insert(hash, (Instant::now(), found.clone()));
            }
            None => {
                keys.remove(&hash);
            }
        }
        Ok(found)
    }

    /// The key `id` was revoked: refuse it from now on.
    pub fn forget(&self, id: &str) {
        self.keys.lock().expect("key cache lock").retain(|_, (_, key)| key.id != id);
    }
}
