//! SMS encoding (GSM-7 or UCS-2) and segment counting.
//!
//! A text goes as GSM-7 when every character is in the GSM 03.38 basic set or its extension table
//! (an extension character is sent as ESC + code, so it costs two septets); otherwise the whole
//! text goes as UCS-2, counted in UTF-16 code units (an emoji costs two).
//!
//! One segment holds 160 GSM-7 septets or 70 UCS-2 units. A longer text is sent as a concatenated
//! message whose segments hold 153 septets or 67 units each (the rest is the joining header).
//! Segments are packed the way an SMS centre packs them: a character is never split across two
//! segments (an ESC pair in GSM-7, a surrogate pair in UCS-2), so a long text with such a character
//! on a boundary can need one segment more than `ceil(units / 153)`.
//!
//! The empty text is 0 segments: there is nothing to send (the template checks refuse it).

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    Gsm7,
    Ucs2,
}

impl Encoding {
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Gsm7 => "gsm7",
            Encoding::Ucs2 => "ucs2",
        }
    }

    /// Units that fit in a message of one segment.
    pub fn single_segment_units(self) -> usize {
        match self {
            Encoding::Gsm7 => 160,
            Encoding::Ucs2 => 70,
        }
    }

    /// Units that fit in each segment of a concatenated message.
    pub fn multi_segment_units(self) -> usize {
        match self {
            Encoding::Gsm7 => 153,
            Encoding::Ucs2 => 67,
        }
    }
}

/// How a text goes over the air.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SmsInfo {
    pub encoding: Encoding,
    /// Septets for GSM-7 (extension characters count two), UTF-16 code units for UCS-2.
    pub units: usize,
    pub segments: usize,
}

/// GSM 03.38 basic character set (127 characters; the 128th code is the ESC to the extension table).
const GSM_BASIC: &str = concat!(
    "@£$¥èéùìòÇ\nØø\rÅå",
    "Δ_ΦΓΛΩΠΨΣΘΞÆæßÉ",
    " !\"#¤%&'()*+,-./",
    "0123456789:;<=>?",
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§",
    "¿abcdefghijklmnopqrstuvwxyzäöñüà",
);

/// GSM 03.38 extension table (each sent as ESC + code: two septets).
const GSM_EXTENSION: &str = "\u{0C}^{}\\[~]|€";

/// Septets `c` costs in GSM-7, or `None` when it is not in the GSM-7 alphabet.
pub fn gsm_septets(c: char) -> Option<usize> {
    if GSM_BASIC.contains(c) {
        Some(1)
    } else if GSM_EXTENSION.contains(c) {
        Some(2)
    } else {
        None
    }
}

/// Encoding and segment count of `text`.
pub fn analyse(text: &str) -> SmsInfo {
    // Cost of each character in the chosen encoding.
    let (encoding, costs): (Encoding, Vec<usize>) = match text.chars().map(gsm_septets).collect::<Option<Vec<_>>>() {
        Some(septets) => (Encoding::Gsm7, septets),
        None => (Encoding::Ucs2, text.chars().map(char::len_utf16).collect()),
    };
    let units = costs.iter().sum();
    SmsInfo { encoding, units, segments: count_segments(encoding, units, &costs) }
}

fn count_segments(encoding: Encoding, units: usize, costs: &[usize]) -> usize {
    if units == 0 {
        return 0;
    }
    if units <= encoding.single_segment_units() {
        return 1;
    }
    // Greedy packing: a character that does not fit in what is left of a segment starts the next.
    let capacity = encoding.multi_segment_units();
    let (mut segments, mut used) = (1, 0);
    for &cost in costs {
        if used + cost > capacity {
            segments += 1;
            used = 0;
        }
        used += cost;
    }
    segments
}

/// The characters of `text` that are not in the GSM-7 alphabet (each once, in order), so that a
/// preview can say what forces UCS-2.
pub fn non_gsm_chars(text: &str) -> Vec<char> {
    let mut found = Vec::new();
    for c in text.chars() {
        if gsm_septets(c).is_none() && !found.contains(&c) {
            found.push(c);
        }
    }
    found
}

