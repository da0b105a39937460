//! The default templates in `message_templates/`, the file format, and one failing case per problem.

use std::path::{Path, PathBuf};

use serde_json::json;

use super::*;
use crate::domain::sms::Encoding;
use crate::domain::template_names::*;

fn defaults_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("message_templates")
}

fn defaults() -> Vec<TemplateSource> {
    load_dir(&defaults_dir()).expect("message_templates/ loads")
}

fn default(name: &str, channel: Channel) -> TemplateSource {
    default_in(name, channel, "en")
}

fn default_in(name: &str, channel: Channel, language: &str) -> TemplateSource {
    defaults()
        .into_iter()
        .find(|t| t.name == name && t.channel == channel && t.language == language)
        .expect("template exists")
}

fn codes(problems: &[Problem]) -> Vec<ProblemCode> {
    problems.iter().map(|p| p.code).collect()
}

// ---- the default templates ----

#[test]
fn every_contract_template_is_there_and_nothing_else() {
    let found: Vec<(String, Channel, String)> =
        defaults().into_iter().map(|t| (t.name, t.channel, t.language)).collect();
    // Each in English and in Welsh.
    let mut expected: Vec<(String, Channel, String)> = [
        (INFORMATION_PACK, Channel::Email),
        (INFORMATION_PACK, Channel::Letter),
        (INFORMATION_PACK, Channel::Sms),
        (INFORMATION_PACK_DISCREET, Channel::Sms),
        (PRIORITY_PRETEXT, Channel::Sms),
        (PRIORITY_PRETEXT_DISCREET, Channel::Sms),
        (SATISFACTION_SURVEY, Channel::Email),
        (SATISFACTION_SURVEY, Channel::Sms),
        (SATISFACTION_SURVEY_DISCREET, Channel::Sms),
    ]
    .into_iter()
    .flat_map(|(n, c)| ["en", "cy"].map(|l| (n.to_string(), c, l.to_string())))
    .collect();
    let mut sorted = found.clone();
    sorted.sort();
    expected.sort();
    assert_eq!(sorted, expected);
}

#[test]
fn loading_is_deterministic() {
    assert_eq!(defaults(), defaults());
}

#[test]
fn every_default_passes_the_checks_without_warnings() {
    for template in defaults() {
        let review = review(&template, &Rules::default());
        assert!(review.problems.is_empty(), "{} ({:?}): {:?}", template.name, template.channel, review.problems);
        assert!(review.warnings.is_empty(), "{} ({:?}): {:?}", template.name, template.channel, review.warnings);
        assert!(review.preview.is_some());
    }
}

#[test]
fn every_default_renders_with_and_without_personal_details() {
    for template in defaults() {
        for data in [sample_vars(), json!({}), json!({"first_name": "Sam"}), json!({"advocate_name": "Jo"})] {
            let out = render(template.channel, &template.content, &data)
                .unwrap_or_else(|e| panic!("{} ({:?}) with {data}: {e}", template.name, template.channel));
            for part in [Some(&out.text), out.subject.as_ref(), out.html.as_ref()].into_iter().flatten() {
                assert!(!part.contains("{{") && !part.contains("}}"), "{}: {part}", template.name);
                assert!(!part.contains(" ,") && !part.contains("  "), "{}: gap in {part:?}", template.name);
            }
        }
        let out = render(template.channel, &template.content, &sample_vars()).unwrap();
        assert!(out.text.contains("Sam"), "{} greets by name", template.name);
    }
}

#[test]
fn advocate_name_is_used_where_given() {
    for (name, channel) in [(PRIORITY_PRETEXT, Channel::Sms), (PRIORITY_PRETEXT_DISCREET, Channel::Sms)] {
        let template = default(name, channel);
        let with = render(channel, &template.content, &sample_vars()).unwrap();
        let without = render(channel, &template.content, &json!({"first_name": "Sam"})).unwrap();
        assert!(with.text.contains("Jo"), "{}", with.text);
        assert!(!without.text.contains("Jo"), "{}", without.text);
    }
}

