//! Letters: an A4 PDF laid out for a windowed DL envelope, rendered with krilla.
//!
//! Layout (millimetres from the paper's top left):
//! - sender block (organisation, address, phone, web) right-aligned at the top right, from 20 mm;
//! - recipient name, address lines and postcode in the envelope window (see [`WINDOW_MM`]);
//! - "Our ref" on the left and the date on the right at 90 mm, below the window;
//! - the body from 105 mm (below the first fold at 99 mm), wrapped to 25–190 mm,
//!   continuing on further pages; a letter of several pages has "Page n of m" at the foot.
//!
//! Nothing but the recipient's address sits inside the window: the envelope must not show who wrote.

use std::sync::LazyLock;

use chrono::NaiveDate;
use krilla::geom::Point;
use krilla::page::PageSettings;
use krilla::surface::Surface;
use krilla::text::{Font, TextDirection};
use krilla::{Document, metadata::Metadata};
use rustybuzz::UnicodeBuffer;

use super::SendError;
use crate::domain::Recipient;

/// The organisation printed at the top right of every letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LetterSender {
    pub organisation: String,
    pub address_lines: Vec<String>,
    pub phone: Option<String>,
    pub web: Option<String>,
}

impl Default for LetterSender {
    /// A fictional organisation for the sandbox and tests (Ofcom's drama range number).
    fn default() -> Self {
        LetterSender {
            organisation: "Northgate Victim Care".into(),
            address_lines: vec!["PO Box 1234".into(), "Birmingham".into(), "B1 1AA".into()],
            phone: Some("0121 496 0000".into()),
            web: Some("victimcare.example.org".into()),
        }
    }
}

/// The envelope window on the unfolded A4 sheet: (left, top, width, height) in mm.
///
/// UK DL windows sit 20 mm from the left and 45 or 50 mm from the top, about 90 × 35 mm. We take
/// top = 45 mm (window 45–80 mm) but print the address only from 50 mm down to below 80 mm, i.e.
/// in the overlap of both common positions, and 5 mm in from the left edge, because a folded
/// A4 sheet (210 × 99 mm) moves a few millimetres inside a DL envelope (220 × 110 mm).
pub const WINDOW_MM: (f32, f32, f32, f32) = (20.0, 45.0, 90.0, 35.0);

const PT_PER_MM: f32 = 72.0 / 25.4;
const fn mm(v: f32) -> f32 {
    v * PT_PER_MM
}

/// A4 in points (595.28 × 841.89).
pub const A4: (f32, f32) = (mm(210.0), mm(297.0));
const LEFT: f32 = mm(25.0);
const RIGHT: f32 = mm(190.0);
const BOTTOM: f32 = mm(272.0);

const SENDER_TOP: f32 = mm(20.0);
const ADDRESS_LEFT: f32 = mm(WINDOW_MM.0 + 5.0);
const ADDRESS_TOP: f32 = mm(50.0);
/// Room for the address: up to 3 mm before the window's right edge, down to 80 mm.
const ADDRESS_WIDTH: f32 = mm(WINDOW_MM.0 + WINDOW_MM.2 - 3.0) - ADDRESS_LEFT;
const ADDRESS_MAX_LINES: usize = 7;
const ADDRESS_SIZE: f32 = 10.0;
/// Royal Mail asks for at least 10 pt; we shrink a very long line a little rather than refuse it.
const ADDRESS_MIN_SIZE: f32 = 8.5;
const DATE_BASELINE: f32 = mm(90.0);
const BODY_TOP: f32 = mm(105.0);
const CONTINUATION_TOP: f32 = mm(25.0);
const BODY_SIZE: f32 = 11.0;
const BODY_LEADING: f32 = 15.5;
const FOOTER_BASELINE: f32 = mm(285.0);

static REGULAR: LazyLock<Face> = LazyLock::new(|| Face::load(include_bytes!("../../assets/fonts/DejaVuSans.ttf")));
static BOLD: LazyLock<Face> = LazyLock::new(|| Face::load(include_bytes!("../../assets/fonts/DejaVuSans-Bold.ttf")));

