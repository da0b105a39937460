//! Normalising and checking contact details. Junk is not an error: these return `None`/`false`
//! and the policy turns that into an outcome.
//!
//! The normalised forms are also the keys the store uses for suppressions and for numbers that
//! belong to someone else: a phone is E.164 (`+447…`), an email is lower-case, and a postal
//! address is its [`postal_key`]. The three forms cannot collide: only a phone starts with `+`,
//! only an email contains `@`, and only a postal key contains `|`.

use std::collections::BTreeSet;
use std::str::FromStr;

use super::Recipient;
use super::request::{Contact, Postal};

/// A UK mobile number as E.164 (`+447` and 9 more digits), from `+447…`, `447…`, `00447…` or
/// `07…`, with any spaces, dashes, dots or brackets, and the `+44 (0)7…` habit. Anything else is
/// `None`. This is the one normalisation every comparison of numbers goes through (outbound
/// choice, suppressions, reply senders, history, conflicts, calls): one number, one key.
pub fn normalise_uk_mobile(raw: &str) -> Option<String> {
    let compact: String = raw.chars().filter(|c| !c.is_whitespace()).collect();
    // "+44 (0)7700 900123", "0044 (0)7700 900123": the bracketed trunk zero is dropped, not read
    // as a digit.
    let compact = ["+44(0)", "0044(0)", "44(0)"]
        .iter()
        .find_map(|prefix| compact.strip_prefix(prefix).map(|rest| format!("+44{rest}")))
        .unwrap_or(compact);
    let compact: String = compact.chars().filter(|c| !matches!(c, '-' | '.' | '(' | ')')).collect();
    let (plus, digits) = match compact.strip_prefix('+') {
        Some(rest) => (true, rest),
        None => (false, compact.as_str()),
    };
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // After a `+` only the country code may follow; `00` is the international prefix written out.
    let subscriber = if plus {
        digits.strip_prefix("447")
    } else {
        digits.strip_prefix("447").or_else(|| digits.strip_prefix("00447")).or_else(|| digits.strip_prefix("07"))
    }?;
    (subscriber.len() == 9).then(|| format!("+447{subscriber}"))
}

/// A syntactically valid email address, lower-cased: exactly one `@`, a local part without spaces
/// that lettre accepts, and a domain name (not an IP literal) with at least one dot.
pub fn normalise_email(raw: &str) -> Option<String> {
    let address = raw.trim().to_lowercase();
    let (local, domain) = address.split_once('@')?;
    if local.is_empty() || local.chars().any(char::is_whitespace) || domain.contains('@') {
        return None;
    }
    if !is_domain_name(domain) || lettre::Address::from_str(&address).is_err() {
        return None;
    }
    Some(address)
}

/// Dotted labels of letters, digits and inner hyphens, ending in a label that is not all digits.
fn is_domain_name(domain: &str) -> bool {
    let labels: Vec<&str> = domain.split('.').collect();
    let valid_label = |label: &&str| {
        !label.is_empty()
            && label.len() <= 63
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    labels.len() >= 2
        && labels.iter().all(valid_label)
        && labels.last().is_some_and(|tld| !tld.chars().all(|c| c.is_ascii_digit()))
}

/// A UK postcode in canonical form, `OUTWARD INWARD` in upper case (`b11aa` → `B1 1AA`).
///
/// Checks the shape (outward `A9`, `A99`, `AA9`, `AA99`, `A9A` or `AA9A`; inward `9AA`) plus
/// `GIR 0AA`; it does not check that the postcode exists.
pub fn normalise_postcode(raw: &str) -> Option<String> {
    let compact: String = raw.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_ascii_uppercase();
    if !compact.is_ascii() || compact.len() < 5 || compact.len() > 7 {
        return None;
    }
    let (outward, inward) = compact.split_at(compact.len() - 3);
    let valid = compact == "GIR0AA" || (is_outward_code(outward) && is_inward_code(inward));
    valid.then(|| format!("{outward} {inward}"))
}

fn is_outward_code(outward: &str) -> bool {
    // A = letter, 9 = digit.
    let shape: String = outward
        .chars()
        .map(|c| {
            if c.is_ascii_uppercase() {
                'A'
            } else if c.is_ascii_digit() {
                '9'
            } else {
                '?'
            }
        })
        .collect();
    matches!(shape.as_str(), "A9" | "A99" | "AA9" | "AA99" | "A9A" | "AA9A")
}

fn is_inward_code(inward: &str) -> bool {
    let c: Vec<char> = inward.chars().collect();
    c.len() == 3 && c[0].is_ascii_digit() && c[1].is_ascii_uppercase() && c[2].is_ascii_uppercase()
}

/// A complete postal address: a name, at least one line, a valid UK postcode (all trimmed, blank
/// lines dropped, postcode normalised). Whether it is marked safe is the policy's question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostalAddress {
    pub name: String,
    pub lines: Vec<String>,
    pub postcode: String,
}

