//! Template versions: immutable once submitted; states draft → submitted → approved/rejected →
//! retired. The rules (checks, four eyes) are in `service::templates`; this is storage.

use super::{Result, Store, StoreError, dynamic, new_id};
use crate::domain::codes;
use serde::{Deserialize, Serialize};

codes!(TemplateState {
    Draft => "draft",
    Submitted => "submitted",
    Approved => "approved",
    Rejected => "rejected",
    Retired => "retired",
});

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TemplateVersion {
    pub id: String,
    pub name: String,
    pub channel: String,
    pub kind: String,
    #[sqlx(try_from = "i64")]
    pub discreet: super::Flag,
    pub version: i64,
    pub state: String,
    pub subject: Option<String>,
    pub body: String,
    pub html: Option<String>,
    pub author: String,
    pub created_at: i64,
    pub submitted_at: Option<i64>,
    pub decided_by: Option<String>,
    pub decided_at: Option<i64>,
    pub comment: Option<String>,
    /// `en`, `cy`, …: approval and retirement are per (name, channel, language).
    pub language: String,
}

pub(super) const VERSION_COLUMNS: &str = "id, name, channel, kind, discreet, version, state, subject, body, html, author, created_at, submitted_at, decided_by, decided_at, comment, language";

/// The wording of a new version.
#[derive(Debug, Clone)]
pub struct NewVersion<'a> {
    pub name: &'a str,
    pub channel: &'a str,
    pub kind: &'a str,
    pub discreet: bool,
    pub language: &'a str,
    pub subject: Option<&'a str>,
    pub body: &'a str,
    pub html: Option<&'a str>,
    pub author: &'a str,
    pub state: TemplateState,
}

impl Store {
    /// Store a new version numbered after the latest of its (name, channel), in any language.
    pub async fn insert_template_version(&self, new: &NewVersion<'_>, now: i64) -> Result<TemplateVersion> {
        let mut tx = self.begin().await?;
        let latest: Option<i64> =
            sqlx::query_scalar("SELECT MAX(version) FROM template_versions WHERE name = $1 AND channel = $2")
                .bind(new.name)
                .bind(new.channel)
                .fetch_one(&mut *tx)
                .await?;
        let id = new_id("tpl");
        let submitted_at = (new.state == TemplateState::Submitted).then_some(now);
        sqlx::query(dynamic(format!(
            "INSERT INTO template_versions ({VERSION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, NULL, NULL, NULL, $14)"
        )))
        .bind(&id)
        .bind(new.name)
        .bind(new.channel)
        .bind(new.kind)
        .bind(i64::from(new.discreet))
        .bind(latest.unwrap_or(0) + 1)
        .bind(new.state.as_str())
        .bind(new.subject)
        .bind(new.body)
        .bind(new.html)
        .bind(new.author)
        .bind(now)
        .bind(submitted_at)
        .bind(new.language)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.template_version(&id).await?.ok_or(StoreError::NotFound)
    }

