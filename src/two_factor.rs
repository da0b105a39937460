//! A second factor for staff: TOTP (RFC 6238: 6 digits, 30-second steps, HMAC-SHA1, as every
//! authenticator app does) through `totp-rs`, and single-use recovery codes.
//!
//! With `SAFEREACH_STAFF_2FA=required`, approvers and admins (who approve wording, read replies
//! and create API keys) cannot sign in with a password alone; an account of theirs without a
//! second factor is taken to enrolment right after its password and can do nothing else until it
//! has one. Unset, enrolling is optional for everyone.

use qrcode::QrCode;
use qrcode::render::svg;
use totp_rs::{Algorithm, TOTP};

use crate::config::TwoFactor as Policy;

/// The issuer an authenticator app shows beside the account.
pub const ISSUER: &str = "safereach";
const STEP_SECS: u64 = 30;
/// Codes a step either side of now are accepted (a phone's clock a little off).
const SKEW: u64 = 1;
/// Recovery codes made at enrolment.
pub const RECOVERY_CODES: usize = 10;
/// Letters and digits that can't be mistaken for each other (no 0/o, 1/l/i).
const RECOVERY_ALPHABET: &[u8] = b"23456789abcdefghjkmnpqrstuvwxyz";
const RECOVERY_LEN: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum TwoFactorError {
    #[error("second factor: {0}")]
    Totp(String),
}

/// Whether `role` must sign in with a second factor under `policy`.
pub fn required_for(role: &str, policy: Policy) -> bool {
    policy == Policy::Required && matches!(role, "approver" | "admin")
}

/// A new secret: 160 random bits (RFC 4226's recommendation).
pub fn new_secret() -> Vec<u8> {
    rand::random::<[u8; 20]>().to_vec()
}

fn totp(secret: &[u8], username: &str) -> Result<TOTP, TwoFactorError> {
    TOTP::new(Algorithm::SHA1, 6, SKEW as u8, STEP_SECS, secret.to_vec(), Some(ISSUER.into()), username.into())
        .map_err(|e| TwoFactorError::Totp(e.to_string()))
}

/// What enrolment shows: the secret (base32, in groups of four) and the `otpauth://` URL as an
/// SVG QR code to scan.
pub struct Enrolment {
    pub secret: String,
    pub qr_svg: String,
}

pub fn enrolment(secret: &[u8], username: &str) -> Result<Enrolment, TwoFactorError> {
    let totp = totp(secret, username)?;
    let base32 = totp.get_secret_base32();
    let grouped = base32.as_bytes().chunks(4).map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>();
    let code = QrCode::new(totp.get_url().as_bytes()).map_err(|e| TwoFactorError::Totp(e.to_string()))?;
    let qr_svg = code
        .render::<svg::Color>()
        .min_dimensions(200, 200)
        .dark_color(svg::Color("#000000"))
        .light_color(svg::Color("#ffffff"))
        .build();
    Ok(Enrolment { secret: grouped.join(" "), qr_svg })
}

/// The time step `code` is right for, within one step either side of `now_secs`; None when it is
/// not a code of this secret now. The caller accepts each step once (no replay).
pub fn matching_step(secret: &[u8], username: &str, code: &str, now_secs: u64) -> Option<u64> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let totp = totp(secret, username).ok()?;
    let now_step = now_secs / STEP_SECS;
    // Every candidate is computed, so that the time taken says nothing about which one matched.
    let mut found = None;
    for step in now_step.saturating_sub(SKEW)..=now_step + SKEW {
        let expected = totp.generate(step * STEP_SECS);
        if bool::from(subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), code.as_bytes())) {
            found = Some(step);
        }
    }
    found
}

/// Fresh recovery codes, `xxxx-xxxx-xxxx` (about 59 random bits each).
pub fn recovery_codes() -> Vec<String> {
    (0..RECOVERY_CODES)
        .map(|_| {
            let chars: Vec<char> = (0..RECOVERY_LEN)
                .map(|_| RECOVERY_ALPHABET[rand::random_range(0..RECOVERY_ALPHABET.len())] as char)
                .collect();
            chars.chunks(4).map(|c| c.iter().collect::<String>()).collect::<Vec<_>>().join("-")
        })
        .collect()
}

/// A recovery code as typed (any case, with or without dashes and spaces), in the form it is
/// stored under; None when it cannot be one.
pub fn normalise_recovery_code(typed: &str) -> Option<String> {
    let compact: String = typed.chars().filter(|c| !matches!(c, '-' | ' ')).collect::<String>().to_ascii_lowercase();
    let valid = compact.len() == RECOVERY_LEN && compact.bytes().all(|b| RECOVERY_ALPHABET.contains(&b));
    valid.then(|| {
        compact.as_bytes().chunks(4).map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>().join("-")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238's SHA-1 test secret and its published 8-digit codes (their last 6 digits).
    const RFC_SECRET: &[u8] = b"12345678901234567890";

    #[test]
    fn codes_match_rfc_6238_and_each_names_its_step() {
        for (time, code) in
            [(59_u64, "287082"), (1_111_111_109, "081804"), (1_234_567_890, "005924"), (2_000_000_000, "279037")]
        {
            assert_eq!(matching_step(RFC_SECRET, "ana", code, time), Some(time / 30), "{time}");
        }
        // A step either side is accepted (a phone's clock a little off), two are not.
        assert_eq!(matching_step(RFC_SECRET, "ana", "287082", 59 + 30), Some(1));
        assert_eq!(matching_step(RFC_SECRET, "ana", "287082", 59 + 60), None);
        for junk in ["28708", "2870821", "28708a", "", "287 082x"] {
            assert_eq!(matching_step(RFC_SECRET, "ana", junk, 59), None, "{junk}");
        }
        assert_eq!(matching_step(RFC_SECRET, "ana", " 287 082 ", 59), Some(1), "spaces are forgiven");
    }

    #[test]
    fn enrolment_shows_the_secret_in_groups_and_a_qr_code_of_the_otpauth_url() {
        let e = enrolment(RFC_SECRET, "ana.approver").unwrap();
        assert_eq!(e.secret.replace(' ', ""), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        assert!(e.qr_svg.contains("<svg") && e.qr_svg.contains("</svg>"));
        assert!(!e.qr_svg.contains("<script"));
    }

    #[test]
    fn recovery_codes_are_random_distinct_and_read_back_however_typed() {
        let codes = recovery_codes();
        assert_eq!(codes.len(), 10);
        assert_eq!(codes.iter().collect::<std::collections::BTreeSet<_>>().len(), 10);
        for code in &codes {
            assert_eq!(code.len(), 14, "{code}");
            assert_eq!(normalise_recovery_code(code).as_deref(), Some(code.as_str()));
            let typed = code.replace('-', " ").to_uppercase();
            assert_eq!(normalise_recovery_code(&typed).as_deref(), Some(code.as_str()));
        }
        assert_eq!(normalise_recovery_code("0000-1111-llll"), None, "not in the alphabet");
        assert_eq!(normalise_recovery_code("123456"), None);
    }

    #[test]
    fn only_approvers_and_admins_must_and_only_when_required() {
        assert!(required_for("approver", Policy::Required) && required_for("admin", Policy::Required));
        assert!(!required_for("author", Policy::Required));
        assert!(!required_for("admin", Policy::Optional));
    }
}
