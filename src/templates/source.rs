//! The source-file format of `message_templates/` (described for editors in its README.md):
//!
//! ```text
//! name: information_pack
//! channel: email
//! kind: information_pack
//! discreet: no
//! language: en
//! subject: Your information pack
//! ---
//! Plain-text part (or the whole SMS text or letter body).
//! --- html ---
//! <p>HTML part, email only.</p>
//! ```
//!
//! Settings are `key: value` lines (blank lines and lines starting with `#` are skipped; an opening
//! `---` line is allowed); the first `---` line ends them. Each part is trimmed of surrounding
//! blank space; line breaks inside it are kept (in an SMS they are sent).

use std::path::Path;

use super::{TemplateContent, TemplateError, TemplateSource};
use crate::domain::{Channel, Kind};

/// The line that splits an email's plain-text part from its HTML part (any case, spaces around).
const HTML_MARKER: &str = "--- html ---";

/// Reads every `*.txt` template source in `dir`, in file-name order. Other files (a README) are
/// skipped. Two files defining the same name for the same channel are an error.
pub fn load_dir(dir: &Path) -> Result<Vec<TemplateSource>, TemplateError> {
    let io = |source| TemplateError::Io { path: dir.to_path_buf(), source };
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        let hidden = path.file_name().and_then(|n| n.to_str()).is_none_or(|n| n.starts_with('.'));
        if !hidden && path.is_file() && path.extension().is_some_and(|e| e == "txt") {
            paths.push(path);
        }
    }
    paths.sort();
    let mut files = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(&path).map_err(|source| TemplateError::Io { path: path.clone(), source })?;
        files.push((path.display().to_string(), text));
    }
    parse_files(files)
}

/// Parses (file name, text) sources in order; two defining the same name, channel and language
/// are an error.
pub(super) fn parse_files(
    files: impl IntoIterator<Item = (String, String)>,
) -> Result<Vec<TemplateSource>, TemplateError> {
    let mut sources: Vec<(String, TemplateSource)> = Vec::new();
    for (file, text) in files {
        let source = parse_source(&file, &text)?;
        if let Some((first, _)) = sources
            .iter()
            .find(|(_, s)| s.name == source.name && s.channel == source.channel && s.language == source.language)
        {
            return Err(TemplateError::Duplicate {
                file,
                first: first.clone(),
                name: source.name,
                channel: source.channel.as_str(),
                language: source.language,
            });
        }
        sources.push((file, source));
    }
    Ok(sources.into_iter().map(|(_, s)| s).collect())
}

/// Parses one source file; `file` names it in errors.
pub fn parse_source(file: &str, text: &str) -> Result<TemplateSource, TemplateError> {
    // Files saved by Windows editors may start with a byte-order mark and use CRLF.
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(text).replace("\r\n", "\n");
    let lines: Vec<&str> = text.split('\n').collect();
    let err = |line: usize, message: String| TemplateError::Syntax { file: file.to_string(), line, message };

    let mut settings = Settings::default();
    let mut index = 0;
    // An opening `---` (as in Markdown front matter) is allowed.
    while index < lines.len() && lines[index].trim().is_empty() {
        index += 1;
    }
    if index < lines.len() && lines[index].trim() == "---" {
        index += 1;
    }
    let body_start = loop {
        let Some(line) = lines.get(index) else {
            return Err(err(lines.len(), "the settings must end with a line containing only ---".into()));
        };
        let number = index + 1;
        index += 1;
        let line = line.trim();
        if line == "---" {
            break index;
        }
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            return Err(err(
                number,
                format!(
                    "expected a setting like `name: priority_pretext`, or a line containing only --- to end the settings (found `{line}`)"
                ),
            ));
        };
        settings.set(key.trim(), value.trim()).map_err(|message| err(number, message))?;
        if key.trim().eq_ignore_ascii_case("subject") {
            settings.subject_line = Some(number);
        }
    };
    let first_line = lines.iter().position(|l| !l.trim().is_empty()).map_or(1, |i| i + 1);
    let missing = |what: &str| err(first_line, format!("the `{what}` setting is missing"));
    let language = settings.language.take().unwrap_or_else(|| crate::domain::language::ENGLISH.to_string());
    let (name, channel, kind, discreet) = match settings {
        Settings { name: None, .. } => return Err(missing("name")),
        Settings { channel: None, .. } => return Err(missing("channel")),
        Settings { kind: None, .. } => return Err(missing("kind")),
        Settings { discreet: None, .. } => return Err(missing("discreet")),
        Settings { name: Some(n), channel: Some(c), kind: Some(k), discreet: Some(d), .. } => (n, c, k, d),
    };
    if let Some(line) = settings.subject_line.filter(|_| channel != Channel::Email) {
        return Err(err(line, "only email templates have a subject".into()));
    }

    // The body, split at the HTML marker for email.
    let mut markers = (body_start..lines.len()).filter(|&i| lines[i].trim().eq_ignore_ascii_case(HTML_MARKER));
    let (text_lines, html_lines) = match (markers.next(), markers.next()) {
        (_, Some(second)) => return Err(err(second + 1, format!("`{HTML_MARKER}` may appear only once"))),
        (Some(marker), None) if channel != Channel::Email => {
            return Err(err(marker + 1, format!("only email templates have an HTML part (`{HTML_MARKER}`)")));
        }
        (Some(marker), None) => (&lines[body_start..marker], Some(&lines[marker + 1..])),
        (None, None) => (&lines[body_start..], None),
    };
    let join = |part: &[&str]| part.join("\n").trim().to_string();
    Ok(TemplateSource {
        name,
        channel,
        kind,
        discreet,
        language,
        content: TemplateContent {
            subject: settings.subject.filter(|s| !s.is_empty()),
            body: join(text_lines),
            html: html_lines.map(join),
        },
    })
}