    pub async fn template_version(&self, id: &str) -> Result<Option<TemplateVersion>> {
        Ok(sqlx::query_as(dynamic(format!("SELECT {VERSION_COLUMNS} FROM template_versions WHERE id = $1")))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Every version, by name, channel and version.
    pub async fn template_versions(&self) -> Result<Vec<TemplateVersion>> {
        Ok(sqlx::query_as(dynamic(format!(
            "SELECT {VERSION_COLUMNS} FROM template_versions ORDER BY name, channel, version"
        )))
        .fetch_all(&self.pool)
        .await?)
    }

    /// The approved version in `language` when there is one, else the approved English one.
    /// Read on `conn`: a caller inside a write transaction must not wait for a second connection
    /// (with SQLite, the others may all be waiting for its lock).
    pub async fn approved_version(
        &self,
        conn: &mut sqlx::AnyConnection,
        name: &str,
        channel: &str,
        language: &str,
    ) -> Result<Option<TemplateVersion>> {
        Ok(sqlx::query_as(dynamic(format!(
            "SELECT {VERSION_COLUMNS} FROM template_versions
             WHERE name = $1 AND channel = $2 AND state = 'approved' AND language IN ($3, 'en')
             ORDER BY CASE WHEN language = $3 THEN 0 ELSE 1 END LIMIT 1"
        )))
        .bind(name)
        .bind(channel)
        .bind(language)
        .fetch_optional(conn)
        .await?)
    }

    /// Change the wording of a draft; only its author may. False when it is not that author's draft.
    pub async fn update_draft(
        &self,
        id: &str,
        author: &str,
        subject: Option<&str>,
        body: &str,
        html: Option<&str>,
    ) -> Result<bool> {
        let changed = sqlx::query(
            "UPDATE template_versions SET subject = $3, body = $4, html = $5 WHERE id = $1 AND author = $2 AND state = 'draft'",
        )
        .bind(id)
        .bind(author)
        .bind(subject)
        .bind(body)
        .bind(html)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(changed == 1)
    }

    /// Move a version from `from` to `to` (submit, reject). False when it was not in `from`.
    pub async fn set_template_state(
        &self,
        id: &str,
        from: TemplateState,
        to: TemplateState,
        by: Option<&str>,
        comment: Option<&str>,
        now: i64,
    ) -> Result<bool> {
        let (submitted, decided) = if to == TemplateState::Submitted { (Some(now), None) } else { (None, Some(now)) };
        let changed = sqlx::query(
            "UPDATE template_versions SET state = $3, submitted_at = COALESCE($4, submitted_at),
               decided_at = COALESCE($5, decided_at), decided_by = COALESCE($6, decided_by), comment = COALESCE($7, comment)
             WHERE id = $1 AND state = $2",
        )
        .bind(id)
        .bind(from.as_str())
        .bind(to.as_str())
        .bind(submitted)
        .bind(decided)
        .bind(by)
        .bind(comment)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(changed == 1)
    }

    /// Submit a draft whose wording is still `checked`'s (a draft edited meanwhile stays a
    /// draft). False otherwise.
    pub async fn submit_template_version(&self, checked: &TemplateVersion, now: i64) -> Result<bool> {
        let changed = sqlx::query(dynamic(format!(
            "UPDATE template_versions SET state = 'submitted', submitted_at = $2 WHERE id = $1 AND state = 'draft' AND {SAME_WORDING}"
        )))
        .bind(&checked.id)
        .bind(now)
        .bind(&checked.subject)
        .bind(&checked.body)
        .bind(&checked.html)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(changed == 1)
    }

    /// Approve a submitted version written by someone else, with exactly `checked`'s wording,
    /// retiring the approved one before it in the same language. False when the version is not submitted, `approver`
    /// wrote it, or its wording is not what was checked.
    pub async fn approve_template_version(
        &self,
        checked: &TemplateVersion,
        approver: &str,
        comment: Option<&str>,
        now: i64,
    ) -> Result<bool> {
        let id = &checked.id;
        let mut tx = self.begin().await?;
        if self.dialect == super::Dialect::Postgres {
            // Two approvals of one template at once would both find nothing to retire: lock all
            // its versions first, always in the same order (SQLite's write lock already serialises).
            sqlx::query(
                "SELECT id FROM template_versions WHERE (name, channel) = (SELECT name, channel FROM template_versions WHERE id = $1)
                 ORDER BY id FOR UPDATE",
            )
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        let version: Option<TemplateVersion> = sqlx::query_as(dynamic(format!(
            "SELECT {VERSION_COLUMNS} FROM template_versions
             WHERE id = $1 AND state = 'submitted' AND author <> $2 AND {SAME_WORDING}{}",
            self.for_update()
        )))
        .bind(id)
        .bind(approver)
        .bind(&checked.subject)
        .bind(&checked.body)
        .bind(&checked.html)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(version) = version else { return Ok(false) };
        sqlx::query(
            "UPDATE template_versions SET state = 'retired' WHERE name = $1 AND channel = $2 AND language = $3 AND state = 'approved'",
        )
        .bind(&version.name)
        .bind(&version.channel)
        .bind(&version.language)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE template_versions SET state = 'approved', decided_by = $2, decided_at = $3, comment = $4 WHERE id = $1")
            .bind(id)
            .bind(approver)
            .bind(now)
            .bind(comment)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }
}

/// The stored wording equals parameters $3 (subject), $4 (body) and $5 (html).
const SAME_WORDING: &str = "subject IS NOT DISTINCT FROM $3 AND body = $4 AND html IS NOT DISTINCT FROM $5";
