//! Template pages: the list, a template's history, and editing a draft with a live preview. A
//! version's page and the four-eyes actions are `versions`; previews and letters, `preview`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::view::{self, when, when_opt};
use super::{PageResult, Staff, StaffError, done};
use crate::domain::{Channel, language};
use crate::service::AppState;
use crate::service::templates::{self as workflow, WorkflowError};
use crate::store::TemplateVersion;
use crate::templates::{Rules, TemplateContent, TemplateSource, review, sample_vars};

pub(super) fn channel_label(channel: &str) -> &'static str {
    match channel {
        "sms" => "SMS",
        "email" => "Email",
        "letter" => "Letter",
        _ => "Other",
    }
}

pub(super) fn state_label(state: &str) -> &'static str {
    match state {
        "draft" => "Draft",
        "submitted" => "Waiting for approval",
        "approved" => "Approved (in use)",
        "rejected" => "Rejected",
        "retired" => "Retired",
        _ => "Unknown",
    }
}

pub(super) fn version_json(v: &TemplateVersion) -> Value {
    json!({
        "id": v.id,
        "name": v.name,
        "channel": v.channel,
        "channel_label": channel_label(&v.channel),
        "language": v.language,
        "language_name": language::name(&v.language),
        "version": v.version,
        "state": v.state,
        "state_label": state_label(&v.state),
        "author": v.author,
        "created": when(v.created_at),
        "submitted": when_opt(v.submitted_at),
        "decided_by": v.decided_by,
        "decided": when_opt(v.decided_at),
        "comment": v.comment,
        "url": format!("/staff/versions/{}", v.id),
    })
}

/// A template's pages for one language: `?language=cy` (English when absent).
#[derive(Debug, Deserialize)]
pub struct LanguageQuery {
    language: Option<String>,
}

impl LanguageQuery {
    fn code(&self) -> Result<String, StaffError> {
        read_language(self.language.as_deref())
    }
}

/// A language code from a form or query: `en` when absent, refused unless a plain code.
pub(super) fn read_language(given: Option<&str>) -> Result<String, StaffError> {
    match given.map(str::trim).filter(|l| !l.is_empty()) {
        None => Ok(language::ENGLISH.to_string()),
        Some(l) => language::primary(l)
            .filter(|code| code == l)
            .ok_or_else(|| StaffError::BadRequest("the language must be a code such as en or cy".into())),
    }
}

/// The languages a draft may be written in, with `selected` marked (and kept when not offered).
pub(super) fn language_options(selected: &str) -> Vec<Value> {
    let mut options: Vec<Value> = language::OFFERED
        .iter()
        .map(|(code, name)| json!({ "code": code, "name": name, "selected": *code == selected }))
        .collect();
    if !language::OFFERED.iter().any(|(code, _)| *code == selected) {
        options.push(json!({ "code": selected, "name": selected, "selected": true }));
    }
    options
}

pub(super) fn template_url(name: &str, channel: &str, language: &str) -> String {
    format!("/staff/templates/{name}/{channel}?language={language}")
}

/// Every template: its channel and language, the version in use and those waiting.
pub async fn list(State(state): State<Arc<AppState>>, staff: Staff) -> PageResult {
    // English first within a template, then the other languages by code.
    let mut groups: BTreeMap<(String, String, bool, String), Vec<TemplateVersion>> = BTreeMap::new();
    for v in state.store.template_versions().await? {
        let key = (v.name.clone(), v.channel.clone(), v.language != language::ENGLISH, v.language.clone());
        groups.entry(key).or_default().push(v);
    }
    let templates: Vec<Value> = groups
        .into_iter()
        .map(|((name, channel, _, lang), versions)| {
            let latest = versions.last().expect("a group has a version");
            let approved = versions.iter().find(|v| v.state == "approved");
            let pending: Vec<Value> =
                versions.iter().filter(|v| v.state == "draft" || v.state == "submitted").map(version_json).collect();
            json!({
                "name": name,
                "channel_label": channel_label(&channel),
                "language": lang,
                "language_name": language::name(&lang),
                "english": lang == language::ENGLISH,
                "kind": latest.kind,
                "discreet": latest.discreet.0,
                "approved": approved.map(version_json),
                "pending": pending,
                "url": template_url(&name, &channel, &lang),
            })
        })
        .collect();
    view::page(
        "templates",
        &staff,
        json!({ "title": "Templates", "nav": { "templates": true }, "templates": templates }),
    )
}

