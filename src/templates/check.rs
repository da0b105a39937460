//! The checks a template version must pass to be submitted for approval, and the warnings a live
//! preview shows.

use handlebars::template::Template;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::render::{long_sample_vars, render, sample_vars};
use super::structure::{Walk, compile_message, nesting_problem};
use super::{Rendered, TemplateSource};
use crate::domain::sms::{Encoding, non_gsm_chars};
use crate::domain::{Channel, Kind, codes, template_names};

codes!(ProblemCode {
    // Blocking problems (returned by `check`).
    SyntaxError => "syntax_error",
    UnsupportedSyntax => "unsupported_syntax",
    UnknownVariable => "unknown_variable",
    RenderFailed => "render_failed",
    UnguardedVariable => "unguarded_variable",
    PretextTooLong => "pretext_too_long",
    SmsTooLong => "sms_too_long",
    ForbiddenWord => "forbidden_word",
    MissingSubject => "missing_subject",
    MissingHtml => "missing_html",
    EmptyBody => "empty_body",
    InconsistentSettings => "inconsistent_settings",
    // Warnings (never block).
    Ucs2Encoding => "ucs2_encoding",
    LinkInDiscreet => "link_in_discreet",
});

/// One finding: a machine code and a message for the template's author.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub code: ProblemCode,
    pub message: String,
}

impl Problem {
    fn new(code: ProblemCode, message: impl Into<String>) -> Problem {
        Problem { code, message: message.into() }
    }
}

/// What a preview shows: blocking problems, warnings, and the template filled in with sample data.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Review {
    pub problems: Vec<Problem>,
    pub warnings: Vec<Problem>,
    pub preview: Option<Rendered>,
}

/// Configuration of the checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    /// Words that must not appear in a discreet template. Case-insensitive, on whole words (text is
    /// split on anything that is not a letter): `word` must equal a word, `stem*` must start one,
    /// and `two words` must match consecutive words.
    pub forbidden_words: Vec<String>,
    /// Length of the longest plausible name, used for every variable in the length check.
    pub longest_name: usize,
    pub pretext_max_segments: usize,
    pub information_pack_max_segments: usize,
    /// A survey asks one question: it need not fit one segment, but stays short.
    pub survey_max_segments: usize,
}

impl Rules {
    /// The most SMS segments a template of this kind may use.
    pub fn max_segments(&self, kind: Kind) -> usize {
        match kind {
            Kind::PriorityPretext => self.pretext_max_segments,
            Kind::InformationPack => self.information_pack_max_segments,
            Kind::SatisfactionSurvey => self.survey_max_segments,
        }
    }
}

