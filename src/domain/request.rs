//! The outreach request as the triage system sends it (`POST /v1/outreach`).
//!
//! Serde enforces the schema (types, required fields, enum values; an optional field may be
//! `null`, read as absent); `validate` adds the few limits serde cannot express. Contact details
//! are *data*, not schema: a junk phone number or postcode passes here and is decided (and
//! counted) by the policy.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
// The schema derive documents the API from these very types (`/openapi.json`); it adds no
// behaviour and no I/O.
use utoipa::ToSchema;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OutreachRequest {
    pub request_id: String,
    pub case_ref: String,
    pub kind: Kind,
    #[serde(default)]
    pub priority: Option<bool>,
    #[serde(default, deserialize_with = "null_as_default")]
    #[schema(nullable)]
    pub referral: Referral,
    pub crime: Crime,
    #[serde(default, deserialize_with = "null_as_default")]
    #[schema(nullable)]
    pub victim: Victim,
    pub contact: Contact,
    #[serde(default, deserialize_with = "null_as_default")]
    #[schema(nullable)]
    pub consent: Consent,
    #[serde(default, deserialize_with = "null_as_default")]
    #[schema(nullable)]
    pub personalisation: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    PriorityPretext,
    InformationPack,
    /// The Tier 1 satisfaction survey, sent at the end of service (needs `consent.survey`).
    SatisfactionSurvey,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::PriorityPretext, Kind::InformationPack, Kind::SatisfactionSurvey];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::PriorityPretext => "priority_pretext",
            Kind::InformationPack => "information_pack",
            Kind::SatisfactionSurvey => "satisfaction_survey",
        }
    }
    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Referral {
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub referred_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub local_authority: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Crime {
    pub categories: Vec<String>,
    #[serde(default)]
    pub summary: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Victim {
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub date_of_birth: Option<NaiveDate>,
    #[serde(default)]
    pub is_under_18: Option<bool>,
    #[serde(default, deserialize_with = "null_as_default")]
    #[schema(nullable)]
    pub vulnerabilities: Vec<String>,
    /// A short BCP-47 code (`en`, `cy`, `pl`, `pt-BR`): picks the approved template version in
    /// that language when there is one, else English.
    #[serde(default)]
    #[schema(example = "cy")]
    pub language: Option<String>,
}

impl Victim {
    /// The language to write in: the primary subtag of `language`, English when absent.
    pub fn language_code(&self) -> String {
        self.language.as_deref().and_then(super::language::primary).unwrap_or_else(|| super::language::ENGLISH.into())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Contact {
    #[serde(default, deserialize_with = "null_as_default")]
    #[schema(nullable)]
    pub phones: Vec<Phone>,
    #[serde(default)]
    pub email: Option<Email>,
    #[serde(default)]
    pub postal: Option<Postal>,
    #[serde(default)]
    pub preferred_method: Option<Method>,
    #[serde(default, deserialize_with = "null_as_default")]
    #[schema(nullable)]
    pub safe_times: Vec<SafeTime>,
    #[serde(default, deserialize_with = "null_as_default")]
    #[schema(nullable)]
    pub do_not_contact: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Phone {
    pub number: String,
    /// `victim` (or absent) for the victim's own phone; anything else (suspect, parent, …) is not.
    #[serde(default)]
    pub belongs_to: Option<String>,
    #[serde(default)]
    pub safe_to_text: Option<bool>,
    #[serde(default)]
    pub safe_to_voicemail: Option<bool>,
}

impl Phone {
    pub fn is_victims(&self) -> bool {
        self.belongs_to.as_deref().is_none_or(|b| b == "victim")
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Email {
    pub address: String,
    #[serde(default)]
    pub safe: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Postal {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    #[schema(nullable)]
    pub lines: Vec<String>,
    #[serde(default)]
    pub postcode: Option<String>,
    #[serde(default)]
    pub safe: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    Phone,
    Sms,
    Email,
    Letter,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Day {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

impl Day {
    pub fn from_weekday(w: chrono::Weekday) -> Day {
        use chrono::Weekday::*;
        match w {
            Mon => Day::Mon,
            Tue => Day::Tue,
            Wed => Day::Wed,
            Thu => Day::Thu,
            Fri => Day::Fri,
            Sat => Day::Sat,
            Sun => Day::Sun,
        }
    }
}

/// A window of local (Europe/London) time on the given weekdays. `from` after `to` means the
/// window runs past midnight into the next day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SafeTime {
    pub days: Vec<Day>,
    /// Local time, `HH:MM`.
    #[serde(with = "hhmm")]
    #[schema(value_type = String, example = "09:00")]
    pub from: NaiveTime,
    /// Local time, `HH:MM`; before `from` when the window runs past midnight.
    #[serde(with = "hhmm")]
    #[schema(value_type = String, example = "17:00")]
    pub to: NaiveTime,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Consent {
    #[serde(default, deserialize_with = "null_as_default")]
    #[schema(nullable)]
    pub information_pack: bool,
    /// The victim agreed to be sent the satisfaction survey (rule 2 for `satisfaction_survey`).
    #[serde(default, deserialize_with = "null_as_default")]
    #[schema(nullable)]
    pub survey: bool,
    #[serde(default)]
    pub recorded_at: Option<DateTime<Utc>>,
}

/// An optional field given as `null` reads as absent: its default (with `#[serde(default)]`, which
/// covers the field left out, and `#[schema(nullable)]` for the document). `Option` fields take
/// `null` by themselves.
fn null_as_default<'de, D: Deserializer<'de>, T: Deserialize<'de> + Default>(d: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// `"HH:MM"` local times.
pub mod hhmm {
    use chrono::NaiveTime;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(t: &NaiveTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.format("%H:%M").to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<NaiveTime, D::Error> {
        let s = String::deserialize(d)?;
        parse(&s).ok_or_else(|| D::Error::custom(format!("expected a time as HH:MM, got {s:?}")))
    }

    pub fn parse(s: &str) -> Option<NaiveTime> {
        if s.len() != 5 {
            return None;
        }
        NaiveTime::parse_from_str(s, "%H:%M").ok()
    }
}

/// One problem with a request, naming the field by its JSON path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError { field: field.into(), message: message.into() }
    }
}

const MAX_ID: usize = 128;
const MAX_TEXT: usize = 4000;
const MAX_SHORT: usize = 200;
const MAX_LIST: usize = 20;

impl OutreachRequest {
    /// Limits that serde cannot express. Categories and vulnerabilities are compared as lower case,
    /// so they are normalised here.
    pub fn validate(mut self) -> Result<OutreachRequest, Vec<FieldError>> {
        let mut errors = Vec::new();
        check_id(&mut errors, "request_id", &self.request_id);
        check_id(&mut errors, "case_ref", &self.case_ref);
        check_codes(&mut errors, "crime.categories", &mut self.crime.categories);
        check_codes(&mut errors, "victim.vulnerabilities", &mut self.victim.vulnerabilities);
        check_len(&mut errors, "crime.summary", self.crime.summary.as_deref(), MAX_TEXT);
        check_len(&mut errors, "victim.first_name", self.victim.first_name.as_deref(), MAX_SHORT);
        if self.victim.language.as_deref().is_some_and(|l| super::language::primary(l).is_none()) {
            errors.push(FieldError::new(
                "victim.language",
                "a language code such as en or cy (2 to 8 letters, optionally a region: cy-GB)",
            ));
        }
        check_len(&mut errors, "referral.source", self.referral.source.as_deref(), MAX_SHORT);
        check_len(&mut errors, "referral.local_authority", self.referral.local_authority.as_deref(), MAX_SHORT);
        if self.contact.phones.len() > MAX_LIST {
            errors.push(FieldError::new("contact.phones", format!("at most {MAX_LIST} phones")));
        }
        for (i, p) in self.contact.phones.iter().enumerate() {
            check_len(&mut errors, &format!("contact.phones[{i}].number"), Some(&p.number), MAX_SHORT);
            check_len(&mut errors, &format!("contact.phones[{i}].belongs_to"), p.belongs_to.as_deref(), MAX_SHORT);
        }
        if let Some(e) = &self.contact.email {
            check_len(&mut errors, "contact.email.address", Some(&e.address), MAX_SHORT);
        }
        if let Some(p) = &self.contact.postal {
            check_len(&mut errors, "contact.postal.name", p.name.as_deref(), MAX_SHORT);
            check_len(&mut errors, "contact.postal.postcode", p.postcode.as_deref(), MAX_SHORT);
            if p.lines.len() > 8 {
                errors.push(FieldError::new("contact.postal.lines", "at most 8 lines"));
            }
            for (i, l) in p.lines.iter().enumerate() {
                check_len(&mut errors, &format!("contact.postal.lines[{i}]"), Some(l), MAX_SHORT);
            }
        }
        if self.personalisation.len() > MAX_LIST {
            errors.push(FieldError::new("personalisation", format!("at most {MAX_LIST} entries")));
        }
        for (k, v) in &self.personalisation {
            let valid_key = !k.is_empty()
                && k.len() <= 64
                && k.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if !valid_key {
                errors
                    .push(FieldError::new(format!("personalisation.{k}"), "keys are lower-case letters, digits and _"));
            }
            check_len(&mut errors, &format!("personalisation.{k}"), Some(v), MAX_SHORT);
        }
        if errors.is_empty() { Ok(self) } else { Err(errors) }
    }
}

fn check_id(errors: &mut Vec<FieldError>, field: &str, value: &str) {
    let ok = !value.is_empty()
        && value.len() <= MAX_ID
        && value.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:".contains(c));
    if !ok {
        errors
            .push(FieldError::new(field, format!("must be 1 to {MAX_ID} characters of letters, digits and - _ . / :")));
    }
}

fn check_codes(errors: &mut Vec<FieldError>, field: &str, codes: &mut [String]) {
    if codes.len() > MAX_LIST {
        errors.push(FieldError::new(field, format!("at most {MAX_LIST} entries")));
    }
    for (i, code) in codes.iter_mut().enumerate() {
        *code = code.trim().to_ascii_lowercase();
        if code.is_empty() || code.len() > 64 {
            errors.push(FieldError::new(format!("{field}[{i}]"), "must be 1 to 64 characters"));
        }
    }
}

fn check_len(errors: &mut Vec<FieldError>, field: &str, value: Option<&str>, max: usize) {
    if let Some(v) = value
        && v.chars().count() > max
    {
        errors.push(FieldError::new(field, format!("at most {max} characters")));
    }
}

/// The same JSON whatever the order of its keys or its whitespace, and with a member whose value
/// is `null` left out, since a request reads `null` as absent.
pub fn canonical(value: &serde_json::Value) -> String {
    fn sort(v: &serde_json::Value) -> serde_json::Value {
        match v {
            serde_json::Value::Object(map) => {
                let sorted: std::collections::BTreeMap<_, _> =
                    map.iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k.clone(), sort(v))).collect();
                serde_json::Value::Object(sorted.into_iter().collect())
            }
            serde_json::Value::Array(items) => serde_json::Value::Array(items.iter().map(sort).collect()),
            other => other.clone(),
        }
    }
    sort(value).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_ignores_key_order_whitespace_and_null_members() {
        let a: serde_json::Value = serde_json::from_str(r#"{"b":1,"a":{"y":2,"x":[1,{"q":1,"p":2}]}}"#).unwrap();
        let b: serde_json::Value = serde_json::from_str(r#"{ "a": {"x":[1,{"p":2,"q":1}], "y":2}, "b":1 }"#).unwrap();
        assert_eq!(canonical(&a), canonical(&b));
        let c: serde_json::Value = serde_json::from_str(r#"{"b":2,"a":{"y":2,"x":[1,{"q":1,"p":2}]}}"#).unwrap();
        assert_ne!(canonical(&a), canonical(&c));
        let d: serde_json::Value =
            serde_json::from_str(r#"{"b":1,"z":null,"a":{"y":2,"w":null,"x":[1,{"q":1,"p":2}]}}"#).unwrap();
        assert_eq!(canonical(&a), canonical(&d), "a null member is an absent one");
        let e: serde_json::Value = serde_json::from_str(r#"{"b":1,"a":{"y":2,"x":[1,null,{"q":1,"p":2}]}}"#).unwrap();
        assert_ne!(canonical(&a), canonical(&e), "a null in a list is kept");
    }
}