/// Replacements for characters outside GSM-7 that have a close GSM-7 equivalent.
const DOWNGRADES: &[(&str, &str)] = &[
    ("‘’‚‛′`´", "'"),
    ("“”„‟″", "\""),
    ("‐‑‒–—―−", "-"),
    ("…", "..."),
    ("\u{A0}\u{2000}\u{2001}\u{2002}\u{2003}\u{2004}\u{2005}\u{2006}\u{2007}\u{2008}\u{2009}\u{200A}\u{202F}\t", " "),
    ("\u{200B}\u{200C}\u{200D}\u{2060}\u{FEFF}\u{AD}", ""),
    ("áâãāăą", "a"),
    ("ÁÂÃÀĀĂĄ", "A"),
    ("çćĉċč", "c"),
    ("ĆĈĊČ", "C"),
    ("ďđ", "d"),
    ("ĎĐ", "D"),
    ("êëēĕėęě", "e"),
    ("ÈÊËĒĔĖĘĚ", "E"),
    ("ĝğġģ", "g"),
    ("ĜĞĠĢ", "G"),
    ("íîïīĭįı", "i"),
    ("ÍÎÏÌĪĬĮİ", "I"),
    ("ķ", "k"),
    ("Ķ", "K"),
    ("ĺļľŀł", "l"),
    ("ĹĻĽĿŁ", "L"),
    ("ńņňŉ", "n"),
    ("ŃŅŇ", "N"),
    ("óôõōŏő", "o"),
    ("ÓÔÕÒŌŎŐ", "O"),
    ("ŕŗř", "r"),
    ("ŔŖŘ", "R"),
    ("śŝşšș", "s"),
    ("ŚŜŞŠȘ", "S"),
    ("ţťŧț", "t"),
    ("ŢŤŦȚ", "T"),
    ("úûũūŭůűų", "u"),
    ("ÚÛÙŨŪŬŮŰŲ", "U"),
    ("ŵ", "w"),
    ("Ŵ", "W"),
    ("ýÿŷ", "y"),
    ("ÝŶŸ", "Y"),
    ("źżž", "z"),
    ("ŹŻŽ", "Z"),
    ("œ", "oe"),
    ("Œ", "OE"),
];