#[test]
fn optional_paragraphs_keep_the_spacing() {
    // A line holding only `{{#if …}}` or `{{/if}}` disappears with its line break.
    for channel in [Channel::Email, Channel::Letter] {
        let template = default(INFORMATION_PACK, channel);
        let with = render(channel, &template.content, &sample_vars()).unwrap().text;
        let without = render(channel, &template.content, &json!({})).unwrap().text;
        assert!(with.contains("5pm.\n\nYour contact here is Jo.\n\n"), "{with}");
        assert!(without.contains("5pm.\n\nY"), "{without}");
        assert!(!with.contains("\n\n\n") && !without.contains("\n\n\n"));
    }
    let discreet = default(INFORMATION_PACK_DISCREET, Channel::Sms);
    let bare = render(Channel::Sms, &discreet.content, &json!({})).unwrap().text;
    assert!(bare.starts_with("Hello. Here are"), "{bare}");
}

#[test]
fn discreet_defaults_contain_no_forbidden_word() {
    let rules = Rules::default();
    // English words here; the Welsh defaults pass the same checks with the Welsh forbidden words.
    for template in defaults().into_iter().filter(|t| t.discreet && t.language == "en") {
        for data in [sample_vars(), json!({}), long_sample_vars(20)] {
            let out = render(template.channel, &template.content, &data).unwrap();
            let lower = out.text.to_lowercase();
            for word in [
                "northgate",
                "victim",
                "care",
                "support",
                "crime",
                "police",
                "abuse",
                "advocate",
                "case",
                "court",
                "http",
            ] {
                assert!(!lower.contains(word), "{}: {word} in {}", template.name, out.text);
            }
            if template.kind == Kind::SatisfactionSurvey {
                assert!(lower.contains("1") && lower.contains("5"), "{} still asks for a score", template.name);
            } else {
                assert!(lower.contains("time") || lower.contains("call"), "{} still asks about a call", template.name);
            }
        }
        assert!(check(&template, &rules).is_empty());
    }
    assert_eq!(defaults().iter().filter(|t| t.discreet).count(), 6, "three in English, three in Welsh");
}

#[test]
fn pretexts_are_one_gsm7_segment_even_with_long_names() {
    for name in [PRIORITY_PRETEXT, PRIORITY_PRETEXT_DISCREET] {
        let template = default(name, Channel::Sms);
        for len in [0, 20] {
            let data = if len == 0 { json!({}) } else { long_sample_vars(len) };
            let info = render(Channel::Sms, &template.content, &data).unwrap().sms.unwrap();
            assert_eq!(
                (info.encoding, info.segments),
                (Encoding::Gsm7, 1),
                "{name} with {len}-character names: {info:?}"
            );
        }
        // A non-GSM name is brought into GSM-7, so it cannot triple the segments.
        let info = render(
            Channel::Sms,
            &template.content,
            &json!({"first_name": "Siân-Zoë Ó Briain", "advocate_name": "Seán"}),
        )
        .unwrap()
        .sms
        .unwrap();
        assert_eq!((info.encoding, info.segments), (Encoding::Gsm7, 1), "{name}");
    }
}

#[test]
fn information_pack_sms_fit_in_six_segments() {
    for name in [INFORMATION_PACK, INFORMATION_PACK_DISCREET] {
        let template = default(name, Channel::Sms);
        let info = render(Channel::Sms, &template.content, &long_sample_vars(20)).unwrap().sms.unwrap();
        assert_eq!(info.encoding, Encoding::Gsm7, "{name}");
        assert!(info.segments <= 6, "{name}: {info:?}");
    }
}