/// A font for krilla to draw with, and the same font for rustybuzz to measure with.
struct Face {
    pdf: Font,
    shaper: rustybuzz::Face<'static>,
}

impl Face {
    fn load(ttf: &'static [u8]) -> Face {
        // The fonts are compiled in, so failing here is a build defect, caught by every test.
        Face {
            pdf: Font::new(ttf.into(), 0).expect("bundled font loads"),
            shaper: rustybuzz::Face::from_slice(ttf, 0).expect("bundled font parses"),
        }
    }

    /// Width of `text` at `size`: the sum of the advance widths of its glyphs, shaped the way
    /// krilla shapes them when drawing (so kerning is counted too).
    fn width(&self, text: &str, size: f32) -> f32 {
        let mut buffer = UnicodeBuffer::new();
        buffer.push_str(text);
        let shaped = rustybuzz::shape(&self.shaper, &[], buffer);
        let units: i32 = shaped.glyph_positions().iter().map(|p| p.x_advance).sum();
        units as f32 * size / self.shaper.units_per_em() as f32
    }

    fn missing_glyphs(&self, text: &str) -> usize {
        text.chars().filter(|c| !c.is_whitespace() && self.shaper.glyph_index(*c).is_none()).count()
    }
}

/// The PDF for an outbound letter, dated today in Europe/London by `clock`, with our message id
/// as its reference. Rendering is CPU work (shaping, font subsetting, compression): it runs on the
/// blocking pool, off the async runtime.
pub async fn render_outbound(
    sender: std::sync::Arc<LetterSender>,
    msg: &super::OutboundMessage,
    clock: crate::clock::Clock,
) -> Result<Vec<u8>, SendError> {
    if !matches!(msg.recipient, Recipient::Postal { .. }) {
        return Err(SendError::Permanent("letter needs a postal recipient".into()));
    }
    msg.plain_id()?;
    let date = clock.now().with_timezone(&chrono_tz::Europe::London).date_naive();
    let (recipient, id, body, language) =
        (msg.recipient.clone(), msg.id.clone(), msg.text.clone(), msg.language.clone());
    tokio::task::spawn_blocking(move || render_letter(&sender, &recipient, date, Some(&id), &body, &language))
        .await
        .map_err(|_| SendError::Transient("letter rendering was interrupted".into()))?
}

/// Renders a letter to `recipient` (which must be postal) as PDF bytes.
///
/// `body` is plain text: blank lines separate paragraphs, a single newline is kept as a line break
/// (sign-offs, lists), and long lines are wrapped. `reference` (our message id) is printed as
/// "Our ref" so a returned letter can be matched to its message. `language` (`en`, `cy`, …) is the
/// document's language; in Welsh the reference line and the date are in Welsh too.
pub fn render_letter(
    sender: &LetterSender,
    recipient: &Recipient,
    date: NaiveDate,
    reference: Option<&str>,
    body: &str,
    language: &str,
) -> Result<Vec<u8>, SendError> {
    let language = crate::domain::language::primary(language).unwrap_or_else(|| "en".into());
    let Recipient::Postal { name, lines, postcode } = recipient else {
        return Err(SendError::Permanent("letter needs a postal recipient".into()));
    };
    let address: Vec<String> = std::iter::once(name.trim().to_owned())
        .chain(lines.iter().map(|l| l.trim().to_owned()))
        .chain(std::iter::once(postcode.trim().to_uppercase()))
        .filter(|l| !l.is_empty())
        .collect();
    let address_size = address_size(&address)?;
    let missing = REGULAR.missing_glyphs(body);
    if missing > 0 {
        tracing::warn!(missing, "letter body has characters the letter font cannot show");
    }

    let pages = paginate(wrap(&REGULAR, BODY_SIZE, RIGHT - LEFT, body));
    let mut document = Document::new();
    // No personal data in the metadata; the language helps screen readers.
    document.set_metadata(
        Metadata::new().title("Letter".into()).language(crate::domain::language::document_tag(&language)),
    );
    for (index, page_lines) in pages.iter().enumerate() {
        let mut page = document.start_page_with(PageSettings::from_wh(A4.0, A4.1).expect("A4 is a valid size"));
        let mut surface = page.surface();
        if index == 0 {
            draw_sender(&mut surface, sender);
            let mut y = ADDRESS_TOP + cap_height(address_size);
            for line in &address {
                text(&mut surface, &REGULAR, address_size, ADDRESS_LEFT, y, line);
                y += address_size * 1.2;
            }
            if let Some(reference) = reference {
                let label = if language == "cy" { "Ein cyf" } else { "Our ref" };
                text(&mut surface, &REGULAR, 9.0, LEFT, DATE_BASELINE, &format!("{label}: {reference}"));
            }
            right_aligned(&mut surface, &REGULAR, BODY_SIZE, DATE_BASELINE, &letter_date(date, &language));
        }
        let mut y = if index == 0 { BODY_TOP } else { CONTINUATION_TOP };
        for line in page_lines {
            text(&mut surface, &REGULAR, BODY_SIZE, LEFT, y, line);
            y += BODY_LEADING;
        }
        if pages.len() > 1 {
            let label = format!("Page {} of {}", index + 1, pages.len());
            let x = (A4.0 - REGULAR.width(&label, 9.0)) / 2.0;
            text(&mut surface, &REGULAR, 9.0, x, FOOTER_BASELINE, &label);
        }
        surface.finish();
        page.finish();
    }
    document.finish().map_err(|_| SendError::Permanent("letter PDF could not be written".into()))
}