/// `text` with characters outside GSM-7 replaced by their closest GSM-7 equivalent where there is
/// one (curly quotes, dashes, accented Latin letters such as the ë of Zoë). Characters without an
/// equivalent (other scripts, emoji) are kept, so the text may still need UCS-2.
///
/// Used on personalisation values only, so that a name like Siân cannot turn a one-segment GSM-7
/// pre-text into a three-segment UCS-2 one. Template text itself is sent as approved.
pub fn downgrade_to_gsm(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if gsm_septets(c).is_some() {
            out.push(c);
        } else if let Some((_, to)) = DOWNGRADES.iter().find(|(from, _)| from.contains(c)) {
            out.push_str(to);
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gsm(units: usize, segments: usize) -> SmsInfo {
        SmsInfo { encoding: Encoding::Gsm7, units, segments }
    }

    fn ucs2(units: usize, segments: usize) -> SmsInfo {
        SmsInfo { encoding: Encoding::Ucs2, units, segments }
    }

    #[test]
    fn the_basic_set_has_127_characters_and_no_duplicates() {
        let mut chars: Vec<char> = GSM_BASIC.chars().collect();
        assert_eq!(chars.len(), 127);
        chars.sort();
        chars.dedup();
        assert_eq!(chars.len(), 127);
        assert_eq!(GSM_EXTENSION.chars().count(), 10);
        assert!(GSM_EXTENSION.chars().all(|c| !GSM_BASIC.contains(c)));
    }

    #[test]
    fn empty_text_is_zero_segments() {
        assert_eq!(analyse(""), gsm(0, 0));
    }

    #[test]
    fn plain_text_is_gsm7() {
        assert_eq!(analyse("Hello Sam, what time suits you?"), gsm(31, 1));
        assert_eq!(analyse("£5 @ 10% off: ¿Qué? Ñandu è ü").encoding, Encoding::Gsm7);
        assert_eq!(analyse("Ærø Δ §").encoding, Encoding::Gsm7);
        assert_eq!(analyse("line one\nline two\r").encoding, Encoding::Gsm7);
    }

    #[test]
    fn gsm7_single_segment_boundary_is_160() {
        assert_eq!(analyse(&"a".repeat(160)), gsm(160, 1));
        assert_eq!(analyse(&"a".repeat(161)), gsm(161, 2));
    }

    #[test]
    fn gsm7_concatenated_segments_hold_153() {
        assert_eq!(analyse(&"a".repeat(306)), gsm(306, 2));
        assert_eq!(analyse(&"a".repeat(307)), gsm(307, 3));
        assert_eq!(analyse(&"a".repeat(918)), gsm(918, 6));
        assert_eq!(analyse(&"a".repeat(919)), gsm(919, 7));
    }

    #[test]
    fn extension_characters_count_twice() {
        assert_eq!(analyse("€"), gsm(2, 1));
        assert_eq!(analyse("^{}\\[~]|€\u{0C}"), gsm(20, 1));
        // 158 + € = 160 fits; 159 + € = 161 does not.
        assert_eq!(analyse(&format!("{}€", "a".repeat(158))), gsm(160, 1));
        assert_eq!(analyse(&format!("{}€", "a".repeat(159))), gsm(161, 2));
    }

    #[test]
    fn an_escape_pair_is_never_split_across_segments() {
        // 152 + € would end segment one on the ESC, so € starts segment two: 306 septets, 3 segments.
        let text = format!("{}€{}", "a".repeat(152), "a".repeat(152));
        assert_eq!(analyse(&text), gsm(306, 3));
        let text = format!("{}€{}", "a".repeat(151), "a".repeat(153));
        assert_eq!(analyse(&text), gsm(306, 2));
    }

    #[test]
    fn a_curly_apostrophe_forces_ucs2() {
        let straight = format!("We'll call you{}", "a".repeat(100));
        let curly = format!("We’ll call you{}", "a".repeat(100));
        assert_eq!(analyse(&straight), gsm(114, 1));
        assert_eq!(analyse(&curly), ucs2(114, 2));
        assert_eq!(non_gsm_chars(&curly), vec!['’']);
    }

    #[test]
    fn ucs2_boundaries_are_70_and_67() {
        let text = |n: usize| format!("ë{}", "a".repeat(n - 1));
        assert_eq!(analyse(&text(70)), ucs2(70, 1));
        assert_eq!(analyse(&text(71)), ucs2(71, 2));
        assert_eq!(analyse(&text(134)), ucs2(134, 2));
        assert_eq!(analyse(&text(135)), ucs2(135, 3));
    }

    #[test]
    fn emoji_count_two_utf16_units() {
        assert_eq!(analyse("🙂"), ucs2(2, 1));
        assert_eq!(analyse(&format!("{}🙂", "a".repeat(68))), ucs2(70, 1));
        assert_eq!(analyse(&format!("{}🙂", "a".repeat(69))), ucs2(71, 2));
        // A surrogate pair is not split: 66 + 🙂 starts segment two with the emoji.
        assert_eq!(analyse(&format!("{}🙂{}", "a".repeat(66), "a".repeat(66))), ucs2(134, 3));
    }

    #[test]
    fn gsm_extension_characters_in_ucs2_text_count_once() {
        assert_eq!(analyse("€ë"), ucs2(2, 1));
    }

    #[test]
    fn downgrade_keeps_gsm_and_replaces_lookalikes() {
        assert_eq!(downgrade_to_gsm("Zoë O’Brien–Siân"), "Zoe O'Brien-Sian");
        assert_eq!(downgrade_to_gsm("Renée Ñúñez"), "Renée Ñuñez");
        assert_eq!(downgrade_to_gsm("Łukasz Wiśniewski"), "Lukasz Wisniewski");
        assert_eq!(downgrade_to_gsm("Dafydd ap Gruffydd"), "Dafydd ap Gruffydd");
        // No equivalent: kept, so the text stays UCS-2 rather than losing the name.
        assert_eq!(downgrade_to_gsm("محمد 🙂"), "محمد 🙂");
        for sample in ["Zoë", "Siân", "Seán Ó Briain", "Chloë-Anaïs", "Iñaki Güneş"] {
            assert_eq!(analyse(&downgrade_to_gsm(sample)).encoding, Encoding::Gsm7, "{sample}");
        }
    }
}
