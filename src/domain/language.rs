//! Languages of messages: short BCP-47 tags (`en`, `cy`, `pl`, `pt-BR`). A template version is
//! written in one language (its primary subtag); a victim's `language` picks the approved version
//! in that language when there is one, else English.

/// The language every template has, and the fallback.
pub const ENGLISH: &str = "en";

/// The languages staff pages offer when writing a draft, with their names.
pub const OFFERED: &[(&str, &str)] = &[("en", "English"), ("cy", "Cymraeg (Welsh)")];

/// The primary language of a BCP-47-ish tag, lower case: 2 to 8 letters, optionally followed by
/// a region (`-GB`: 2 letters, or 3 digits as in `es-419`). None for anything else.
pub fn primary(tag: &str) -> Option<String> {
    let (language, region) = match tag.split_once(['-', '_']) {
        Some((language, region)) => (language, Some(region)),
        None => (tag, None),
    };
    let language_ok = (2..=8).contains(&language.len()) && language.bytes().all(|b| b.is_ascii_alphabetic());
    let region_ok = region.is_none_or(|r| {
        (r.len() == 2 && r.bytes().all(|b| b.is_ascii_alphabetic()))
            || (r.len() == 3 && r.bytes().all(|b| b.is_ascii_digit()))
    });
    (language_ok && region_ok).then(|| language.to_ascii_lowercase())
}

/// The name staff pages show for a language code.
pub fn name(code: &str) -> &str {
    OFFERED.iter().find(|(c, _)| *c == code).map_or(code, |(_, name)| name)
}

/// The tag for a document's language metadata: the British variants for English and Welsh.
pub fn document_tag(code: &str) -> String {
    match code {
        "en" | "cy" => format!("{code}-GB"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_tags_with_an_optional_region_are_read_as_their_language() {
        assert_eq!(primary("cy").as_deref(), Some("cy"));
        assert_eq!(primary("CY-gb").as_deref(), Some("cy"));
        assert_eq!(primary("pl").as_deref(), Some("pl"));
        assert_eq!(primary("es-419").as_deref(), Some("es"));
        assert_eq!(primary("en_GB").as_deref(), Some("en"));
        for junk in ["", "e", "welshlang1", "toolonglanguage", "en-", "en-GBR", "en-G1", "c y", "cy-GB-x", "ü"] {
            assert_eq!(primary(junk), None, "{junk:?}");
        }
    }

    #[test]
    fn document_tags() {
        assert_eq!(document_tag("cy"), "cy-GB");
        assert_eq!(document_tag("en"), "en-GB");
        assert_eq!(document_tag("pl"), "pl");
    }
}