/// The default forbidden words for discreet messages: the organisation's name and web address,
/// words for the service and what it does, and crime and justice words.
#[rustfmt::skip]
pub const DEFAULT_FORBIDDEN_WORDS: &[&str] = &[
    // the organisation (its name and domain: "victimcare" is caught by victim*)
    "northgate", "victim*",
    // the service
    "support*", "advocate*", "advocacy", "caseworker*", "case", "cases", "referral*", "referred",
    "charity", "helpline", "counsel*", "confidential*", "safeguard*", "refuge*", "safe", "safety",
    "unsafe",
    // crime and justice
    "crime*", "criminal*", "police", "policing", "officer*", "detective*", "abuse*", "abusive",
    "abusing", "domestic*", "violen*", "assault*", "attack*", "rape*", "rapist*", "sexual*", "sex",
    "hate*", "hatred", "stalk*", "harass*", "coerc*", "offence*", "offense*", "offender*",
    "perpetrator*", "suspect*", "witness*", "court", "courts", "trial", "trials", "prosecut*",
    "investigat*", "justice", "incident*", "traffick*", "slavery", "exploit*", "forced marriage",
    "honour", "murder*", "kidnap*", "arson", "terror*", "fgm", "compensation",
    // The same in Welsh (Cymraeg), with the mutated forms a word takes after another (cymorth,
    // gymorth, nghymorth, chymorth): victim, support, advocate, referral, confidential, safe,
    // counselling, charity; crime, police, abuse, domestic, violence and rape, assault, sexual,
    // hate, stalking, harassment, offender, suspect, witness, court, case, trial, investigation,
    // justice, murder, terror, compensation.
    "dioddef*", "ddioddef*", "nioddef*",
    "cymorth", "gymorth", "nghymorth", "chymorth", "cefnog*", "gefnog*", "nghefnog*", "chefnog*",
    "eiriol*", "heiriol*", "atgyfeiri*", "hatgyfeiri*", "cyfrinach*", "gyfrinach*", "nghyfrinach*",
    "chyfrinach*", "diogel*", "ddiogel*", "niogel*", "cwnsel*", "elusen*", "helusen*",
    "trosedd*", "drosedd*", "nhrosedd*", "throsedd*", "heddlu", "heddwas", "heddweision",
    "cam drin", "camdrin*", "gamdrin*", "nghamdrin*", "chamdrin*", "domestig", "trais", "drais",
    "nhrais", "thrais", "treis*", "dreis*", "nhreis*", "threis*", "ymosod*", "hymosod*", "rhywiol",
    "rywiol", "casineb", "gasineb", "nghasineb", "chasineb", "stelc*", "aflonyddu", "haflonyddu",
    "drwgdyb*", "ddrwgdyb*", "tyst", "dyst", "nhyst", "thyst", "tystion", "dystion", "llys",
    "lys", "llysoedd", "achos", "hachos", "achosion", "treial", "dreial", "nhreial", "threial",
    "ymchwili*", "hymchwili*", "cyfiawnder", "gyfiawnder", "nghyfiawnder", "llofrudd*", "lofrudd*",
    "terfysg*", "derfysg*", "iawndal", "hiawndal",
];

impl Default for Rules {
    fn default() -> Rules {
        Rules {
            forbidden_words: DEFAULT_FORBIDDEN_WORDS.iter().map(|w| w.to_string()).collect(),
            longest_name: 20,
            pretext_max_segments: 1,
            information_pack_max_segments: 6,
            survey_max_segments: 2,
        }
    }
}

/// The blocking problems of `source`: submission is refused unless this is empty.
pub fn check(source: &TemplateSource, rules: &Rules) -> Vec<Problem> {
    review(source, rules).problems
}

/// Problems, warnings and a sample rendering of `source`, for submission and live previews.
pub fn review(source: &TemplateSource, rules: &Rules) -> Review {
    let mut review = Review::default();
    let problems = &mut review.problems;
    check_settings(source, problems);
    check_parts_present(source, problems);

    // Read each part: what it uses, and its literal text in every branch.
    let known = known_variables();
    let mut literal = String::new();
    let mut readable = true;
    for (part, text) in parts(source) {
        if let Some(message) = nesting_problem(part, text) {
            problems.push(Problem::new(ProblemCode::UnsupportedSyntax, message));
            readable = false;
            continue;
        }
        let template = match Template::compile(text) {
            Ok(template) => template,
            Err(e) => {
                problems.push(Problem::new(
                    ProblemCode::SyntaxError,
                    format!("the {part} is not a valid template: {}", compile_message(&e)),
                ));
                readable = false;
                continue;
            }
        };
        let mut walk = Walk::default();
        walk.template(&template);
        for what in walk.unsupported {
            let allowed = "{{name}}, {{#if name}}…{{else}}…{{/if}} and {{#unless name}}…{{/unless}}";
            let message = format!("the {part} uses {what}: templates may only use {allowed}");
            problems.push(Problem::new(ProblemCode::UnsupportedSyntax, message));
            readable = false;
        }
        for name in walk.names {
            if !known.contains(&name) {
                problems.push(Problem::new(
                    ProblemCode::UnknownVariable,
                    format!("the {part} uses `{name}`, which is not a known value (known: {})", known.join(", ")),
                ));
                readable = false;
            }
        }
        literal += &walk.literal;
        literal.push('\n');
    }

    let renders = if readable { fill_in(source, rules, &sample_vars(), problems) } else { Vec::new() };
    review.preview = renders.iter().find(|(with, _)| with == SAMPLE).map(|(_, r)| r.clone());
    check_length(source, rules, &renders, problems);

    if source.discreet {
        let mut texts = vec![literal.clone()];
        for (_, rendered) in &renders {
            texts.extend(
                [rendered.subject.clone(), Some(rendered.text.clone()), rendered.html.clone()].into_iter().flatten(),
            );
        }
        for (entry, found) in forbidden_words(&texts, &rules.forbidden_words) {
            problems.push(Problem::new(
                ProblemCode::ForbiddenWord,
                format!("a discreet message must not say “{found}” (forbidden: `{entry}`)"),
            ));
        }
        if literal.contains("://") || literal.to_lowercase().contains("www.") {
            review.warnings.push(Problem::new(
                ProblemCode::LinkInDiscreet,
                "this discreet message has a web address: make sure it does not name the service",
            ));
        }
    }
    if let Some(Rendered { sms: Some(info), text, .. }) = &review.preview
        && info.encoding == Encoding::Ucs2
    {
        let chars: String = non_gsm_chars(text).iter().map(|c| format!("“{c}” ")).collect();
        review.warnings.push(Problem::new(
            ProblemCode::Ucs2Encoding,
            format!("{chars}makes this SMS use UCS-2: a segment then holds 70 characters instead of 160"),
        ));
    }
    review
}