#[test]
fn information_pack_says_what_the_contract_asks() {
    let sms = render(Channel::Sms, &default(INFORMATION_PACK, Channel::Sms).content, &json!({})).unwrap().text;
    let email = render(Channel::Email, &default(INFORMATION_PACK, Channel::Email).content, &json!({})).unwrap();
    let letter = render(Channel::Letter, &default(INFORMATION_PACK, Channel::Letter).content, &json!({})).unwrap().text;
    for text in [&sms, &email.text, email.html.as_ref().unwrap(), &letter] {
        for needle in [
            "Northgate Victim Care",
            "free",
            "police",
            "0300 000 0000",
            "victimcare.example.org/chat",
            "Victim Personal Statement",
            "compensation",
            "witness",
            "complain",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in {text}");
        }
    }
    for text in [&email.text, email.html.as_ref().unwrap(), &letter] {
        assert!(text.contains("8am to 8pm") && text.contains("9am to 5pm"));
        assert!(text.contains("12. To complain") || text.contains("<li>To complain"));
        assert_eq!(text.matches("<li>To ").count().max(text.matches(". To ").count()), 12, "{text}");
    }
    assert!(email.subject.unwrap().contains("information pack"));
    assert!(letter.starts_with("Hello,"), "the letter starts at the salutation");
}

#[test]
fn email_text_is_not_escaped_and_html_is() {
    let template = default(INFORMATION_PACK, Channel::Email);
    let out = render(Channel::Email, &template.content, &json!({"first_name": "Ann & <O'Neil>"})).unwrap();
    assert!(out.text.starts_with("Dear Ann & <O'Neil>,"), "{}", out.text);
    assert!(out.text.contains("Victims' Code"));
    let html = out.html.unwrap();
    assert!(html.contains("Dear Ann &amp; &lt;O&#x27;Neil&gt;,"), "{html}");
    assert!(!html.contains("<O'Neil>"));
    assert!(html.contains("<li>"), "the template's own markup is kept");
}

/// The survey asks one question and for one digit from 1 to 5, in every language and on every
/// channel; its texts stay GSM-7 and within two segments even with long names.
#[test]
fn the_survey_asks_one_question_answered_with_a_digit_from_1_to_5() {
    let surveys: Vec<TemplateSource> = defaults().into_iter().filter(|t| t.kind == Kind::SatisfactionSurvey).collect();
    assert_eq!(surveys.len(), 6, "sms, email and discreet sms, in English and Welsh");
    for template in surveys {
        let out = render(template.channel, &template.content, &long_sample_vars(20)).unwrap();
        assert_eq!(
            out.text.matches('?').count(),
            1,
            "{} ({}): one question: {}",
            template.name,
            template.language,
            out.text
        );
        for score in ["1", "5"] {
            assert!(
                out.text.contains(score),
                "{} ({}) names the scale: {}",
                template.name,
                template.language,
                out.text
            );
        }
        if let Some(info) = out.sms {
            assert_eq!(info.encoding, Encoding::Gsm7, "{} ({})", template.name, template.language);
            assert!(
                info.segments <= Rules::default().survey_max_segments,
                "{} ({}): {info:?}",
                template.name,
                template.language
            );
        }
    }
    // Only the discreet one is for safety-sensitive cases, and it does not name the service.
    let discreet = default(SATISFACTION_SURVEY_DISCREET, Channel::Sms);
    assert!(discreet.discreet && !default(SATISFACTION_SURVEY, Channel::Sms).discreet);
}

#[test]
fn segment_counts_of_the_default_sms() {
    // Printed with --nocapture for the record; limits are asserted above.
    for template in defaults().into_iter().filter(|t| t.channel == Channel::Sms) {
        for (label, data) in [("sample", sample_vars()), ("none", json!({})), ("20-char", long_sample_vars(20))] {
            let info = render(Channel::Sms, &template.content, &data).unwrap().sms.unwrap();
            println!(
                "{:28} {label:8} {:?} {} units, {} segments",
                template.name, info.encoding, info.units, info.segments
            );
        }
    }
}

// ---- the file format ----

const EMAIL: &str = "name: welcome\nchannel: email\nkind: information_pack\ndiscreet: no\nsubject: Hello {{#if first_name}}{{first_name}}{{/if}}\n---\n\nText part\n\n--- HTML ---\n<p>Html</p>\n";

