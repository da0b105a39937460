//! TODO

pub mod workflow;

// TEMPORARY stubs until the templates branch lands.
use crate::domain::Channel;
use crate::domain::sms::SmsInfo;

#[derive(Debug, Clone)]
pub struct TemplateContent {
    pub subject: Option<String>,
    pub body: String,
    pub html: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Rendered {
    pub subject: Option<String>,
    pub text: String,
    pub html: Option<String>,
    pub sms: Option<SmsInfo>,
}

#[derive(Debug, thiserror::Error)]
#[error("template error")]
pub struct TemplateError;

pub fn render(_channel: Channel, _content: &TemplateContent, _vars: &serde_json::Value) -> Result<Rendered, TemplateError> {
    todo!()
}
pub struct TemplateSource { pub name: String, pub channel: Channel, pub kind: crate::domain::Kind, pub discreet: bool, pub content: TemplateContent }
pub struct Rules;
impl Default for Rules { fn default() -> Self { Rules } }
pub struct Problem { pub message: String }
impl Problem { pub fn blocks(&self) -> bool { true } }
pub fn check(_s: &TemplateSource, _r: &Rules) -> Vec<Problem> { todo!() }
pub fn load_dir(_d: &std::path::Path) -> Result<Vec<TemplateSource>, TemplateError> { todo!() }
