//! Strict rendering: a missing value is an error, never an empty gap. Text parts (SMS, email text,
//! letter, subject) are not HTML-escaped; the email HTML part is.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use handlebars::{Handlebars, RenderError, RenderErrorReason};
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::structure::compile_message;
use super::{TemplateContent, TemplateError};
use crate::domain::Channel;
use crate::domain::sms::{SmsInfo, analyse, downgrade_to_gsm};

/// A template filled in for one message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rendered {
    /// Email subject, on one line.
    pub subject: Option<String>,
    /// SMS text, email plain-text part, or letter body.
    pub text: String,
    /// Email HTML part.
    pub html: Option<String>,
    /// Encoding and segments, for the SMS channel.
    pub sms: Option<SmsInfo>,
}

static TEXT: LazyLock<Handlebars<'static>> = LazyLock::new(|| registry(handlebars::no_escape));
static HTML: LazyLock<Handlebars<'static>> = LazyLock::new(|| registry(handlebars::html_escape));

fn registry(escape: fn(&str) -> String) -> Handlebars<'static> {
    let mut registry = Handlebars::new();
    registry.set_strict_mode(true);
    registry.register_escape_fn(escape);
    // Our language is `if` and `unless`; `log` in particular would write values to the logs.
    for helper in
        ["each", "with", "lookup", "raw", "log", "eq", "ne", "gt", "gte", "lt", "lte", "and", "or", "not", "len"]
    {
        registry.unregister_helper(helper);
    }
    registry
}

/// Fills in `content` for `channel` with `data`, a JSON object of text values.
///
/// Keys whose value is `null` or blank are dropped first, so `{{#if key}}` is false for them and
/// an unguarded `{{key}}` is an error. Values are put on one line; for SMS they are also brought
/// into GSM-7 where a close equivalent exists (Zoë → Zoe), so a name cannot push a GSM-7 message
/// into UCS-2 and triple its segments.
pub fn render(channel: Channel, content: &TemplateContent, data: &Value) -> Result<Rendered, TemplateError> {
    let data = clean_data(channel, data)?;
    let body_part = match channel {
        Channel::Sms => "SMS text",
        Channel::Email => "plain-text part",
        Channel::Letter => "letter body",
    };
    let text = fill(&TEXT, body_part, &content.body, &data)?.trim().to_string();
    let subject = match &content.subject {
        Some(subject) => Some(one_line(&fill(&TEXT, "subject", subject, &data)?)),
        None => None,
    };
    let html = match &content.html {
        Some(html) => Some(fill(&HTML, "HTML part", html, &data)?.trim().to_string()),
        None => None,
    };
    let sms = (channel == Channel::Sms).then(|| analyse(&text));
    Ok(Rendered { subject, text, html, sms })
}

/// Render data for a message: the victim's first name and the request's personalisation (the
/// victim's own `first_name` wins over a personalisation key of that name).
pub fn render_vars(first_name: Option<&str>, personalisation: &BTreeMap<String, String>) -> Value {
    let mut data: Map<String, Value> =
        personalisation.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
    if let Some(name) = first_name {
        data.insert("first_name".into(), Value::String(name.into()));
    }
    Value::Object(data)
}

/// Sample data for previews and submission checks. Its keys are the variables a template may use;
/// add a key here before a template can use a new personalisation value.
pub fn sample_vars() -> Value {
    json!({"first_name": "Sam", "advocate_name": "Jo"})
}

/// The sample variables, each with a plausible name of `len` characters (GSM-7), to prove that
/// personalisation cannot push a message over its segment limit.
pub fn long_sample_vars(len: usize) -> Value {
    const LONG_NAME: &str = "Alexandra-Christabel Montgomery-Fairweather Bartholomew-Smythe";
    let name: String = LONG_NAME.chars().cycle().take(len).collect();
    let Value::Object(keys) = sample_vars() else { unreachable!("sample_vars is an object") };
    Value::Object(keys.into_iter().map(|(k, _)| (k, Value::String(name.clone()))).collect())
}

fn clean_data(channel: Channel, data: &Value) -> Result<Value, TemplateError> {
    let Value::Object(map) = data else {
        return Err(TemplateError::Data("must be a JSON object".into()));
    };
    let mut clean = Map::new();
    for (key, value) in map {
        let text = match value {
            Value::Null => continue,
            Value::String(s) => one_line(s),
            Value::Number(n) => n.to_string(),
            _ => return Err(TemplateError::Data(format!("the value of `{key}` must be text"))),
        };
        if text.is_empty() {
            continue;
        }
        let text = if channel == Channel::Sms { downgrade_to_gsm(&text) } else { text };
        clean.insert(key.clone(), Value::String(text));
    }
    Ok(Value::Object(clean))
}