#[test]
fn parses_settings_body_and_html() {
    let source = parse_source("welcome.email.txt", EMAIL).unwrap();
    assert_eq!(source.name, "welcome");
    assert_eq!(source.channel, Channel::Email);
    assert_eq!(source.kind, Kind::InformationPack);
    assert!(!source.discreet);
    assert_eq!(source.content.subject.as_deref(), Some("Hello {{#if first_name}}{{first_name}}{{/if}}"));
    assert_eq!(source.content.body, "Text part");
    assert_eq!(source.content.html.as_deref(), Some("<p>Html</p>"));
}

#[test]
fn accepts_windows_files_comments_and_an_opening_fence() {
    let text = "\u{FEFF}---\r\n# a note\r\nName: x\r\n\r\nchannel: SMS\r\nkind: priority_pretext\r\ndiscreet: Yes\r\n---\r\nline one\r\nline two\r\n";
    let source = parse_source("x.txt", text).unwrap();
    assert_eq!(source.channel, Channel::Sms);
    assert!(source.discreet);
    assert_eq!(source.content.body, "line one\nline two");
    assert_eq!(source.content.html, None);
}

#[test]
fn body_may_contain_dashes_after_the_settings() {
    let text = "name: x\nchannel: letter\nkind: information_pack\ndiscreet: no\n---\nDear Sam,\n---\nBye\n";
    assert_eq!(parse_source("x", text).unwrap().content.body, "Dear Sam,\n---\nBye");
}

#[test]
fn round_trips_through_the_source_format() {
    for template in defaults() {
        assert_eq!(parse_source("again", &template.to_source_text()).unwrap(), template);
    }
    let email = parse_source("e", EMAIL).unwrap();
    assert_eq!(parse_source("again", &email.to_source_text()).unwrap(), email);
}

#[test]
fn format_errors_name_the_file_and_line() {
    let base = "name: x\nchannel: sms\nkind: priority_pretext\ndiscreet: no\n";
    let cases = [
        (base.to_string(), 5, "must end with a line containing only ---"),
        (format!("{base}Hello"), 5, "or a line containing only --- to end the settings"),
        (format!("{base}colour: red\n---\nHi"), 5, "unknown setting `colour`"),
        (format!("{base}just text\n---\nHi"), 5, "expected a setting"),
        (format!("{base}name: y\n---\nHi"), 5, "`name` is set twice"),
        (base.replace("sms", "fax") + "---\nHi", 2, "channel must be sms, email or letter"),
        (base.replace("priority_pretext", "newsletter") + "---\nHi", 3, "kind must be"),
        (base.replace("discreet: no", "discreet: maybe") + "---\nHi", 4, "discreet must be yes or no"),
        (base.replace("name: x", "name: Pre Text") + "---\nHi", 1, "a name uses only"),
        (base.replace("discreet: no\n", "") + "---\nHi", 1, "`discreet` setting is missing"),
        (format!("{base}subject: Hi\n---\nHi"), 5, "only email templates have a subject"),
        (format!("{base}---\nHi\n--- html ---\n<p>Hi</p>"), 7, "only email templates have an HTML part"),
        (EMAIL.to_string() + "--- html ---\nagain\n", 12, "may appear only once"),
    ];
    for (text, line, message) in cases {
        let err = parse_source("message_templates/x.sms.txt", &text).unwrap_err();
        let TemplateError::Syntax { file, line: got, message: got_message } = &err else { panic!("{err}") };
        assert_eq!(file, "message_templates/x.sms.txt");
        assert_eq!((*got, got_message.contains(message)), (line, true), "{err} (wanted line {line}: {message})");
        assert!(err.to_string().starts_with(&format!("message_templates/x.sms.txt, line {line}: ")), "{err}");
    }
}