/// The font size at which the address fits the window, or why it cannot be printed.
fn address_size(address: &[String]) -> Result<f32, SendError> {
    if address.len() < 3 {
        return Err(SendError::Permanent("postal address is incomplete".into()));
    }
    if address.len() > ADDRESS_MAX_LINES {
        return Err(SendError::Permanent("postal address has too many lines for the envelope window".into()));
    }
    // A name or postcode drawn as empty boxes would not be delivered.
    if address.iter().any(|l| REGULAR.missing_glyphs(l) > 0) {
        return Err(SendError::Permanent("postal address has characters the letter font cannot show".into()));
    }
    let widest = address.iter().map(|l| REGULAR.width(l, ADDRESS_SIZE)).fold(0.0, f32::max);
    let size = ADDRESS_SIZE.min(ADDRESS_SIZE * ADDRESS_WIDTH / widest);
    if size < ADDRESS_MIN_SIZE {
        return Err(SendError::Permanent("postal address line too long for the envelope window".into()));
    }
    Ok(size)
}

/// The date as a letter in `language` writes it: "20 November 2026", "20 Tachwedd 2026".
fn letter_date(date: NaiveDate, language: &str) -> String {
    const WELSH_MONTHS: [&str; 12] = [
        "Ionawr",
        "Chwefror",
        "Mawrth",
        "Ebrill",
        "Mai",
        "Mehefin",
        "Gorffennaf",
        "Awst",
        "Medi",
        "Hydref",
        "Tachwedd",
        "Rhagfyr",
    ];
    use chrono::Datelike;
    match language {
        "cy" => format!("{} {} {}", date.day(), WELSH_MONTHS[date.month0() as usize], date.year()),
        _ => date.format("%-d %B %Y").to_string(),
    }
}

fn draw_sender(surface: &mut Surface, sender: &LetterSender) {
    let mut y = SENDER_TOP;
    right_aligned(surface, &BOLD, 11.0, y, &sender.organisation);
    y += 15.0;
    let details = sender.address_lines.iter().cloned().chain(sender.phone.iter().map(|p| format!("Tel: {p}")));
    for line in details.chain(sender.web.iter().cloned()) {
        right_aligned(surface, &REGULAR, 9.0, y, &line);
        y += 11.5;
    }
}

/// Cap height of DejaVu Sans (0.73 em): a first baseline this far below a line's top puts the
/// tops of its capitals on that line.
fn cap_height(size: f32) -> f32 {
    size * 0.73
}

fn text(surface: &mut Surface, face: &Face, size: f32, x: f32, baseline: f32, line: &str) {
    surface.draw_text(Point::from_xy(x, baseline), face.pdf.clone(), size, line, false, TextDirection::Auto);
}

