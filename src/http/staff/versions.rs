//! A template version's page (its preview, and the changes from the version before) and the
//! four-eyes actions on it: submit, approve, reject (through `service::templates`).

use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::templates::{channel_label, preview_json, template_url, version_json, versions_of};
use super::view::{self};
use super::{PageResult, Staff, StaffError, diff, done};
use crate::domain::{Channel, language};
use crate::service::AppState;
use crate::service::templates::{self as workflow, WorkflowError};
use crate::store::TemplateVersion;

#[derive(Debug, Deserialize)]
pub struct CompareQuery {
    compare: Option<i64>,
}

/// One version: its wording, the preview, the changes from another version, and what this
/// member of staff may do with it.
pub async fn version(
    State(state): State<Arc<AppState>>,
    staff: Staff,
    Path(id): Path<String>,
    Query(q): Query<CompareQuery>,
) -> PageResult {
    let v = state.store.template_version(&id).await?.ok_or(StaffError::NotFound("template version"))?;
    // Compared within its language: a translation is not a change of the English wording.
    let versions: Vec<TemplateVersion> =
        versions_of(&state, &v.name, &v.channel).await?.into_iter().filter(|o| o.language == v.language).collect();
    let source = workflow::source_of(&v)?;
    // Compared by default with the version in use (or, for that one, with the one before it).
    let approved = versions.iter().find(|o| o.state == "approved" && o.id != v.id);
    let other = match q.compare {
        Some(n) => versions.iter().find(|o| o.version == n),
        None => approved.or_else(|| versions.iter().rev().find(|o| o.version < v.version)),
    };
    let own = v.author == staff.username;
    let letter_url = (source.channel == Channel::Letter).then(|| format!("/staff/versions/{}/letter.pdf", v.id));
    let data = json!({
        "title": format!("{} ({}, {}) version {}", v.name, channel_label(&v.channel), language::name(&v.language), v.version),
        "nav": { "templates": true },
        "v": version_json(&v),
        "kind": v.kind,
        "discreet": v.discreet.0,
        "history_url": template_url(&v.name, &v.channel, &v.language),
        "is_draft": v.state == "draft",
        "is_submitted": v.state == "submitted",
        "can_edit": v.state == "draft" && own && staff.can_write(),
        "edit_url": format!("/staff/templates/{}/{}/draft?language={}", v.name, v.channel, v.language),
        "can_submit": v.state == "draft" && own && staff.can_write(),
        "can_decide": v.state == "submitted" && staff.can_approve() && !own,
        "own_submitted": v.state == "submitted" && own,
        "waiting_for_approver": v.state == "submitted" && !own && !staff.can_approve(),
        "preview": preview_json(&source, letter_url),
        "wording": wording(&v),
        "changes": other.map(|o| changes(o, &v)),
        "others": versions.iter().filter(|o| o.id != v.id).map(|o| json!({
            "version": o.version,
            "selected": other.is_some_and(|x| x.id == o.id),
        })).collect::<Vec<_>>(),
    });
    view::page("version", &staff, data)
}

fn wording(v: &TemplateVersion) -> Vec<Value> {
    let mut parts = Vec::new();
    if let Some(subject) = &v.subject {
        parts.push(json!({ "label": "Subject", "text": subject }));
    }
    let body = match v.channel.as_str() {
        "email" => "Plain-text part",
        "letter" => "Letter body",
        _ => "SMS text",
    };
    parts.push(json!({ "label": body, "text": v.body }));
    if let Some(html) = &v.html {
        parts.push(json!({ "label": "HTML part", "text": html }));
    }
    parts
}

/// A side-by-side diff of every part of two versions.
fn changes(old: &TemplateVersion, new: &TemplateVersion) -> Value {
    let part = |label: &str, a: Option<&str>, b: Option<&str>| {
        let rows = diff::side_by_side(a.unwrap_or(""), b.unwrap_or(""));
        let changed = rows.iter().any(|r| r.kind != "same");
        json!({ "label": label, "rows": rows, "changed": changed })
    };
    let mut parts = Vec::new();
    if old.subject.is_some() || new.subject.is_some() {
        parts.push(part("Subject", old.subject.as_deref(), new.subject.as_deref()));
    }
    parts.push(part("Text", Some(&old.body), Some(&new.body)));
    if old.html.is_some() || new.html.is_some() {
        parts.push(part("HTML part", old.html.as_deref(), new.html.as_deref()));
    }
    json!({
        "old": version_json(old),
        "new": version_json(new),
        "parts": parts,
        "same": parts.iter().all(|p| p["changed"] == false),
    })
}

pub async fn submit(State(state): State<Arc<AppState>>, staff: Staff, Path(id): Path<String>) -> PageResult {
    let v = state.store.template_version(&id).await?.ok_or(StaffError::NotFound("template version"))?;
    if v.author != staff.username {
        return Err(StaffError::Forbidden(format!("only {} can submit this draft", v.author)));
    }
    let url = format!("/staff/versions/{id}");
    match workflow::submit(&state.store, &id, &staff.username, state.clock.now_ms()).await {
        Ok(()) => Ok(done(&url, format!("Version {} submitted for approval.", v.version))),
        Err(WorkflowError::Refused { problems, .. }) => {
            Ok(done(&url, format!("Not submitted: fix these first: {problems}")))
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Debug, Deserialize)]
pub struct DecisionForm {
    #[serde(default)]
    comment: String,
}

pub async fn approve(
    State(state): State<Arc<AppState>>,
    staff: Staff,
    Path(id): Path<String>,
    Form(form): Form<DecisionForm>,
) -> PageResult {
    let comment = Some(form.comment.trim()).filter(|c| !c.is_empty());
    let v = workflow::approve(&state.store, &id, &staff.username, comment, state.clock.now_ms()).await?;
    tracing::info!(template = %v.name, channel = %v.channel, language = %v.language, version = v.version, "template version approved");
    Ok(done(
        &format!("/staff/versions/{id}"),
        format!(
            "Version {} of {} ({}, {}) approved: it is used from now on.",
            v.version,
            v.name,
            channel_label(&v.channel),
            language::name(&v.language)
        ),
    ))
}

pub async fn reject(
    State(state): State<Arc<AppState>>,
    staff: Staff,
    Path(id): Path<String>,
    Form(form): Form<DecisionForm>,
) -> PageResult {
    let comment = form.comment.trim();
    if comment.is_empty() {
        return Err(StaffError::BadRequest("say why the version is rejected, so its author can change it".into()));
    }
    let v = state.store.template_version(&id).await?.ok_or(StaffError::NotFound("template version"))?;
    if v.author == staff.username {
        return Err(WorkflowError::OwnVersion(staff.username).into());
    }
    workflow::reject(&state.store, &id, &staff.username, comment, state.clock.now_ms()).await?;
    Ok(done(&format!("/staff/versions/{id}"), format!("Version {} rejected.", v.version)))
}
