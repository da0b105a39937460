//! The approval workflow over stored template versions: checks at submission, four eyes at
//! approval. Used by the CLI and the staff pages alike.

use std::path::Path;

use crate::store::{NewVersion, Store, StoreError, TemplateState, TemplateVersion};
use crate::templates::{TemplateError, TemplateSource};

#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("no staff account {0}")]
    UnknownStaff(String),
    #[error("{who} has the role {role}, which may not {action}")]
    WrongRole { who: String, role: String, action: &'static str },
    #[error("{name} ({channel}) was refused: {problems}")]
    Refused { name: String, channel: String, problems: String },
    #[error("{0} wrote this version, so someone else must approve it")]
    OwnVersion(String),
    #[error("no such template version, or it is not waiting for that")]
    NotFound,
    #[error("{approver} may not approve what {author} wrote: {why}")]
    NotIndependent { approver: String, author: String, why: String },
    #[error("the wording changed while it was being checked; look at it again")]
    Changed,
}

/// How long an admin counts as answerable for the accounts they created (see [`independent`]).
pub const CREATOR_ANSWERABLE_MS: i64 = 24 * 3_600_000;

type Result<T> = std::result::Result<T, WorkflowError>;

/// Staff who may write wording: authors and approvers (an approver's own wording still needs
/// another approver).
const WRITERS: [&str; 2] = ["author", "approver"];
const APPROVERS: [&str; 1] = ["approver"];

async fn require_role(store: &Store, who: &str, roles: &[&str], action: &'static str) -> Result<()> {
    let account = store.staff(who).await?.ok_or_else(|| WorkflowError::UnknownStaff(who.to_string()))?;
    if roles.contains(&account.role.as_str()) && !account.disabled.0 {
        Ok(())
    } else {
        Err(WorkflowError::WrongRole { who: who.to_string(), role: account.role, action })
    }
}

/// Run the submission checks; refuse with every problem named.
fn checked(source: &TemplateSource) -> Result<()> {
    let problems = crate::templates::check(source, &crate::templates::Rules::default());
    let blocking: Vec<String> = problems.iter().map(|p| p.message.clone()).collect();
    if blocking.is_empty() {
        Ok(())
    } else {
        Err(WorkflowError::Refused {
            name: source.name.clone(),
            channel: source.channel.as_str().to_string(),
            problems: blocking.join("; "),
        })
    }
}

fn new_version<'a>(source: &'a TemplateSource, author: &'a str, state: TemplateState) -> NewVersion<'a> {
    NewVersion {
        name: &source.name,
        channel: source.channel.as_str(),
        kind: source.kind.as_str(),
        discreet: source.discreet,
        language: &source.language,
        subject: source.content.subject.as_deref(),
        body: &source.content.body,
        html: source.content.html.as_deref(),
        author,
        state,
    }
}

/// Whether `version` holds exactly this wording.
fn same_wording(version: &TemplateVersion, source: &TemplateSource) -> bool {
    version.body == source.content.body
        && version.subject == source.content.subject
        && version.html == source.content.html
        && version.discreet.0 == source.discreet
        && version.kind == source.kind.as_str()
}

/// Load every source in `dir` as a new version submitted for approval by `author`. A source whose
/// wording is already the latest version of its template is skipped, so loading twice is harmless.
pub async fn load_dir(store: &Store, dir: &Path, author: &str, now: i64) -> Result<Vec<String>> {
    require_role(store, author, &WRITERS, "write templates").await?;
    load_sources(store, &crate::templates::load_dir(dir)?, author, now).await
}

/// `load_dir` with the wording built into the binary (`message_templates/` as it was built).
pub async fn load_defaults(store: &Store, author: &str, now: i64) -> Result<Vec<String>> {
    require_role(store, author, &WRITERS, "write templates").await?;
    load_sources(store, &crate::templates::default_sources()?, author, now).await
}