impl PostalAddress {
    pub fn parse(postal: &Postal) -> Option<PostalAddress> {
        let name = postal.name.as_deref().map(str::trim).filter(|n| !n.is_empty())?;
        let lines: Vec<String> =
            postal.lines.iter().map(|l| l.trim()).filter(|l| !l.is_empty()).map(str::to_owned).collect();
        if lines.is_empty() {
            return None;
        }
        let postcode = normalise_postcode(postal.postcode.as_deref()?)?;
        Some(PostalAddress { name: name.to_owned(), lines, postcode })
    }

    pub fn key(&self) -> String {
        postal_key_of(&self.postcode, self.lines.first().map(String::as_str).unwrap_or_default())
    }

    pub fn into_recipient(self) -> Recipient {
        Recipient::Postal { name: self.name, lines: self.lines, postcode: self.postcode }
    }
}

/// The suppression key of a postal address: `POSTCODE|first line`, the postcode normalised and the
/// first non-blank line lower-cased with punctuation and spacing collapsed, so `1, High St.` and
/// `1 high st` are one key (`B1 1AA|1 high st`). `None` without a valid postcode or any line.
pub fn postal_key(postal: &Postal) -> Option<String> {
    let postcode = normalise_postcode(postal.postcode.as_deref()?)?;
    let first_line = postal.lines.iter().map(|l| l.trim()).find(|l| !l.is_empty())?;
    Some(postal_key_of(&postcode, first_line))
}

fn postal_key_of(postcode: &str, first_line: &str) -> String {
    let lowered = first_line.to_lowercase();
    let words: Vec<&str> = lowered.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).collect();
    format!("{postcode}|{}", words.join(" "))
}

/// Every normalised address in a request (phones of anyone, the email, the postal key): what the
/// store looks up to fill `CaseHistory::suppressed` and `CaseHistory::numbers_of_others`.
pub fn addresses_in(contact: &Contact) -> BTreeSet<String> {
    let phones = contact.phones.iter().filter_map(|p| normalise_uk_mobile(&p.number));
    let email = contact.email.as_ref().and_then(|e| normalise_email(&e.address));
    let postal = contact.postal.as_ref().and_then(postal_key);
    phones.chain(email).chain(postal).collect()
}

/// The normalised numbers in a request that belong to someone other than the victim (e.g. a
/// suspect's): what the store records so that rule 7 can catch them on other cases.
pub fn numbers_of_others_in(contact: &Contact) -> BTreeSet<String> {
    contact.phones.iter().filter(|p| !p.is_victims()).filter_map(|p| normalise_uk_mobile(&p.number)).collect()
}

