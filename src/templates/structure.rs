//! The structure a template may have, checked before handlebars renders it (and before a version
//! is submitted): not too deeply nested, compiling, and using nothing beyond our language.

use handlebars::template::{Parameter, Template, TemplateElement};
use handlebars::{Path, PathSeg};

use super::TemplateError;

/// How deep `{{#if}}`/`{{#unless}}` may nest, and how many `{{else}}` a part may have: far more
/// than wording needs, far less than would exhaust the stack while rendering.
pub const MAX_NESTING: usize = 8;
pub const MAX_ELSE: usize = 16;

/// Nesting beyond [`MAX_NESTING`] or [`MAX_ELSE`], counted on the raw text before handlebars
/// parses it (its parser and renderer recurse).
pub(super) fn nesting_problem(part: &str, text: &str) -> Option<String> {
    let (mut depth, mut deepest, mut elses) = (0usize, 0usize, 0usize);
    let mut rest = text;
    while let Some(at) = rest.find("{{") {
        let tag = rest[at + 2..].trim_start_matches(['{', '~', ' ']);
        if tag.starts_with('#') || tag.starts_with('^') {
            depth += 1;
            deepest = deepest.max(depth);
        } else if tag.starts_with('/') {
            depth = depth.saturating_sub(1);
        } else if tag.starts_with("else") {
            elses += 1;
        }
        rest = &rest[at + 2..];
    }
    (deepest > MAX_NESTING || elses > MAX_ELSE).then(|| {
        format!(
            "the {part} nests blocks more than {MAX_NESTING} deep or has more than {MAX_ELSE} {{{{else}}}}: keep it simpler"
        )
    })
}

/// Whether `text` may be rendered at all: not too deeply nested, compiles, and uses nothing
/// beyond our language (no partials, helpers or triple braces). Checked before every render, so
/// that no wording, saved or previewed, can abort the process.
pub fn structure_problem(part: &'static str, text: &str) -> Result<(), TemplateError> {
    if let Some(message) = nesting_problem(part, text) {
        return Err(TemplateError::Render { part, message });
    }
    let template =
        Template::compile(text).map_err(|e| TemplateError::Compile { part, message: compile_message(&e) })?;
    let mut walk = Walk::default();
    walk.template(&template);
    match walk.unsupported.first() {
        Some(what) => {
            Err(TemplateError::Render { part, message: format!("it uses {what}, which templates may not use") })
        }
        None => Ok(()),
    }
}

/// What a template uses, gathered from every branch.
#[derive(Default)]
pub(super) struct Walk {
    pub(super) names: Vec<String>,
    pub(super) unsupported: Vec<String>,
    pub(super) literal: String,
}

impl Walk {
    pub(super) fn template(&mut self, template: &Template) {
        for element in &template.elements {
            match element {
                TemplateElement::RawString(text) => {
                    self.literal += text;
                    // Keeps words of neighbouring pieces apart.
                    self.literal.push(' ');
                }
                TemplateElement::Comment(_) => {}
                TemplateElement::Expression(e) if e.params.is_empty() && e.hash.is_empty() => self.variable(&e.name),
                TemplateElement::Expression(e) => self.unsupported(format!("`{{{{{} …}}}}`", describe(&e.name))),
                TemplateElement::HtmlExpression(_) => {
                    self.unsupported("triple braces {{{…}}}, which skip HTML escaping".into())
                }
                TemplateElement::HelperBlock(block) => {
                    let helper = describe(&block.name);
                    if matches!(helper.as_str(), "if" | "unless")
                        && block.params.len() == 1
                        && block.hash.is_empty()
                        && block.block_param.is_none()
                    {
                        self.variable(&block.params[0]);
                    } else {
                        self.unsupported(format!("`{{{{#{helper} …}}}}`"));
                    }
                    for inner in [&block.template, &block.inverse].into_iter().flatten() {
                        self.template(inner);
                    }
                }
                _ => self.unsupported("partials or decorators".into()),
            }
        }
    }

    fn variable(&mut self, parameter: &Parameter) {
        match parameter {
            Parameter::Path(Path::Relative((segments, raw))) if !raw.contains(['.', '/', '[']) => {
                if let [PathSeg::Named(name)] = segments.as_slice() {
                    if !self.names.contains(name) {
                        self.names.push(name.clone());
                    }
                    return;
                }
                self.unsupported(format!("`{raw}`"));
            }
            other => self.unsupported(format!("`{}`", describe(other))),
        }
    }

    fn unsupported(&mut self, what: String) {
        if !self.unsupported.contains(&what) {
            self.unsupported.push(what);
        }
    }
}

fn describe(parameter: &Parameter) -> String {
    match parameter {
        Parameter::Name(name) => name.clone(),
        Parameter::Path(Path::Relative((_, raw)) | Path::Local((_, _, raw))) => raw.clone(),
        Parameter::Literal(value) => value.to_string(),
        _ => "(…)".into(),
    }
}

pub(super) fn compile_message(error: &handlebars::TemplateError) -> String {
    match error.pos() {
        Some((line, column)) => format!("{} (line {line}, column {column})", error.reason()),
        None => error.reason().to_string(),
    }
}