impl TemplateSource {
    /// This template in the source-file format (`parse_source` reads it back unchanged).
    pub fn to_source_text(&self) -> String {
        let mut out = format!(
            "name: {}\nchannel: {}\nkind: {}\ndiscreet: {}\n",
            self.name,
            self.channel.as_str(),
            self.kind.as_str(),
            if self.discreet { "yes" } else { "no" }
        );
        if self.language != crate::domain::language::ENGLISH {
            out += &format!("language: {}\n", self.language);
        }
        if let Some(subject) = &self.content.subject {
            out += &format!("subject: {subject}\n");
        }
        out += &format!("---\n{}\n", self.content.body);
        if let Some(html) = &self.content.html {
            out += &format!("{HTML_MARKER}\n{html}\n");
        }
        out
    }
}

#[derive(Default)]
struct Settings {
    name: Option<String>,
    channel: Option<Channel>,
    kind: Option<Kind>,
    discreet: Option<bool>,
    language: Option<String>,
    subject: Option<String>,
    subject_line: Option<usize>,
}

impl Settings {
    fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        let duplicate = || format!("`{key}` is set twice");
        match key.to_ascii_lowercase().as_str() {
            "name" => {
                let valid = !value.is_empty()
                    && value.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
                if !valid {
                    return Err(format!("a name uses only a-z, 0-9 and _ (found `{value}`)"));
                }
                replace(&mut self.name, value.to_string()).ok_or_else(duplicate)
            }
            "channel" => {
                let channel = Channel::parse(&value.to_ascii_lowercase())
                    .ok_or_else(|| format!("channel must be sms, email or letter (found `{value}`)"))?;
                replace(&mut self.channel, channel).ok_or_else(duplicate)
            }
            "kind" => {
                let kind = Kind::parse(&value.to_ascii_lowercase()).ok_or_else(|| {
                    format!("kind must be priority_pretext, information_pack or satisfaction_survey (found `{value}`)")
                })?;
                replace(&mut self.kind, kind).ok_or_else(duplicate)
            }
            "discreet" => {
                let discreet = match value.to_ascii_lowercase().as_str() {
                    "yes" | "true" => true,
                    "no" | "false" => false,
                    _ => return Err(format!("discreet must be yes or no (found `{value}`)")),
                };
                replace(&mut self.discreet, discreet).ok_or_else(duplicate)
            }
            "language" => {
                let language = crate::domain::language::primary(value)
                    .filter(|l| l == value)
                    .ok_or_else(|| format!("language is a lower-case code such as en or cy (found `{value}`)"))?;
                replace(&mut self.language, language).ok_or_else(duplicate)
            }
            "subject" => replace(&mut self.subject, value.to_string()).ok_or_else(duplicate),
            _ => Err(format!(
                "unknown setting `{key}` (settings are name, channel, kind, discreet, language and subject)"
            )),
        }
    }
}

/// Sets `slot` unless it is already set (`None` then means "set twice").
fn replace<T>(slot: &mut Option<T>, value: T) -> Option<()> {
    if slot.is_some() {
        return None;
    }
    *slot = Some(value);
    Some(())
}