#[test]
fn load_dir_skips_other_files_and_refuses_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let sms = "name: a\nchannel: sms\nkind: information_pack\ndiscreet: no\n---\nHi\n";
    std::fs::write(dir.path().join("b.txt"), sms).unwrap();
    std::fs::write(dir.path().join("a.txt"), sms.replace("name: a", "name: z")).unwrap();
    std::fs::write(dir.path().join("README.md"), "not a template").unwrap();
    std::fs::write(dir.path().join(".hidden.txt"), "not a template").unwrap();
    let names: Vec<String> = load_dir(dir.path()).unwrap().into_iter().map(|t| t.name).collect();
    assert_eq!(names, vec!["z", "a"], "sorted by file name");

    std::fs::write(dir.path().join("c.txt"), sms).unwrap();
    let err = load_dir(dir.path()).unwrap_err();
    assert!(matches!(err, TemplateError::Duplicate { .. }), "{err}");
    assert!(err.to_string().contains("c.txt") && err.to_string().contains("b.txt"), "{err}");

    std::fs::write(dir.path().join("c.txt"), "nonsense").unwrap();
    let err = load_dir(dir.path()).unwrap_err();
    assert!(err.to_string().contains("c.txt, line 1"), "{err}");
    assert!(matches!(load_dir(&dir.path().join("missing")), Err(TemplateError::Io { .. })));
}

// ---- one failing case per problem ----

fn sms(name: &str, kind: Kind, discreet: bool, body: &str) -> TemplateSource {
    TemplateSource {
        name: name.into(),
        channel: Channel::Sms,
        kind,
        discreet,
        language: "en".into(),
        content: TemplateContent { subject: None, body: body.into(), html: None },
    }
}

fn pretext(body: &str) -> TemplateSource {
    sms("pretext_test", Kind::PriorityPretext, false, body)
}

fn problems_of(source: &TemplateSource) -> Vec<ProblemCode> {
    codes(&check(source, &Rules::default()))
}

#[test]
fn a_good_template_has_no_problem() {
    assert_eq!(problems_of(&pretext("Hi{{#if first_name}} {{first_name}}{{/if}}, what time suits you?")), vec![]);
}

#[test]
fn syntax_error() {
    assert_eq!(problems_of(&pretext("Hi {{#if first_name}}{{first_name}}")), vec![ProblemCode::SyntaxError]);
    assert_eq!(problems_of(&pretext("Hi {{first_name")), vec![ProblemCode::SyntaxError]);
}

#[test]
fn unsupported_syntax() {
    for body in ["Hi {{{first_name}}}", "{{log first_name}}", "{{> footer}}", "{{#each first_name}}x{{/each}}"] {
        assert_eq!(problems_of(&pretext(body)), vec![ProblemCode::UnsupportedSyntax], "{body}");
    }
}

#[test]
fn unknown_variable_even_inside_if() {
    // `#if` on a misspelt name renders without error, so only the static check catches it.
    let source = pretext("Hi{{#if frist_name}} {{frist_name}}{{/if}}");
    let problems = check(&source, &Rules::default());
    assert_eq!(codes(&problems), vec![ProblemCode::UnknownVariable]);
    assert!(problems[0].message.contains("frist_name") && problems[0].message.contains("first_name"));
    assert_eq!(problems_of(&pretext("Your ref is {{case_ref}}")), vec![ProblemCode::UnknownVariable]);
}

#[test]
fn render_failed_with_the_sample_data() {
    let mut problems = Vec::new();
    let renders = check::fill_in(
        &pretext("Hi {{first_name}}"),
        &Rules::default(),
        &json!({"advocate_name": "Jo"}),
        &mut problems,
    );
    assert!(codes(&problems).contains(&ProblemCode::RenderFailed), "{problems:?}");
    assert!(renders.iter().all(|(with, _)| with != "the sample data"));
}

#[test]
fn unguarded_variable() {
    let problems = check(&pretext("Hi {{first_name}}, what time suits you?"), &Rules::default());
    assert_eq!(codes(&problems), vec![ProblemCode::UnguardedVariable]);
    assert!(problems[0].message.contains("`first_name` has no value"), "{}", problems[0].message);
}