fn right_aligned(surface: &mut Surface, face: &Face, size: f32, baseline: f32, line: &str) {
    text(surface, face, size, RIGHT - face.width(line, size), baseline, line);
}

/// Wraps `body` into lines no wider than `width`; an empty string is a paragraph gap.
fn wrap(face: &Face, size: f32, width: f32, body: &str) -> Vec<String> {
    let space = face.width(" ", size);
    let mut out: Vec<String> = Vec::new();
    for source_line in body.lines() {
        if source_line.trim().is_empty() {
            // Several blank lines make one gap; none at the start.
            if out.last().is_some_and(|l| !l.is_empty()) {
                out.push(String::new());
            }
            continue;
        }
        let (mut line, mut line_width) = (String::new(), 0.0);
        for (word, word_width) in source_line.split_whitespace().flat_map(|w| split_long_word(face, size, width, w)) {
            if !line.is_empty() && line_width + space + word_width > width {
                out.push(std::mem::take(&mut line));
                line_width = 0.0;
            }
            if !line.is_empty() {
                line.push(' ');
                line_width += space;
            }
            line.push_str(word);
            line_width += word_width;
        }
        out.push(line);
    }
    while out.last().is_some_and(String::is_empty) {
        out.pop();
    }
    out
}

/// A word with its width; a word wider than a whole line (a long link) is cut where it would
/// overflow, into pieces measured character by character.
fn split_long_word<'a>(face: &Face, size: f32, width: f32, word: &'a str) -> Vec<(&'a str, f32)> {
    let word_width = face.width(word, size);
    if word_width <= width {
        return vec![(word, word_width)];
    }
    let mut pieces = Vec::new();
    let (mut start, mut piece_width) = (0, 0.0);
    for (i, c) in word.char_indices() {
        let w = face.width(c.encode_utf8(&mut [0; 4]), size);
        if piece_width + w > width && i > start {
            pieces.push((&word[start..i], piece_width));
            (start, piece_width) = (i, 0.0);
        }
        piece_width += w;
    }
    pieces.push((&word[start..], piece_width));
    pieces
}