/// Whitespace runs and control characters (line breaks) become single spaces.
fn one_line(text: &str) -> String {
    text.split(|c: char| c.is_whitespace() || c.is_control()).filter(|w| !w.is_empty()).collect::<Vec<_>>().join(" ")
}

fn fill(
    registry: &Handlebars<'static>,
    part: &'static str,
    template: &str,
    data: &Value,
) -> Result<String, TemplateError> {
    // Staff-written wording is checked before handlebars sees it: partials that include each
    // other, or deep nesting, would otherwise overflow the stack and abort the whole process.
    super::structure::structure_problem(part, template)?;
    registry.render_template(template, data).map_err(|e| render_error(part, &e))
}

/// A message that names the problem and where, without any value from the data.
fn render_error(part: &'static str, error: &RenderError) -> TemplateError {
    let at = error.line_no.map(|line| format!(" (line {line} of the {part})")).unwrap_or_default();
    match error.reason() {
        RenderErrorReason::TemplateError(e) => TemplateError::Compile { part, message: compile_message(e) },
        RenderErrorReason::MissingVariable(Some(name)) => TemplateError::Render {
            part,
            message: format!("`{name}` has no value{at}: use it inside {{{{#if {name}}}}}…{{{{/if}}}}"),
        },
        RenderErrorReason::MissingVariable(None) => {
            TemplateError::Render { part, message: format!("a value is missing{at}") }
        }
        RenderErrorReason::HelperNotFound(name) => {
            TemplateError::Render { part, message: format!("`{name}` is not available in templates{at}") }
        }
        // Other reasons come from the template's own structure (no data values in them).
        reason => TemplateError::Render { part, message: format!("{reason}{at}") },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sms(body: &str) -> TemplateContent {
        TemplateContent { subject: None, body: body.into(), html: None }
    }

    fn email(subject: &str, body: &str, html: &str) -> TemplateContent {
        TemplateContent { subject: Some(subject.into()), body: body.into(), html: Some(html.into()) }
    }

    /// The experiment the module's rule rests on: how strict mode treats missing, null and empty
    /// values, with the plain registry (no cleaning of the data).
    #[test]
    fn strict_mode_findings() {
        let data = json!({"present": "x", "null": null, "empty": ""});
        let run = |t: &str| TEXT.render_template(t, &data).map_err(|e| e.to_string());
        // `#if` / `#unless` on a missing key: false, no error.
        assert_eq!(run("{{#if first_name}}yes{{else}}no{{/if}}"), Ok("no".into()));
        assert_eq!(run("{{#unless first_name}}none{{/unless}}"), Ok("none".into()));
        // A bare missing variable is an error, also inside a branch that is taken…
        assert!(run("{{first_name}}").is_err());
        assert!(run("{{#if present}}{{first_name}}{{/if}}").is_err());
        // …but not in one that is not taken (so the check must render without values too).
        assert_eq!(run("{{#if first_name}}{{first_name}}{{/if}}"), Ok("".into()));
        // A key present as null or "" is *not* missing: it prints nothing. Hence clean_data.
        assert_eq!(run("[{{null}}][{{empty}}]"), Ok("[][]".into()));
        // Helpers outside our language are gone.
        assert!(run("{{log present}}").is_err());
    }

    #[test]
    fn missing_variable_is_an_error_naming_it() {
        let err = render(Channel::Sms, &sms("Hi {{first_name}}"), &json!({})).unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, TemplateError::Render { .. }));
        assert!(message.contains("`first_name` has no value"), "{message}");
    }

    #[test]
    fn null_and_blank_values_count_as_missing() {
        let template = sms("Hi{{#if first_name}} {{first_name}}{{/if}}!");
        for data in [json!({}), json!({"first_name": null}), json!({"first_name": "  "})] {
            assert_eq!(render(Channel::Sms, &template, &data).unwrap().text, "Hi!");
            assert!(render(Channel::Sms, &sms("Hi {{first_name}}"), &data).is_err());
        }
        assert_eq!(render(Channel::Sms, &template, &json!({"first_name": " Sam\n"})).unwrap().text, "Hi Sam!");
    }

    #[test]
    fn data_must_be_an_object_of_text() {
        assert!(matches!(render(Channel::Sms, &sms("x"), &json!([])), Err(TemplateError::Data(_))));
        assert!(matches!(render(Channel::Sms, &sms("x"), &json!({"a": {"b": 1}})), Err(TemplateError::Data(_))));
        assert_eq!(render(Channel::Sms, &sms("{{n}}"), &json!({"n": 3})).unwrap().text, "3");
    }

    #[test]
    fn text_parts_are_not_escaped_and_html_is() {
        let data = json!({"first_name": "Sam & <Jo> \"O'Neil\""});
        let content = email("Hello {{first_name}}", "Dear {{first_name}},", "<p>Dear {{first_name}},</p>");
        let out = render(Channel::Email, &content, &data).unwrap();
        assert_eq!(out.subject.as_deref(), Some("Hello Sam & <Jo> \"O'Neil\""));
        assert_eq!(out.text, "Dear Sam & <Jo> \"O'Neil\",");
        let html = out.html.unwrap();
        assert!(html.starts_with("<p>Dear Sam &amp; &lt;Jo&gt; &quot;O&#x27;Neil&quot;,</p>"), "{html}");
        assert_eq!(out.sms, None);
        let sms_out = render(Channel::Sms, &sms("Hi {{first_name}}"), &data).unwrap();
        assert_eq!(sms_out.text, "Hi Sam & <Jo> \"O'Neil\"");
        let letter = render(Channel::Letter, &sms("Dear {{first_name}}"), &data).unwrap();
        assert_eq!(letter.text, "Dear Sam & <Jo> \"O'Neil\"");
    }

    #[test]
    fn sms_gets_segment_info_and_gsm_friendly_names() {
        let out = render(Channel::Sms, &sms("Hi {{first_name}}"), &json!({"first_name": "Zoë"})).unwrap();
        assert_eq!(out.text, "Hi Zoe");
        assert_eq!(out.sms, Some(analyse("Hi Zoe")));
        // Other channels keep the name as written.
        let out = render(Channel::Letter, &sms("Dear {{first_name}}"), &json!({"first_name": "Zoë"})).unwrap();
        assert_eq!(out.text, "Dear Zoë");
    }

    #[test]
    fn values_go_on_one_line() {
        let content = email("About {{x}}", "{{x}}", "{{x}}");
        let out = render(Channel::Email, &content, &json!({"x": "a\r\nBcc: b\tc"})).unwrap();
        assert_eq!(out.subject.as_deref(), Some("About a Bcc: b c"));
        assert_eq!(out.text, "a Bcc: b c");
    }

    /// What could abort the process is refused before handlebars renders it, on every path
    /// (previews, letters, the worker), whether or not the submission checks ran.
    #[test]
    fn recursion_and_deep_nesting_are_refused_not_rendered() {
        let recursive = r#"{{#*inline "a"}}{{> b}}{{/inline}}{{#*inline "b"}}{{> a}}{{/inline}}{{> a}}"#;
        let deep = format!("{}x{}", "{{#if first_name}}".repeat(2000), "{{/if}}".repeat(2000));
        let chained = format!("{{{{#if a}}}}{}x{{{{/if}}}}", "{{else if first_name}}".repeat(2000));
        for (what, body) in [("partials", recursive.to_string()), ("nesting", deep), ("else chain", chained)] {
            for channel in [Channel::Sms, Channel::Letter] {
                let err = render(channel, &sms(&body), &json!({"first_name": "Sam"})).unwrap_err();
                assert!(matches!(err, TemplateError::Render { .. }), "{what}: {err}");
            }
        }
    }

    #[test]
    fn broken_template_is_a_compile_error() {
        let err = render(Channel::Sms, &sms("{{#if first_name}}unclosed"), &json!({})).unwrap_err();
        assert!(matches!(err, TemplateError::Compile { .. }), "{err}");
    }

    #[test]
    fn render_vars_prefers_the_victims_first_name() {
        let personalisation = BTreeMap::from([
            ("advocate_name".to_string(), "Jo".to_string()),
            ("first_name".to_string(), "Other".to_string()),
        ]);
        assert_eq!(render_vars(Some("Sam"), &personalisation), json!({"advocate_name": "Jo", "first_name": "Sam"}));
        assert_eq!(render_vars(None, &BTreeMap::new()), json!({}));
    }

    #[test]
    fn long_sample_names_have_the_asked_length() {
        let vars = long_sample_vars(20);
        assert_eq!(vars["first_name"].as_str().unwrap().chars().count(), 20);
        assert_eq!(vars["advocate_name"].as_str().unwrap(), "Alexandra-Christabel");
    }
}