/// The normalised key of where a route sends: what rule 3 compares with the suppressions.
pub fn recipient_key(recipient: &Recipient) -> String {
    match recipient {
        Recipient::Phone { number } => number.clone(),
        Recipient::Email { address } => address.clone(),
        Recipient::Postal { lines, postcode, .. } => {
            postal_key_of(postcode, lines.first().map(String::as_str).unwrap_or_default())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::request::{Email, Phone};

    #[test]
    fn uk_mobiles_in_every_usual_form_normalise_to_e164() {
        for raw in [
            "+447700900123",
            "447700900123",
            "07700900123",
            "07700 900123",
            "07700-900-123",
            "07700.900.123",
            "(07700) 900123",
            "+44 7700 900 123",
            "+44 (0)7700 900123",
            "00447700900123",
            "0044 7700 900123",
            "0044 (0)7700 900123",
            "(+44) 7700 900123",
            " 07700900123 ",
            "\t+447700900123\n",
        ] {
            assert_eq!(normalise_uk_mobile(raw).as_deref(), Some("+447700900123"), "{raw:?}");
        }
    }

    #[test]
    fn anything_but_a_uk_mobile_is_none() {
        for raw in [
            "",
            "+44121 496 0000", // landline
            "01214960000",     // landline
            "7700900123",      // no prefix
            "+4407700900123",  // trunk zero without the brackets
            "+0447700900123",
            "+07700900123", // a + on a national number
            "0770090012",   // too short
            "077009001234", // too long
            "+4477009001234",
            "+33612345678",      // French mobile
            "0044 07700 900123", // a trunk zero after the country code, without brackets
            "+00447700900123",
            "000447700900123",
            "07700 9OO123", // letters O for zeros
            "07700/900123",
            "+44+7700900123",
            "٠٧٧٠٠٩٠٠١٢٣", // non-ASCII digits
        ] {
            assert_eq!(normalise_uk_mobile(raw), None, "{raw:?}");
        }
    }

    #[test]
    fn emails_are_lower_cased_when_valid() {
        assert_eq!(normalise_email("Sam.Smith@Example.ORG").as_deref(), Some("sam.smith@example.org"));
        assert_eq!(normalise_email("  a+tag@mail.example.co.uk ").as_deref(), Some("a+tag@mail.example.co.uk"));
        assert_eq!(normalise_email("x@xn--bcher-kva.example").as_deref(), Some("x@xn--bcher-kva.example"));
    }

    #[test]
    fn invalid_emails_are_none() {
        for raw in [
            "",
            "sam",
            "@example.org",
            "sam@",
            "sam@example", // no dot
            "sam@@example.org",
            "sam@ex@ample.org",
            "sa m@example.org",
            "sam@exa mple.org",
            "sam@.example.org",
            "sam@example..org",
            "sam@example.org.",
            "sam@-example.org",
            "sam@example-.org",
            "sam@[127.0.0.1]",
            "sam@127.0.0.1",
            "sam@exam_ple.org",
            "sam.@example.org", // lettre: dot at the end of the local part
            "\"sa@m\"@example.org",
        ] {
            assert_eq!(normalise_email(raw), None, "{raw:?}");
        }
    }

    #[test]
    fn postcodes_normalise_to_outward_space_inward() {
        for (raw, want) in [
            ("b11aa", "B1 1AA"),
            ("B1 1AA", "B1 1AA"),
            ("  cv1  2ab ", "CV1 2AB"),
            ("M60 1NW", "M60 1NW"),
            ("sw1a1aa", "SW1A 1AA"),
            ("W1A 0AX", "W1A 0AX"),
            ("EC1A 1BB", "EC1A 1BB"),
            ("DN55 1PT", "DN55 1PT"),
            ("gir0aa", "GIR 0AA"),
            ("GIR 0AA", "GIR 0AA"),
        ] {
            assert_eq!(normalise_postcode(raw).as_deref(), Some(want), "{raw:?}");
        }
    }

    #[test]
    fn malformed_postcodes_are_none() {
        for raw in
            ["", "B1", "B1 1A", "1B1 1AA", "B1 AAA", "BBB1 1AA", "B1 1AAA", "B11 1A1", "GIR 0AB", "B-1 1AA", "B1 1ÄA"]
        {
            assert_eq!(normalise_postcode(raw), None, "{raw:?}");
        }
    }

    fn postal(name: Option<&str>, lines: &[&str], postcode: Option<&str>) -> Postal {
        Postal {
            name: name.map(str::to_owned),
            lines: lines.iter().map(|l| l.to_string()).collect(),
            postcode: postcode.map(str::to_owned),
            safe: Some(true),
        }
    }

    #[test]
    fn a_complete_postal_address_needs_name_line_and_postcode() {
        let full =
            PostalAddress::parse(&postal(Some(" Sam Smith "), &["", " 1 High Street", "Birmingham"], Some("b11aa")));
        assert_eq!(
            full,
            Some(PostalAddress {
                name: "Sam Smith".into(),
                lines: vec!["1 High Street".into(), "Birmingham".into()],
                postcode: "B1 1AA".into()
            })
        );
        assert_eq!(PostalAddress::parse(&postal(None, &["1 High Street"], Some("B1 1AA"))), None);
        assert_eq!(PostalAddress::parse(&postal(Some("  "), &["1 High Street"], Some("B1 1AA"))), None);
        assert_eq!(PostalAddress::parse(&postal(Some("Sam"), &[], Some("B1 1AA"))), None);
        assert_eq!(PostalAddress::parse(&postal(Some("Sam"), &[" "], Some("B1 1AA"))), None);
        assert_eq!(PostalAddress::parse(&postal(Some("Sam"), &["1 High Street"], None)), None);
        assert_eq!(PostalAddress::parse(&postal(Some("Sam"), &["1 High Street"], Some("nowhere"))), None);
    }

    #[test]
    fn postal_keys_ignore_case_punctuation_and_spacing() {
        let a = postal_key(&postal(None, &["1, High St.", "Birmingham"], Some("b1 1aa")));
        let b = postal_key(&postal(Some("Sam"), &["  1 high   st"], Some("B11AA")));
        assert_eq!(a.as_deref(), Some("B1 1AA|1 high st"));
        assert_eq!(a, b);
        assert_eq!(postal_key(&postal(None, &["1 High St"], Some("junk"))), None);
        assert_eq!(postal_key(&postal(None, &[], Some("B1 1AA"))), None);
        // The key a route carries is the same key.
        let parsed =
            PostalAddress::parse(&postal(Some("Sam"), &["1, High St."], Some("b11aa"))).map(|p| p.into_recipient());
        assert_eq!(parsed.as_ref().map(recipient_key), a);
    }

    fn phone(number: &str, belongs_to: Option<&str>) -> Phone {
        Phone {
            number: number.into(),
            belongs_to: belongs_to.map(str::to_owned),
            safe_to_text: None,
            safe_to_voicemail: None,
        }
    }

    #[test]
    fn addresses_in_a_request_are_listed_normalised() {
        let contact = Contact {
            phones: vec![
                phone("07700 900001", Some("victim")),
                phone("+447700900002", Some("suspect")),
                phone("0121 496 0000", None),
                phone("447700900001", None),
            ],
            email: Some(Email { address: "Sam@Example.org".into(), safe: Some(false) }),
            postal: Some(postal(Some("Sam"), &["1 High Street"], Some("b11aa"))),
            ..Contact::default()
        };
        let want: BTreeSet<String> =
            ["+447700900001", "+447700900002", "sam@example.org", "B1 1AA|1 high street"].map(String::from).into();
        assert_eq!(addresses_in(&contact), want);
        assert_eq!(numbers_of_others_in(&contact), BTreeSet::from(["+447700900002".to_string()]));
        assert!(addresses_in(&Contact::default()).is_empty());
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    /// A written form of a mobile, then mangled: a character dropped, doubled or replaced, or a
    /// stray one inserted.
    fn near_miss() -> impl Strategy<Value = String> {
        let form = (prop::sample::select(vec!["+447", "447", "00447", "07", "+44 (0)7", "0044 7"]), "[0-9]{9}")
            .prop_map(|(p, s)| format!("{p}{s}"));
        let stray = prop::sample::select(vec!['0', '4', '7', '+', ' ', '(', 'O', 'x', '/', '٣']);
        (form, 0usize..16, 0u8..4, stray).prop_map(|(form, at, how, c)| {
            let mut chars: Vec<char> = form.chars().collect();
            let at = at.min(chars.len().saturating_sub(1));
            match how {
                0 => {
                    chars.remove(at);
                }
                1 => chars.insert(at, chars[at]),
                2 => chars[at] = c,
                _ => chars.insert(at, c),
            }
            chars.into_iter().collect()
        })
    }

    /// The near misses are a mix, so the property above is not vacuous: many still normalise
    /// (a doubled separator), many do not.
    #[test]
    fn near_misses_both_normalise_and_fail() {
        use proptest::strategy::ValueTree;
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let strategy = near_miss();
        let normalised = (0..1000)
            .filter(|_| normalise_uk_mobile(&strategy.new_tree(&mut runner).unwrap().current()).is_some())
            .count();
        assert!((100..900).contains(&normalised), "{normalised} of 1000 normalised");
    }

    proptest! {
        /// Whatever comes out is a UK mobile in E.164, and normalising it again changes nothing.
        #[test]
        fn a_normalised_mobile_is_always_e164_and_stable(raw in "[+0-9 ().-]{0,20}") {
            if let Some(n) = normalise_uk_mobile(&raw) {
                prop_assert!(n.starts_with("+447") && n.len() == 13 && n[1..].chars().all(|c| c.is_ascii_digit()));
                prop_assert_eq!(normalise_uk_mobile(&n), Some(n.clone()));
            }
        }

        /// One number, one key: every written form of a UK mobile (each accepted prefix, any
        /// spaces, dashes, dots and brackets between its parts) normalises to the same E.164 key.
        #[test]
        fn every_written_form_of_a_mobile_maps_to_one_key(
            sub in "[0-9]{9}",
            prefix in prop::sample::select(vec![
                "+44", "44", "0044", "0", "+44 (0)", "+44(0)", "0044 (0)", "44 (0)",
            ]),
            seps in prop::collection::vec(
                prop::sample::select(vec!["", "", "", " ", "-", ".", "  ", " - ", "(", ")"]), 12),
            outer in prop::sample::select(vec!["", " ", "\t", "\n "]),
        ) {
            let mut raw = String::from(outer);
            raw.push_str(prefix);
            // Separators go between the parts: after the prefix, and between the digits.
            for (i, part) in std::iter::once('7').chain(sub.chars()).enumerate() {
                raw.push_str(seps[i.min(seps.len() - 1)]);
                raw.push(part);
            }
            raw.push_str(outer);
            prop_assert_eq!(normalise_uk_mobile(&raw), Some(format!("+447{sub}")), "{:?}", raw);
        }

        /// Nothing else maps to a mobile's key: whatever normalises (near misses included: a digit
        /// dropped, added or changed, a stray character) is, digit for digit, an accepted prefix
        /// followed by that very number. So two different numbers never share a key.
        #[test]
        fn nothing_but_a_written_form_of_that_mobile_maps_to_its_key(raw in near_miss()) {
            if let Some(n) = normalise_uk_mobile(&raw) {
                let sub = &n[4..];
                let digits: String = raw.chars().filter(|c| c.is_ascii_digit()).collect();
                let forms = ["447", "00447", "07", "4407", "004407"].map(|p| format!("{p}{sub}"));
                prop_assert!(forms.contains(&digits), "{:?} became {}", raw, n);
                prop_assert!(!raw.chars().any(|c| c.is_alphabetic()), "{:?}", raw);
                // A national number never follows a `+`.
                let plus = raw.contains('+');
                prop_assert!(!(plus && (digits.starts_with("07") || digits.starts_with("00"))), "{:?}", raw);
            }
        }

        /// UK landlines and non-UK numbers, in any form, are not mobiles.
        #[test]
        fn landlines_and_foreign_numbers_are_not_mobiles(
            prefix in prop::sample::select(vec!["01", "02", "03", "08", "+441", "+442", "00441", "441", "+33 6", "0033 6", "+1 7", "+353 8", "+4417", "+0", "+07"]),
            rest in "[0-9]{8,10}",
        ) {
            prop_assert_eq!(normalise_uk_mobile(&format!("{prefix}{rest}")), None);
        }
        #[test]
        fn a_normalised_postcode_is_canonical_and_stable(raw in "[A-Za-z0-9 ]{0,9}") {
            if let Some(p) = normalise_postcode(&raw) {
                prop_assert_eq!(p.clone(), p.to_ascii_uppercase());
                prop_assert_eq!(p.matches(' ').count(), 1);
                prop_assert_eq!(normalise_postcode(&p), Some(p.clone()));
            }
        }
    }
}
