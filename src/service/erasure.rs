//! Erasure on request (right to erasure): what is not sent is cancelled, every piece of personal
//! data goes, and what is left (codes, times, counts) stays only under an anonymous reference.

use std::path::Path;

use super::cancel::cancel_case;
use super::retention::forget_outbox_copies;
use crate::domain::event::EventType;
use crate::store::{Event, Result, Store, StoreError, new_id};

/// What erasing a case did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Erased {
    /// The anonymous reference the case's counts now live under.
    pub anonymous_ref: String,
    /// The case's messages, whose copies outside the database (the sandbox outbox) go too.
    pub message_ids: Vec<String>,
}

/// Erase a case on request (right to erasure): the database (`erase_in_database`) and the
/// sandbox outbox's copies of its messages.
pub async fn erase_case(store: &Store, outbox: &Path, case_ref: &str, now: i64, actor: &str) -> Result<Option<Erased>> {
    let erased = erase_in_database(store, case_ref, now, actor).await?;
    if let Some(erased) = &erased {
        forget_outbox_copies(Some(outbox), erased.message_ids.clone()).await;
    }
    Ok(erased)
}

/// Erase a case on request: cancel what is not sent, remove every piece of personal data,
/// and move what is left (codes, times, counts) under an anonymous reference, so that the
/// reports still add up and nothing leads back to the person. Refused (Conflict) while a
/// message of the case is being handed to a provider. None when the case is unknown.
pub async fn erase_in_database(store: &Store, case_ref: &str, now: i64, actor: &str) -> Result<Option<Erased>> {
    if store.case(case_ref).await?.is_none() {
        return Ok(None);
    }
    // Stop anything queued first, so that no worker picks a job up while we erase.
    cancel_case(store, case_ref, now, actor).await?;
    let mut tx = store.begin().await?;
    if store.case_messages_in_flight(&mut tx, case_ref, now).await? > 0 {
        return Err(StoreError::Conflict("a message of this case is being sent; try again shortly".into()));
    }
    let anonymous_ref = new_id("erased");
    let message_ids = store.erase_case_rows(&mut tx, case_ref, &anonymous_ref, now).await?;
    Event::new(&anonymous_ref, now, actor, EventType::Redacted)
        .reason("erasure")
        .detail(serde_json::json!({ "what": "case" }))
        .append(&mut tx)
        .await?;
    tx.commit().await?;
    Ok(Some(Erased { anonymous_ref, message_ids }))
}