/// Every version of a template on a channel, in every language (the template must exist).
pub(super) async fn versions_of(
    state: &AppState,
    name: &str,
    channel: &str,
) -> Result<Vec<TemplateVersion>, StaffError> {
    let versions: Vec<TemplateVersion> =
        state.store.template_versions().await?.into_iter().filter(|v| v.name == name && v.channel == channel).collect();
    if versions.is_empty() { Err(StaffError::NotFound("template")) } else { Ok(versions) }
}

pub(super) fn in_language<'a>(versions: &'a [TemplateVersion], lang: &str) -> Vec<&'a TemplateVersion> {
    versions.iter().filter(|v| v.language == lang).collect()
}

/// A template's versions in one language, newest first, with who wrote and who decided each, and
/// links to its other languages.
pub async fn history(
    State(state): State<Arc<AppState>>,
    staff: Staff,
    Path((name, channel)): Path<(String, String)>,
    Query(q): Query<LanguageQuery>,
) -> PageResult {
    let lang = q.code()?;
    let all = versions_of(&state, &name, &channel).await?;
    let versions = in_language(&all, &lang);
    let mut codes: Vec<&str> = language::OFFERED.iter().map(|(c, _)| *c).collect();
    for v in &all {
        if !codes.contains(&v.language.as_str()) {
            codes.push(&v.language);
        }
    }
    let languages: Vec<Value> = codes
        .iter()
        .map(|c| json!({ "name": language::name(c), "url": template_url(&name, &channel, c), "current": *c == lang }))
        .collect();
    let rows: Vec<Value> = versions
        .iter()
        .rev()
        .map(|v| {
            let mut row = version_json(v);
            if let Some(before) = versions.iter().rev().find(|o| o.version < v.version) {
                row["compare_url"] = format!("/staff/versions/{}?compare={}#changes", v.id, before.version).into();
            }
            row
        })
        .collect();
    let data = json!({
        "title": format!("{name} ({}, {})", channel_label(&channel), language::name(&lang)),
        "nav": { "templates": true },
        "name": name,
        "channel_label": channel_label(&channel),
        "language_name": language::name(&lang),
        "languages": languages,
        "draft_url": format!("/staff/templates/{name}/{channel}/draft?language={lang}"),
        "versions": rows,
    });
    view::page("history", &staff, data)
}

/// The template a stored version belongs to, with new wording.
pub(super) fn source_with(v: &TemplateVersion, content: TemplateContent) -> Result<TemplateSource, StaffError> {
    let mut source = workflow::source_of(v)?;
    source.content = content;
    Ok(source)
}

/// What the preview shows for `source`: problems, warnings and the sample rendering.
pub(super) fn preview_json(source: &TemplateSource, letter_url: Option<String>) -> Value {
    let rules = Rules::default();
    let found = review(source, &rules);
    let limit = rules.max_segments(source.kind);
    let rendered = found.preview.as_ref().map(|r| {
        json!({
            "subject": r.subject,
            "text": r.text,
            "html": r.html,
            "characters": r.text.chars().count(),
            "sms": r.sms.map(|s| json!({
                "encoding": match s.encoding {
                    crate::domain::sms::Encoding::Gsm7 => "GSM-7",
                    crate::domain::sms::Encoding::Ucs2 => "UCS-2 (unicode)",
                },
                "units": s.units,
                "segments": s.segments,
                "limit": limit,
                "over": s.segments > limit,
            })),
        })
    });
    let sample: Vec<Value> = match sample_vars() {
        Value::Object(map) => map.into_iter().map(|(k, v)| json!({ "name": k, "value": v })).collect(),
        _ => Vec::new(),
    };
    json!({
        "is_sms": source.channel == Channel::Sms,
        "is_email": source.channel == Channel::Email,
        "is_letter": source.channel == Channel::Letter,
        "problems": found.problems.iter().map(|p| p.message.clone()).collect::<Vec<_>>(),
        "warnings": found.warnings.iter().map(|p| p.message.clone()).collect::<Vec<_>>(),
        "rendered": rendered,
        "sample": sample,
        "letter_url": letter_url,
    })
}

