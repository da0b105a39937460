//! Message templates: the source-file format of `message_templates/`, strict rendering, and the
//! checks a version must pass before it can be submitted for approval.
//!
//! Everything here is pure (no database); the store-backed approval workflow is `service::templates`.
//!
//! The template language is a deliberately small part of Handlebars, so that a non-programmer can
//! edit templates and a checker can see everything they do (see `message_templates/README.md`):
//!
//! - `{{first_name}}` puts in a value; `{{!-- note --}}` is a comment;
//! - `{{#if first_name}}…{{else}}…{{/if}}` and `{{#unless …}}…{{/unless}}` choose text.
//!
//! **Strict mode and optional values.** Rendering runs Handlebars in strict mode, so a variable
//! that is not in the data is an error, never an empty gap. Found by experiment (handlebars 6.4,
//! pinned by a test in `render.rs`): `{{#if x}}` and `{{#unless x}}` treat a *missing* `x` as
//! false without error, while a bare `{{x}}` errors when `x` is missing but prints nothing when
//! `x` is present as `null` or `""`. Hence the rule:
//!
//! 1. every personalisation value is optional, so a template uses `{{x}}` only inside
//!    `{{#if x}}…{{/if}}` (the check renders with no values at all to prove it);
//! 2. the renderer passes only keys that have a value: `null` and blank strings are dropped, so an
//!    unguarded `{{x}}` fails instead of printing an empty gap;
//! 3. `#if` hides a misspelt name (it is simply false), so the check reads every name a template
//!    uses and refuses one that is not a known variable (the keys of [`sample_vars`]).

mod check;
mod defaults;
mod render;
mod source;
mod structure;

#[cfg(test)]
mod tests;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::domain::{Channel, Kind};

pub use check::{Problem, ProblemCode, Review, Rules, check, review};
pub use defaults::{DEFAULT_FILES, default_sources};
pub use render::{Rendered, long_sample_vars, render, render_vars, sample_vars};
pub use source::{load_dir, parse_source};

/// The editable parts of a template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateContent {
    /// Email subject (email only).
    pub subject: Option<String>,
    /// SMS text, email plain-text part, or letter body (from the salutation on).
    pub body: String,
    /// Email HTML part (email only).
    pub html: Option<String>,
}

/// A template as written in a source file: what it is, and its content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateSource {
    pub name: String,
    pub channel: Channel,
    pub kind: Kind,
    /// Checked against the forbidden words: for safety-sensitive cases.
    pub discreet: bool,
    /// The language it is written in (`en`, `cy`, …; `crate::domain::language`).
    pub language: String,
    pub content: TemplateContent,
}

/// Errors carry file names, line numbers and variable names, never personalisation values.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A source file that does not follow the format.
    #[error("{file}, line {line}: {message}")]
    Syntax { file: String, line: usize, message: String },
    #[error("{file}: template {name} for {channel} in language {language} is already defined in {first}")]
    Duplicate { file: String, first: String, name: String, channel: &'static str, language: String },
    /// A part that is not valid Handlebars.
    #[error("the {part} is not a valid template: {message}")]
    Compile { part: &'static str, message: String },
    /// Rendering failed, e.g. a variable used without `{{#if}}` had no value.
    #[error("the {part} cannot be filled in: {message}")]
    Render { part: &'static str, message: String },
    /// The render data is not an object of text values.
    #[error("render data: {0}")]
    Data(String),
}