#[test]
fn pretext_too_long_only_with_a_long_name() {
    let text = "a".repeat(150);
    let source = pretext(&(text + "{{#if first_name}} {{first_name}}{{/if}}"));
    // 150 + " Sam" fits; 150 + 21 does not.
    assert_eq!(render(Channel::Sms, &source.content, &sample_vars()).unwrap().sms.unwrap().segments, 1);
    let problems = check(&source, &Rules::default());
    assert_eq!(codes(&problems), vec![ProblemCode::PretextTooLong]);
    assert!(problems[0].message.contains("20-character names"), "{}", problems[0].message);
    assert_eq!(problems_of(&pretext(&"a".repeat(160))), vec![]);
    assert_eq!(problems_of(&pretext(&"a".repeat(161))), vec![ProblemCode::PretextTooLong]);
    assert_eq!(problems_of(&pretext(&format!("{}€", "a".repeat(159)))), vec![ProblemCode::PretextTooLong]);
}

#[test]
fn a_curly_apostrophe_makes_a_pretext_too_long_and_warns() {
    let source = pretext(&format!("We’ll call you. {}", "a".repeat(80)));
    let review = review(&source, &Rules::default());
    assert_eq!(codes(&review.problems), vec![ProblemCode::PretextTooLong]);
    assert_eq!(codes(&review.warnings), vec![ProblemCode::Ucs2Encoding]);
    assert!(review.warnings[0].message.contains('’'));
    assert_eq!(review.preview.unwrap().sms.unwrap().encoding, Encoding::Ucs2);
}

#[test]
fn information_pack_sms_too_long() {
    let pack = |n: usize| sms("pack_test", Kind::InformationPack, false, &"a".repeat(n));
    assert_eq!(problems_of(&pack(918)), vec![]);
    assert_eq!(problems_of(&pack(919)), vec![ProblemCode::SmsTooLong]);
}

#[test]
fn forbidden_words_in_discreet_templates() {
    let discreet = |body: &str| sms("pretext_test", Kind::PriorityPretext, true, body);
    let problems = check(&discreet("Hi, it's Northgate. Your Victim-Care worker will call."), &Rules::default());
    assert_eq!(codes(&problems), vec![ProblemCode::ForbiddenWord, ProblemCode::ForbiddenWord]);
    assert!(problems[0].message.contains("northgate") && problems[1].message.contains("victim"), "{problems:?}");
    // In a branch the sample data never renders: the source is checked too.
    let hidden = discreet("Hi{{#if first_name}} {{first_name}}{{else}}, this is about your CASE{{/if}}");
    assert_eq!(problems_of(&hidden), vec![ProblemCode::ForbiddenWord]);
    // …but a variable's name is not message text.
    assert_eq!(problems_of(&discreet("Hi, it's{{#if advocate_name}} {{advocate_name}}{{/if}}.")), vec![]);
    // The same words are fine in a template that is not discreet.
    assert_eq!(problems_of(&pretext("Hi, it's Northgate Victim Care.")), vec![]);
    // The list is configuration.
    let rules = Rules { forbidden_words: vec!["tea".into()], ..Rules::default() };
    assert_eq!(codes(&check(&discreet("Fancy a tea?"), &rules)), vec![ProblemCode::ForbiddenWord]);
    assert_eq!(codes(&check(&discreet("Hi, it's Northgate."), &rules)), vec![]);
}

#[test]
fn links_in_discreet_templates_warn() {
    let source = sms("pack_discreet", Kind::InformationPack, true, "See https://example.org/x");
    let review = review(&source, &Rules::default());
    assert_eq!(codes(&review.problems), vec![]);
    assert_eq!(codes(&review.warnings), vec![ProblemCode::LinkInDiscreet]);
}