const SAMPLE: &str = "the sample data";

/// Renders with `sample` (the preview), with no values (all are optional), and with long names.
pub(super) fn fill_in(
    source: &TemplateSource,
    rules: &Rules,
    sample: &Value,
    problems: &mut Vec<Problem>,
) -> Vec<(String, Rendered)> {
    let mut renders = Vec::new();
    // The static checks make this one fail only if the sample data lacks a known variable; it is
    // kept so that a failure is never silent.
    match render(source.channel, &source.content, sample) {
        Ok(rendered) => renders.push((SAMPLE.to_string(), rendered)),
        Err(e) => problems.push(Problem::new(ProblemCode::RenderFailed, format!("with the sample data, {e}"))),
    }
    match render(source.channel, &source.content, &Value::Object(Default::default())) {
        Ok(rendered) => renders.push(("no personal details".to_string(), rendered)),
        Err(e) => problems.push(Problem::new(ProblemCode::UnguardedVariable, format!("without personal details, {e}"))),
    }
    if let Ok(rendered) = render(source.channel, &source.content, &long_sample_vars(rules.longest_name)) {
        renders.push((format!("{}-character names", rules.longest_name), rendered));
    }
    renders
}

/// The variables a template may use: the keys of the sample data.
fn known_variables() -> Vec<String> {
    match sample_vars() {
        Value::Object(map) => map.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

fn parts(source: &TemplateSource) -> Vec<(&'static str, &str)> {
    let content = &source.content;
    let body = match source.channel {
        Channel::Sms => "SMS text",
        Channel::Email => "plain-text part",
        Channel::Letter => "letter body",
    };
    let mut parts = vec![(body, content.body.as_str())];
    parts.extend(content.subject.as_deref().map(|s| ("subject", s)));
    parts.extend(content.html.as_deref().map(|h| ("HTML part", h)));
    parts
}

fn check_settings(source: &TemplateSource, problems: &mut Vec<Problem>) {
    let mut problem = |message: String| problems.push(Problem::new(ProblemCode::InconsistentSettings, message));
    let name = source.name.as_str();
    if source.kind == Kind::PriorityPretext && source.channel != Channel::Sms {
        problem("a pre-text is sent by SMS only: set `channel: sms`".into());
    }
    if name.ends_with("_discreet") && !source.discreet {
        problem(format!(
            "`{name}` is for safety-sensitive cases: set `discreet: yes` so it is checked for forbidden words"
        ));
    }
    let expected = match name {
        template_names::PRIORITY_PRETEXT | template_names::PRIORITY_PRETEXT_DISCREET => Some(Kind::PriorityPretext),
        template_names::INFORMATION_PACK | template_names::INFORMATION_PACK_DISCREET => Some(Kind::InformationPack),
        template_names::SATISFACTION_SURVEY | template_names::SATISFACTION_SURVEY_DISCREET => {
            Some(Kind::SatisfactionSurvey)
        }
        _ => None,
    };
    if let Some(kind) = expected.filter(|&k| k != source.kind) {
        problem(format!("`{name}` must have `kind: {}`", kind.as_str()));
    }
}

fn check_parts_present(source: &TemplateSource, problems: &mut Vec<Problem>) {
    let blank = |s: &Option<String>| s.as_deref().is_none_or(|s| s.trim().is_empty());
    if source.content.body.trim().is_empty() {
        let message = match source.channel {
            Channel::Sms => "the SMS text is empty",
            Channel::Email => "the email has no plain-text part",
            Channel::Letter => "the letter has no body",
        };
        problems.push(Problem::new(ProblemCode::EmptyBody, message));
    }
    if source.channel == Channel::Email {
        if blank(&source.content.subject) {
            problems.push(Problem::new(ProblemCode::MissingSubject, "an email needs a subject (`subject:` setting)"));
        }
        if blank(&source.content.html) {
            problems.push(Problem::new(
                ProblemCode::MissingHtml,
                "an email needs an HTML part after a `--- html ---` line",
            ));
        }
    }
}

fn check_length(source: &TemplateSource, rules: &Rules, renders: &[(String, Rendered)], problems: &mut Vec<Problem>) {
    let limit = rules.max_segments(source.kind);
    let (code, what) = match source.kind {
        Kind::PriorityPretext => (ProblemCode::PretextTooLong, "a pre-text"),
        Kind::InformationPack => (ProblemCode::SmsTooLong, "an information-pack SMS"),
        Kind::SatisfactionSurvey => (ProblemCode::SmsTooLong, "a survey SMS"),
    };
    // The worst case decides; one problem is enough.
    let worst =
        renders.iter().filter_map(|(with, r)| r.sms.map(|info| (with, info))).max_by_key(|(_, info)| info.segments);
    if let Some((with, info)) = worst.filter(|(_, info)| info.segments > limit) {
        let encoding = match info.encoding {
            Encoding::Gsm7 => "GSM-7 characters",
            Encoding::Ucs2 => "UCS-2 characters",
        };
        problems.push(Problem::new(
            code,
            format!(
                "with {with} this SMS is {} {encoding} in {} segments; {what} may use at most {limit} (a segment holds 160 GSM-7 or 70 UCS-2 characters, 153 or 67 each when there are several)",
                info.units, info.segments
            ),
        ));
    }
}

fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphabetic()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect()
}

/// Each forbidden entry found in `texts`, with the words that matched it (first occurrence).
fn forbidden_words(texts: &[String], entries: &[String]) -> Vec<(String, String)> {
    let texts: Vec<Vec<String>> = texts.iter().map(|t| words(t)).collect();
    let mut found = Vec::new();
    for entry in entries {
        let pattern: Vec<String> = entry
            .split(|c: char| !c.is_alphabetic() && c != '*')
            .filter(|w| !w.is_empty())
            .map(str::to_lowercase)
            .collect();
        if pattern.is_empty() {
            continue;
        }
        let hit = texts.iter().find_map(|words| {
            words.windows(pattern.len()).find(|window| window.iter().zip(&pattern).all(|(w, p)| word_matches(w, p)))
        });
        if let Some(window) = hit {
            found.push((entry.clone(), window.join(" ")));
        }
    }
    found
}

fn word_matches(word: &str, pattern: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(stem) => word.starts_with(stem),
        None => word == pattern,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: &[&str]) -> Vec<String> {
        entries.iter().map(|e| e.to_string()).collect()
    }

    fn find(text: &str, entries: &[&str]) -> Vec<(String, String)> {
        forbidden_words(&[text.to_string()], &list(entries))
    }

    #[test]
    fn forbidden_words_match_whole_words_any_case() {
        assert_eq!(find("Your CASE is open", &["case"]), vec![("case".into(), "case".into())]);
        assert!(find("in cases like this", &["case"]).is_empty());
        assert!(find("showcase; bookcase", &["case"]).is_empty());
        assert!(find("Essex police-station", &["ex"]).is_empty());
        assert_eq!(find("Ex-partner", &["ex"]).len(), 1);
    }

    #[test]
    fn stems_and_phrases() {
        assert_eq!(find("Victims' Code", &["victim*"]), vec![("victim*".into(), "victims".into())]);
        assert_eq!(find("https://victimcare.example.org", &["victim*"]).len(), 1);
        assert_eq!(
            find("a forced\nMarriage", &["forced marriage"]),
            vec![("forced marriage".into(), "forced marriage".into())]
        );
        assert!(find("forced to wait for marriage", &["forced marriage"]).is_empty());
    }

    #[test]
    fn default_list_catches_the_brief_words() {
        let rules = Rules::default();
        for word in [
            "Northgate",
            "victim",
            "support",
            "crime",
            "police",
            "abuse",
            "domestic",
            "violence",
            "assault",
            "rape",
            "sexual",
            "hate",
            "stalking",
            "advocate",
            "referral",
            "case",
            "offence",
            "witness",
            "court",
        ] {
            assert!(!forbidden_words(&[word.to_string()], &rules.forbidden_words).is_empty(), "{word}");
        }
        for phrase in [
            "heddlu",
            "trosedd",
            "dioddefwr",
            "cymorth i ddioddefwyr",
            "Llys y Goron",
            "yn ddiogel",
            "cam-drin domestig",
            "eiriolwr",
        ] {
            assert!(!forbidden_words(&[phrase.to_string()], &rules.forbidden_words).is_empty(), "{phrase}");
        }
        for word in [
            "Hi Sam",
            "what time suits you",
            "reply to this text",
            "call you",
            "courtesy",
            "showcase",
            "Helo Sam, Jo sydd yma",
            "Pryd sy'n gyfleus i chi?",
            "Atebwch y neges hon",
            "sgwrs fer",
        ] {
            assert!(forbidden_words(&[word.to_string()], &rules.forbidden_words).is_empty(), "{word}");
        }
    }

    #[test]
    fn walk_collects_names_in_all_branches_and_literal_text() {
        let template = Template::compile(
            "Hi{{#if first_name}} {{first_name}}{{else}} there{{#unless advocate_name}}!{{/unless}}{{/if}}{{!-- victim --}}",
        )
        .unwrap();
        let mut walk = Walk::default();
        walk.template(&template);
        assert_eq!(walk.names, vec!["first_name", "advocate_name"]);
        assert!(walk.unsupported.is_empty());
        assert!(walk.literal.contains("there"));
        assert!(!walk.literal.contains("victim"), "comments are not message text");
    }

    #[test]
    fn walk_refuses_everything_else() {
        for source in [
            "{{{first_name}}}",
            "{{log first_name}}",
            "{{#each first_name}}x{{/each}}",
            "{{#if (eq first_name \"x\")}}x{{/if}}",
            "{{> partial}}",
            "{{first_name.length}}",
            "{{../first_name}}",
            "{{@index}}",
            "{{#if first_name}}{{else if advocate_name}}x{{/if}}",
        ] {
            let mut walk = Walk::default();
            walk.template(&Template::compile(source).unwrap());
            // `else if` is allowed: it is an `#if` inside the else branch.
            if source.contains("else if") {
                assert!(walk.unsupported.is_empty(), "{source}: {:?}", walk.unsupported);
                assert_eq!(walk.names, vec!["first_name", "advocate_name"]);
            } else {
                assert!(!walk.unsupported.is_empty(), "{source}");
            }
        }
    }
}
