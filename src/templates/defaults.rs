//! The default wording, built into the binary: `safereach templates load --defaults`, the demo
//! and a Docker image's `init` work outside the repository. The list names every `*.txt` file of
//! `message_templates/`; a test checks that it matches the directory, so a new file cannot be
//! left out.

use super::{TemplateError, TemplateSource};

macro_rules! defaults {
    ($($file:literal),+ $(,)?) => {
        /// (file name, text) of each default template source, in file-name order.
        pub const DEFAULT_FILES: &[(&str, &str)] =
            &[$(($file, include_str!(concat!("../../message_templates/", $file)))),+];
    };
}

defaults!(
    "information_pack.email.cy.txt",
    "information_pack.email.txt",
    "information_pack.letter.cy.txt",
    "information_pack.letter.txt",
    "information_pack.sms.cy.txt",
    "information_pack.sms.txt",
    "information_pack_discreet.sms.cy.txt",
    "information_pack_discreet.sms.txt",
    "priority_pretext.sms.cy.txt",
    "priority_pretext.sms.txt",
    "priority_pretext_discreet.sms.cy.txt",
    "priority_pretext_discreet.sms.txt",
    "satisfaction_survey.email.cy.txt",
    "satisfaction_survey.email.txt",
    "satisfaction_survey.sms.cy.txt",
    "satisfaction_survey.sms.txt",
    "satisfaction_survey_discreet.sms.cy.txt",
    "satisfaction_survey_discreet.sms.txt",
);

/// The built-in sources, read as `load_dir` reads a directory.
pub fn default_sources() -> Result<Vec<TemplateSource>, TemplateError> {
    super::source::parse_files(
        DEFAULT_FILES.iter().map(|(name, text)| (format!("(built in) {name}"), text.to_string())),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn the_built_in_list_is_exactly_message_templates() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("message_templates");
        let mut on_disk: Vec<(String, String)> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "txt"))
            .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read_to_string(&p).unwrap()))
            .collect();
        on_disk.sort();
        let built_in: Vec<(String, String)> =
            DEFAULT_FILES.iter().map(|(n, t)| (n.to_string(), t.to_string())).collect();
        assert_eq!(built_in, on_disk, "add new files in message_templates/ to DEFAULT_FILES");
    }

    #[test]
    fn the_built_in_sources_read_as_the_directory_does() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("message_templates");
        assert_eq!(default_sources().unwrap(), super::super::load_dir(&dir).unwrap());
    }
}