/// Load `sources` as `load_dir` does: English first, so that a template's English version is
/// numbered before its translations.
pub async fn load_sources(store: &Store, sources: &[TemplateSource], author: &str, now: i64) -> Result<Vec<String>> {
    require_role(store, author, &WRITERS, "write templates").await?;
    for source in sources {
        checked(source)?;
    }
    let mut sources: Vec<&TemplateSource> = sources.iter().collect();
    sources.sort_by_key(|s| s.language != crate::domain::language::ENGLISH);
    let existing = store.template_versions().await?;
    let mut report = Vec::new();
    for source in sources {
        let latest = existing
            .iter()
            .filter(|v| v.name == source.name && v.channel == source.channel.as_str() && v.language == source.language)
            .max_by_key(|v| v.version);
        if let Some(v) = latest.filter(|v| same_wording(v, source) && v.state != "rejected") {
            report.push(format!(
                "{} ({}, {}) unchanged: v{} is {}",
                source.name,
                source.channel.as_str(),
                source.language,
                v.version,
                v.state
            ));
            continue;
        }
        let v = store.insert_template_version(&new_version(source, author, TemplateState::Submitted), now).await?;
        report.push(format!("{} ({}, {}) v{} submitted for approval", v.name, v.channel, v.language, v.version));
    }
    Ok(report)
}

/// Save new wording as a draft (staff pages).
pub async fn save_draft(store: &Store, source: &TemplateSource, author: &str, now: i64) -> Result<TemplateVersion> {
    require_role(store, author, &WRITERS, "write templates").await?;
    Ok(store.insert_template_version(&new_version(source, author, TemplateState::Draft), now).await?)
}

/// Change the wording of a draft; only its author may.
pub async fn update_draft(
    store: &Store,
    id: &str,
    content: &crate::templates::TemplateContent,
    author: &str,
) -> Result<TemplateVersion> {
    require_role(store, author, &WRITERS, "write templates").await?;
    let (subject, html) = (content.subject.as_deref(), content.html.as_deref());
    if !store.update_draft(id, author, subject, &content.body, html).await? {
        return Err(WorkflowError::NotFound);
    }
    store.template_version(id).await?.ok_or(WorkflowError::NotFound)
}

/// Submit a draft for approval, after the checks. From then on its wording is frozen: the state
/// moves only if the wording is still what was checked.
pub async fn submit(store: &Store, id: &str, by: &str, now: i64) -> Result<()> {
    require_role(store, by, &WRITERS, "submit templates").await?;
    let version = store.template_version(id).await?.ok_or(WorkflowError::NotFound)?;
    if version.state != TemplateState::Draft.as_str() {
        return Err(WorkflowError::NotFound);
    }
    checked(&source_of(&version)?)?;
    if store.submit_template_version(&version, now).await? { Ok(()) } else { Err(WorkflowError::Changed) }
}

/// The people answerable for what an account does: its holder, and the admin who created it
/// if that was within [`CREATOR_ANSWERABLE_MS`].
async fn answerable(store: &Store, username: &str, now: i64) -> Result<Vec<(String, String)>> {
    let mut people = vec![(username.to_string(), format!("{username} is the same person"))];
    if let Some(account) = store.staff(username).await?
        && account.created_at > now - CREATOR_ANSWERABLE_MS
        && let Some(admin) = account.created_by.as_deref().and_then(|by| by.strip_prefix("staff:"))
    {
        people.push((admin.to_string(), format!("{admin} created the account {username} within the last day")));
    }
    Ok(people)
}

