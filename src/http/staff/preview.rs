//! Live previews of wording being written, and the letters (PDF) of a version or a preview.

use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;

use super::templates::{content_of, preview_json};
use super::view::{self};
use super::{PageResult, Staff, StaffError};
use crate::channels::letter::{LetterSender, render_letter};
use crate::domain::{Channel, Kind, Recipient, language};
use crate::service::AppState;
use crate::service::templates as workflow;
use crate::templates::{TemplateSource, sample_vars};

/// What the live preview posts: the edit form as it stands.
#[derive(Debug, Deserialize)]
pub struct PreviewForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    channel: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    discreet: String,
    subject: Option<String>,
    #[serde(default)]
    body: String,
    html: Option<String>,
}

impl PreviewForm {
    fn source(&self) -> Result<TemplateSource, StaffError> {
        let channel = Channel::parse(&self.channel).ok_or(StaffError::BadRequest("unknown channel".into()))?;
        let kind = Kind::parse(&self.kind).ok_or(StaffError::BadRequest("unknown kind".into()))?;
        Ok(TemplateSource {
            name: self.name.clone(),
            channel,
            kind,
            discreet: self.discreet == "yes",
            language: language::ENGLISH.into(),
            content: content_of(channel, self.subject.as_deref(), &self.body, self.html.as_deref()),
        })
    }
}

/// The preview of unsaved wording, as an HTML fragment for the edit page's script.
pub async fn preview(staff: Staff, Form(form): Form<PreviewForm>) -> PageResult {
    let data = preview_json(&form.source()?, None);
    let _ = staff;
    Ok(Html(view::render("preview", None, data)?.0).into_response())
}

/// A sample letter: what the printed letter looks like with sample personalisation.
fn letter_pdf(source: &TemplateSource, today: chrono::NaiveDate) -> Result<Response, StaffError> {
    let rendered = crate::templates::render(source.channel, &source.content, &sample_vars())
        .map_err(|e| StaffError::BadRequest(format!("the letter cannot be shown yet: {e}")))?;
    let recipient = Recipient::Postal {
        name: "Sam Sample".into(),
        lines: vec!["1 Sample Street".into(), "Birmingham".into()],
        postcode: "B1 1AA".into(),
    };
    let pdf =
        render_letter(&LetterSender::default(), &recipient, today, Some("PREVIEW"), &rendered.text, &source.language)
            .map_err(|e| StaffError::BadRequest(format!("the letter cannot be shown: {e}")))?;
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static("application/pdf")),
        (header::CONTENT_DISPOSITION, HeaderValue::from_static("inline; filename=\"letter-preview.pdf\"")),
    ];
    Ok((headers, pdf).into_response())
}

fn today(state: &AppState) -> chrono::NaiveDate {
    state.clock.now().with_timezone(&chrono_tz::Europe::London).date_naive()
}

pub async fn version_letter(State(state): State<Arc<AppState>>, _staff: Staff, Path(id): Path<String>) -> PageResult {
    let v = state.store.template_version(&id).await?.ok_or(StaffError::NotFound("template version"))?;
    let source = workflow::source_of(&v)?;
    if source.channel != Channel::Letter {
        return Err(StaffError::NotFound("letter for this version"));
    }
    letter_pdf(&source, today(&state))
}

pub async fn preview_letter(
    State(state): State<Arc<AppState>>,
    _staff: Staff,
    Form(form): Form<PreviewForm>,
) -> PageResult {
    let source = form.source()?;
    if source.channel != Channel::Letter {
        return Err(StaffError::BadRequest("only letters have a PDF".into()));
    }
    letter_pdf(&source, today(&state))
}
