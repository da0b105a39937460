//! Normalising and checking contact details. Junk is not an error: these return `None`/`false`
//! and the policy turns that into an outcome.

use super::request::OutreachRequest;

/// TEMPORARY stub until the policy branch lands.
pub fn normalise_uk_mobile(_s: &str) -> Option<String> {
    todo!()
}

/// TEMPORARY stub until the policy branch lands.
pub fn request_addresses(_req: &OutreachRequest) -> Vec<String> {
    todo!()
}

/// TEMPORARY stub until the policy branch lands.
pub fn postal_key(_first_line: &str, _postcode: &str) -> String {
    todo!()
}
