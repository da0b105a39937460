//! SMS encoding (GSM-7 or UCS-2) and segment counting.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    Gsm7,
    Ucs2,
}

/// How a text goes over the air.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SmsInfo {
    pub encoding: Encoding,
    /// Septets for GSM-7 (extension characters count two), UTF-16 code units for UCS-2.
    pub units: usize,
    pub segments: usize,
}

/// Encoding and segment count of `text`.
pub fn analyse(text: &str) -> SmsInfo {
    let _ = text;
    todo!()
}