fn email(subject: Option<&str>, body: &str, html: Option<&str>) -> TemplateSource {
    TemplateSource {
        name: "email_test".into(),
        channel: Channel::Email,
        kind: Kind::InformationPack,
        discreet: false,
        language: "en".into(),
        content: TemplateContent { subject: subject.map(Into::into), body: body.into(), html: html.map(Into::into) },
    }
}

#[test]
fn email_needs_subject_text_and_html() {
    assert_eq!(problems_of(&email(Some("Hi"), "Hi", Some("<p>Hi</p>"))), vec![]);
    assert_eq!(problems_of(&email(None, "Hi", Some("<p>Hi</p>"))), vec![ProblemCode::MissingSubject]);
    assert_eq!(problems_of(&email(Some("  "), "Hi", Some("<p>Hi</p>"))), vec![ProblemCode::MissingSubject]);
    assert_eq!(problems_of(&email(Some("Hi"), "Hi", None)), vec![ProblemCode::MissingHtml]);
    assert_eq!(problems_of(&email(Some("Hi"), "", Some("<p>Hi</p>"))), vec![ProblemCode::EmptyBody]);
}

#[test]
fn letter_and_sms_need_a_body() {
    let mut letter = email(None, " \n ", None);
    letter.channel = Channel::Letter;
    assert_eq!(problems_of(&letter), vec![ProblemCode::EmptyBody]);
    assert_eq!(problems_of(&pretext("")), vec![ProblemCode::EmptyBody]);
}

#[test]
fn inconsistent_settings() {
    let mut on_email = email(Some("Hi"), "Hi", Some("<p>Hi</p>"));
    on_email.kind = Kind::PriorityPretext;
    assert_eq!(problems_of(&on_email), vec![ProblemCode::InconsistentSettings]);

    let not_discreet = sms(PRIORITY_PRETEXT_DISCREET, Kind::PriorityPretext, false, "What time suits you?");
    assert_eq!(problems_of(&not_discreet), vec![ProblemCode::InconsistentSettings]);

    let wrong_kind = sms(INFORMATION_PACK, Kind::PriorityPretext, false, "What time suits you?");
    assert_eq!(problems_of(&wrong_kind), vec![ProblemCode::InconsistentSettings]);
}

#[test]
fn problem_codes_are_stable_strings() {
    assert_eq!(ProblemCode::PretextTooLong.as_str(), "pretext_too_long");
    assert_eq!(ProblemCode::parse("forbidden_word"), Some(ProblemCode::ForbiddenWord));
    assert_eq!(serde_json::to_value(ProblemCode::Ucs2Encoding).unwrap(), json!("ucs2_encoding"));
}

// ---- the Welsh defaults ----

#[test]
fn welsh_pretexts_are_one_gsm7_segment_even_with_long_names() {
    for name in [PRIORITY_PRETEXT, PRIORITY_PRETEXT_DISCREET] {
        let welsh = default_in(name, Channel::Sms, "cy");
        let long = render(Channel::Sms, &welsh.content, &long_sample_vars(20)).unwrap();
        let info = long.sms.unwrap();
        assert_eq!((info.encoding, info.segments), (Encoding::Gsm7, 1), "{name}: {} units", info.units);
        let sample = render(Channel::Sms, &welsh.content, &sample_vars()).unwrap();
        assert!(sample.text.starts_with("Helo Sam, Jo sydd yma"), "{}", sample.text);
        assert!(sample.text.contains("eich ffonio"), "still asks about a call: {}", sample.text);
    }
}

#[test]
fn welsh_discreet_wording_names_no_service_and_no_crime() {
    // The checks run on every default (above); here, that the Welsh list is what catches a slip.
    let mut slip = default_in(PRIORITY_PRETEXT_DISCREET, Channel::Sms, "cy");
    slip.content.body = slip.content.body.replace("am sgwrs fer", "am gymorth gyda'r drosedd");
    let found = check(&slip, &Rules::default());
    assert_eq!(codes(&found), vec![ProblemCode::ForbiddenWord, ProblemCode::ForbiddenWord], "{found:?}");
}