/// Splits wrapped lines into pages; a paragraph gap falling at the top of a page is dropped.
fn paginate(lines: Vec<String>) -> Vec<Vec<String>> {
    let capacity = |top: f32| ((BOTTOM - top) / BODY_LEADING) as usize + 1;
    let mut pages = vec![Vec::new()];
    let mut room = capacity(BODY_TOP);
    for line in lines {
        if room == 0 {
            pages.push(Vec::new());
            room = capacity(CONTINUATION_TOP);
        }
        let page = pages.last_mut().expect("at least one page");
        if line.is_empty() && page.is_empty() {
            continue;
        }
        page.push(line);
        room -= 1;
    }
    pages
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::process::Command;

    fn recipient() -> Recipient {
        Recipient::Postal {
            name: "Ms Zoë Example".into(),
            lines: vec!["Flat 2".into(), "14 Acacia Avenue".into(), "Kings Heath".into(), "Birmingham".into()],
            postcode: "b14 7zz".into(),
        }
    }

    const SHORT: &str = "Dear Zoë,\n\nThank you for speaking with us. We are an independent, free and confidential service.\n\nIf you would like to talk, call us on 0121 496 0000, Monday to Friday, 9am to 5pm.\n\nYours sincerely,\nJo\nSupport Advocate";

    fn long_body() -> String {
        let paragraph = "We can offer emotional and practical support, help you understand the criminal justice process, and talk with you about staying safe. Everything you tell us stays confidential unless someone is at risk of serious harm.";
        std::iter::repeat_n(paragraph, 14).collect::<Vec<_>>().join("\n\n")
    }

    fn render(body: &str) -> Vec<u8> {
        let date = NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
        render_letter(&LetterSender::default(), &recipient(), date, Some("0190f3a2-7c1e-7b3a"), body, "en").unwrap()
    }

    /// Samples to look at: `pdftoppm -png -r 50 target/letter-sample.pdf`.
    fn save_sample(name: &str, pdf: &[u8]) {
        let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
        let _ = std::fs::create_dir_all(&target).and_then(|()| std::fs::write(target.join(name), pdf));
    }

    fn has_tool(tool: &str) -> bool {
        Command::new(tool).arg("-v").output().is_ok()
    }

    fn write_temp(pdf: &[u8]) -> tempfile::NamedTempFile {
        let file = tempfile::Builder::new().suffix(".pdf").tempfile().unwrap();
        std::fs::write(file.path(), pdf).unwrap();
        file
    }

    fn pdfinfo_pages(path: &Path) -> usize {
        let out = Command::new("pdfinfo").arg(path).output().unwrap();
        let info = String::from_utf8(out.stdout).unwrap();
        let line = info.lines().find(|l| l.starts_with("Pages:")).expect("pdfinfo reports pages");
        line["Pages:".len()..].trim().parse().unwrap()
    }

    /// Words and their boxes (in points from the top left) from `pdftotext -bbox`.
    fn words(path: &Path) -> Vec<(String, [f32; 4])> {
        let out = Command::new("pdftotext").args(["-bbox", "-f", "1", "-l", "1"]).arg(path).arg("-").output().unwrap();
        let html = String::from_utf8(out.stdout).unwrap();
        html.lines()
            .filter_map(|l| {
                let l = l.trim().strip_prefix("<word ")?;
                let get = |name: &str| -> f32 {
                    let key = format!("{name}=\"");
                    let rest = &l[l.find(&key).unwrap() + key.len()..];
                    rest[..rest.find('"').unwrap()].parse().unwrap()
                };
                let word = &l[l.find('>')? + 1..l.find("</word>")?];
                Some((word.to_owned(), [get("xMin"), get("yMin"), get("xMax"), get("yMax")]))
            })
            .collect()
    }

    #[test]
    fn short_letter_is_a_small_one_page_a4_pdf() {
        let pdf = render(SHORT);
        save_sample("letter-sample.pdf", &pdf);
        assert!(pdf.starts_with(b"%PDF-"));
        let text = String::from_utf8_lossy(&pdf);
        let media_box = text.split("/MediaBox").nth(1).and_then(|r| r.split(']').next()).expect("a MediaBox");
        let numbers: Vec<f32> =
            media_box.trim_start_matches([' ', '[']).split_whitespace().map(|n| n.parse().unwrap()).collect();
        assert_eq!(numbers.len(), 4);
        assert!((numbers[2] - 595.28).abs() < 0.01 && (numbers[3] - 841.89).abs() < 0.01, "A4: {numbers:?}");
        assert!(pdf.len() < 60_000, "one-page letter is {} bytes", pdf.len());
    }

    #[test]
    fn poppler_sees_one_page_and_the_address_in_the_window() {
        if !has_tool("pdfinfo") || !has_tool("pdftotext") {
            eprintln!("poppler-utils not installed: skipping");
            return;
        }
        let file = write_temp(&render(SHORT));
        assert_eq!(pdfinfo_pages(file.path()), 1);

        let words = words(file.path());
        let (left, top, width, height) = WINDOW_MM;
        let window = [mm(left), mm(top), mm(left + width), mm(top + height)];
        let inside = |b: &[f32; 4]| b[0] >= window[0] && b[1] >= window[1] && b[2] <= window[2] && b[3] <= window[3];
        for expected in ["Ms", "Zoë", "Example", "Acacia", "Birmingham", "B14", "7ZZ"] {
            let hits: Vec<_> = words.iter().filter(|(w, _)| w == expected).collect();
            assert!(!hits.is_empty(), "{expected} not found");
            assert!(hits.iter().any(|(_, b)| inside(b)), "{expected} outside the window: {hits:?}");
        }
        // Only the address shows through the window: the organisation's name stays outside it.
        for (word, b) in &words {
            if ["Northgate", "Victim", "Care", "Thank"].contains(&word.as_str()) {
                assert!(!inside(b), "{word} would show through the window");
            }
        }
    }

    #[test]
    fn a_welsh_letter_carries_its_language_and_a_welsh_date() {
        let date = NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
        let welsh =
            render_letter(&LetterSender::default(), &recipient(), date, Some("ref-1"), "Annwyl Zoë,", "cy").unwrap();
        let english = render(SHORT);
        let lang = |pdf: &[u8]| String::from_utf8_lossy(pdf).contains("/Lang(cy-GB)");
        assert!(lang(&welsh), "the catalog names Welsh");
        assert!(!lang(&english) && String::from_utf8_lossy(&english).contains("/Lang(en-GB)"));
        assert_eq!(letter_date(date, "cy"), "20 Tachwedd 2026");
        assert_eq!(letter_date(date, "en"), "20 November 2026");
        if has_tool("pdftotext") {
            let file = write_temp(&welsh);
            let text: Vec<String> = words(file.path()).into_iter().map(|(w, _)| w).collect();
            assert!(text.windows(2).any(|w| w == ["Ein", "cyf:"]), "{text:?}");
            assert!(text.iter().any(|w| w == "Tachwedd"), "{text:?}");
        }
    }

    #[test]
    fn long_letter_runs_to_numbered_pages() {
        let body = long_body();
        let pdf = render(&body);
        save_sample("letter-sample-long.pdf", &pdf);
        if !has_tool("pdfinfo") || !has_tool("pdftotext") {
            assert!(paginate(wrap(&REGULAR, BODY_SIZE, RIGHT - LEFT, &body)).len() > 1);
            return;
        }
        let file = write_temp(&pdf);
        let pages = pdfinfo_pages(file.path());
        assert!(pages > 1, "{pages} pages");
        let out = Command::new("pdftotext").args(["-layout"]).arg(file.path()).arg("-").output().unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains(&format!("Page 2 of {pages}")));
        // Every word of the body made it onto some page, in order.
        let printed: Vec<&str> = text.split_whitespace().collect();
        let expected: Vec<&str> = body.split_whitespace().collect();
        let mut at = 0;
        for word in &printed {
            if at < expected.len() && *word == expected[at] {
                at += 1;
            }
        }
        assert_eq!(at, expected.len(), "body words missing from the PDF");
    }

    #[test]
    fn wraps_to_width_keeping_breaks_and_paragraphs() {
        let width = mm(60.0);
        let lines = wrap(
            &REGULAR,
            BODY_SIZE,
            width,
            "\n\nOne two three four five six seven eight nine ten eleven twelve.\n\n\n\nYours,\nJo\n\n",
        );
        assert!(lines.iter().all(|l| REGULAR.width(l, BODY_SIZE) <= width));
        assert!(lines.len() > 4);
        assert_eq!(lines[lines.len() - 3..], ["".to_string(), "Yours,".into(), "Jo".into()]);
        assert!(!lines[0].is_empty());
        assert_eq!(lines.iter().filter(|l| l.is_empty()).count(), 1);

        let url = format!("https://example.org/{}", "a".repeat(200));
        let lines = wrap(&REGULAR, BODY_SIZE, width, &url);
        assert!(lines.len() > 1);
        assert!(lines.iter().all(|l| REGULAR.width(l, BODY_SIZE) <= width));
        assert_eq!(lines.concat(), url);
    }

    #[test]
    fn addresses_that_cannot_be_printed_are_refused() {
        let date = NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
        let refuse = |recipient: Recipient| {
            matches!(
                render_letter(&LetterSender::default(), &recipient, date, None, "Hi", "en"),
                Err(SendError::Permanent(_))
            )
        };
        assert!(refuse(Recipient::Email { address: "a@example.org".into() }));
        let postal = |lines: Vec<&str>| Recipient::Postal {
            name: "Sam".into(),
            lines: lines.into_iter().map(String::from).collect(),
            postcode: "B1 1AA".into(),
        };
        assert!(refuse(postal(vec![])));
        assert!(refuse(postal(vec!["1", "2", "3", "4", "5", "6"])));
        assert!(refuse(postal(vec![&"Very Long Street Name ".repeat(4)])));
        assert!(refuse(postal(vec!["北京市"])));
        assert!(!refuse(postal(vec!["1", "2", "3", "4", "5"])));
    }
}