/// The edit form for one language: the member of staff's own open draft in it, or a new draft
/// starting from the latest wording in that language (or, for a first translation, in English).
pub async fn edit_draft(
    State(state): State<Arc<AppState>>,
    staff: Staff,
    Path((name, channel)): Path<(String, String)>,
    Query(q): Query<LanguageQuery>,
) -> PageResult {
    if !staff.can_write() {
        return Err(StaffError::Forbidden("only authors and approvers write templates".into()));
    }
    let lang = q.code()?;
    let all = versions_of(&state, &name, &channel).await?;
    let versions = in_language(&all, &lang);
    let own_draft = versions.iter().rev().find(|v| v.state == "draft" && v.author == staff.username).copied();
    let english = || all.iter().rev().find(|v| v.language == language::ENGLISH);
    let base = own_draft
        .or_else(|| versions.last().copied())
        .or_else(english)
        .unwrap_or_else(|| all.last().expect("not empty"));
    let source = workflow::source_of(base)?;
    let data = json!({
        "title": format!("Edit {name} ({}, {})", channel_label(&channel), language::name(&lang)),
        "language_name": language::name(&lang),
        "languages": language_options(&lang),
        "based_on_language": (base.language != lang).then(|| language::name(&base.language)),
        "nav": { "templates": true },
        "name": name,
        "channel": channel,
        "channel_label": channel_label(&channel),
        "kind": source.kind.as_str(),
        "discreet": source.discreet,
        "is_email": source.channel == Channel::Email,
        "editing": own_draft.map(version_json),
        "based_on": base.version,
        "subject": source.content.subject,
        "body": source.content.body,
        "html": source.content.html,
        "action_url": format!("/staff/templates/{name}/{channel}/draft"),
        "history_url": template_url(&name, &channel, &lang),
        "preview": preview_json(&source, None),
    });
    view::page("draft", &staff, data)
}

#[derive(Debug, Deserialize)]
pub struct DraftForm {
    subject: Option<String>,
    #[serde(default)]
    body: String,
    html: Option<String>,
    language: Option<String>,
    #[serde(default)]
    action: String,
}

/// Browsers send a textarea's line breaks as CRLF; templates keep LF.
pub(super) fn text(s: &str) -> String {
    s.replace("\r\n", "\n").trim().to_string()
}

pub(super) fn content_of(channel: Channel, subject: Option<&str>, body: &str, html: Option<&str>) -> TemplateContent {
    let email = channel == Channel::Email;
    TemplateContent {
        subject: subject.filter(|_| email).map(text),
        body: text(body),
        html: html.filter(|_| email).map(text),
    }
}

/// Save the form as the member of staff's draft (updating their open one), and submit it for
/// approval when asked.
pub async fn save_draft(
    State(state): State<Arc<AppState>>,
    staff: Staff,
    Path((name, channel)): Path<(String, String)>,
    Form(form): Form<DraftForm>,
) -> PageResult {
    let lang = read_language(form.language.as_deref())?;
    let versions = versions_of(&state, &name, &channel).await?;
    let latest = versions.last().expect("not empty");
    let mut source = source_with(
        latest,
        content_of(workflow::source_of(latest)?.channel, form.subject.as_deref(), &form.body, form.html.as_deref()),
    )?;
    source.language = lang.clone();
    let now = state.clock.now_ms();
    let store = &state.store;
    let own_draft =
        versions.iter().rev().find(|v| v.state == "draft" && v.author == staff.username && v.language == lang);
    let saved = match own_draft {
        Some(draft) => workflow::update_draft(store, &draft.id, &source.content, &staff.username).await?,
        None => workflow::save_draft(store, &source, &staff.username, now).await?,
    };
    let url = format!("/staff/versions/{}", saved.id);
    tracing::info!(template = %name, channel = %channel, language = %lang, version = saved.version, "template draft saved");
    if form.action != "submit" {
        return Ok(done(&url, format!("Draft version {} saved.", saved.version)));
    }
    match workflow::submit(store, &saved.id, &staff.username, now).await {
        Ok(()) => Ok(done(&url, format!("Version {} submitted for approval.", saved.version))),
        Err(WorkflowError::Refused { problems, .. }) => {
            Ok(done(&url, format!("Draft version {} saved but not submitted: {problems}", saved.version)))
        }
        Err(e) => Err(e.into()),
    }
}