/// Four eyes: the approver is another person than the author, and no admin stands behind both
/// (an admin who created one of the two accounts within the last day may not be, or have
/// created, the other). So one admin cannot mint an author and an approver and pass their own
/// wording; accounts made on the command line (`cli`) are the operator's, who holds the
/// database anyway (SECURITY.md).
pub async fn independent(store: &Store, author: &str, approver: &str, now: i64) -> Result<()> {
    if author == approver {
        return Err(WorkflowError::OwnVersion(approver.to_string()));
    }
    let behind_author = answerable(store, author, now).await?;
    for (person, why) in answerable(store, approver, now).await? {
        if let Some((_, author_why)) = behind_author.iter().find(|(p, _)| *p == person) {
            let why = if person == approver { author_why.clone() } else { why };
            return Err(WorkflowError::NotIndependent { approver: approver.into(), author: author.into(), why });
        }
    }
    Ok(())
}

/// Approve a submitted version: only by an approver independent of its author ([`independent`]),
/// and only once the submission checks pass again on exactly the wording approved.
pub async fn approve(
    store: &Store,
    id: &str,
    approver: &str,
    comment: Option<&str>,
    now: i64,
) -> Result<TemplateVersion> {
    require_role(store, approver, &APPROVERS, "approve templates").await?;
    let version = store.template_version(id).await?.ok_or(WorkflowError::NotFound)?;
    if version.state != TemplateState::Submitted.as_str() {
        return Err(WorkflowError::NotFound);
    }
    independent(store, &version.author, approver, now).await?;
    checked(&source_of(&version)?)?;
    if !store.approve_template_version(&version, approver, comment, now).await? {
        return Err(WorkflowError::Changed);
    }
    store.template_version(id).await?.ok_or(WorkflowError::NotFound)
}

pub async fn reject(store: &Store, id: &str, approver: &str, comment: &str, now: i64) -> Result<()> {
    require_role(store, approver, &APPROVERS, "reject templates").await?;
    if store
        .set_template_state(id, TemplateState::Submitted, TemplateState::Rejected, Some(approver), Some(comment), now)
        .await?
    {
        Ok(())
    } else {
        Err(WorkflowError::NotFound)
    }
}

/// The versions waiting for approval: of `name`, or of every template.
pub async fn waiting(store: &Store, name: Option<&str>) -> Result<Vec<TemplateVersion>> {
    Ok(store
        .template_versions()
        .await?
        .into_iter()
        .filter(|v| v.state == "submitted" && name.is_none_or(|n| v.name == n))
        .collect())
}

/// One line naming a version, as listed before approval.
pub fn describe(v: &TemplateVersion) -> String {
    format!("{} ({}, {}) v{} by {}", v.name, v.channel, v.language, v.version, v.author)
}

/// Approve these versions as `approver` (each checked as [`approve`] does).
pub async fn approve_listed(
    store: &Store,
    versions: &[TemplateVersion],
    approver: &str,
    now: i64,
) -> Result<Vec<String>> {
    let mut report = Vec::new();
    for v in versions {
        let approved = approve(store, &v.id, approver, None, now).await?;
        report.push(format!(
            "{} ({}, {}) v{} approved by {approver}",
            approved.name, approved.channel, approved.language, approved.version
        ));
    }
    Ok(report)
}

/// Approve every submitted version of `name` (or of all templates) as `approver`.
pub async fn approve_submitted(store: &Store, name: Option<&str>, approver: &str, now: i64) -> Result<Vec<String>> {
    approve_listed(store, &waiting(store, name).await?, approver, now).await
}

/// A stored version as a source, for checks and previews.
pub fn source_of(v: &TemplateVersion) -> Result<TemplateSource> {
    let bad = |what: &str| WorkflowError::Store(StoreError::Corrupt(format!("template version {}: {what}", v.id)));
    Ok(TemplateSource {
        name: v.name.clone(),
        channel: crate::domain::Channel::parse(&v.channel).ok_or_else(|| bad("channel"))?,
        kind: crate::domain::Kind::parse(&v.kind).ok_or_else(|| bad("kind"))?,
        discreet: v.discreet.0,
        language: v.language.clone(),
        content: crate::templates::TemplateContent {
            subject: v.subject.clone(),
            body: v.body.clone(),
            html: v.html.clone(),
        },
    })
}
