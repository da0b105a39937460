//! The history the policy reads about a case: its memory, its other jobs, suppressions and the
//! numbers recorded as someone else's.

use std::collections::BTreeSet;

use sqlx::AnyConnection;

use super::{Result, Store, dynamic, placeholders};
use crate::domain::{CaseHistory, Channel, JobStatus, Kind, OutreachRequest, contact};

/// What `history` reads from the case row.
#[derive(Debug, Default, sqlx::FromRow)]
struct CaseFacts {
    cancelled_at: Option<i64>,
    #[sqlx(try_from = "i64")]
    priority: super::Flag,
    #[sqlx(try_from = "i64")]
    safety_sensitive: super::Flag,
    call_attempts: i64,
    declined: i64,
}

impl Store {
    /// What the policy needs to know about the case of `req`. `this` is the job being decided
    /// (id and acceptance time) when it is already stored.
    pub async fn history(
        &self,
        conn: &mut AnyConnection,
        req: &OutreachRequest,
        this: Option<(&str, i64)>,
        now: i64,
    ) -> Result<CaseHistory> {
        let test = match this {
            Some((id, _)) => {
                sqlx::query_scalar::<_, i64>("SELECT test FROM outreach WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&mut *conn)
                    .await?
                    == Some(1)
            }
            None => false,
        };
        self.history_of(conn, req, this, now, test).await
    }

    /// `history` for a live job or, with `test`, a test key's job. A test job never counts for a
    /// live one (rule 11 would otherwise block the real pre-text as a duplicate of a test's);
    /// a test job sees both.
    pub async fn history_of(
        &self,
        conn: &mut AnyConnection,
        req: &OutreachRequest,
        this: Option<(&str, i64)>,
        now: i64,
        test: bool,
    ) -> Result<CaseHistory> {
        let case_ref = &req.case_ref;
        let case: Option<CaseFacts> = sqlx::query_as(
            "SELECT cancelled_at, priority, safety_sensitive,
               (SELECT COUNT(*) FROM calls k WHERE k.case_ref = c.case_ref
                  AND k.outcome IN ('answered', 'no_answer', 'voicemail')) AS call_attempts,
               (SELECT COUNT(*) FROM calls k WHERE k.case_ref = c.case_ref AND k.outcome = 'declined') AS declined
             FROM cases c WHERE case_ref = $1",
        )
        .bind(case_ref)
        .fetch_optional(&mut *conn)
        .await?;
        let case = case.unwrap_or_default();
        let case_categories: BTreeSet<String> =
            sqlx::query_scalar::<_, String>("SELECT category FROM case_categories WHERE case_ref = $1")
                .bind(case_ref)
                .fetch_all(&mut *conn)
                .await?
                .into_iter()
                .collect();
        let (this_id, accepted_at) = this.unwrap_or(("", now));
        // Jobs accepted before this one; a job not yet stored comes after every stored one, even
        // one accepted in the same millisecond.
        let before_this =
            if this.is_some() { "(accepted_at < $3 OR (accepted_at = $3 AND id < $2))" } else { "accepted_at <= $3" };
        let outreach_cancelled = match this {
            Some((id, _)) => {
                sqlx::query_scalar::<_, String>("SELECT status FROM outreach WHERE id = $1")
                    .bind(id)
                    .fetch_one(&mut *conn)
                    .await?
                    == JobStatus::Cancelled.as_str()
            }
            None => false,
        };
        // Rule 11: another job of the kind counts when it was accepted earlier and may still be
        // sent, or, whenever it was accepted, when it is sent, its message is prepared, or its
        // send is in flight or in doubt (cut off mid-way). A job held, then released after a
        // later one went, must not send a second time.
        let active = JobStatus::sql_list(&[JobStatus::Queued, JobStatus::Deferred, JobStatus::Sent]);
        let other_active = |kind: Kind| {
            format!(
                "SELECT COUNT(*) FROM outreach o WHERE case_ref = $1 AND kind = '{}' AND id <> $2 AND o.test <= $4
                 AND ((status IN ({active}) AND {before_this})
                      OR status = 'sent'
                      OR EXISTS (SELECT 1 FROM messages m WHERE m.outreach_id = o.id
                                 AND (o.status = 'queued' OR m.status = 'sending')))",
                kind.as_str()
            )
        };
        let mut other = [false; Kind::ALL.len()];
        for (i, kind) in Kind::ALL.into_iter().enumerate() {
            let n: i64 = sqlx::query_scalar(dynamic(other_active(kind)))
                .bind(case_ref)
                .bind(this_id)
                .bind(accepted_at)
                .bind(i64::from(test))
                .fetch_one(&mut *conn)
                .await?;
            other[i] = n > 0;
        }

        let addresses: Vec<String> = contact::addresses_in(&req.contact).into_iter().collect();
        let suppressed = self
            .matching_keys(
                conn,
                "SELECT address_key FROM suppressions WHERE lifted_at IS NULL AND address_key IN",
                &addresses,
            )
            .await?;
        let numbers: Vec<String> =
            req.contact.phones.iter().filter_map(|p| contact::normalise_uk_mobile(&p.number)).collect();
        // Rule 7: recorded as someone else's on any case, this one included.
        let numbers_of_others = self
            .matching_keys(conn, "SELECT number_key FROM case_phones WHERE is_victims = 0 AND number_key IN", &numbers)
            .await?;
        let approved_templates = self.approved_template_set(conn).await?;
        Ok(CaseHistory {
            case_cancelled: case.cancelled_at.is_some(),
            outreach_cancelled,
            accepted_at: Some(crate::time::from_ms(accepted_at)),
            call_attempts: u32::try_from(case.call_attempts).unwrap_or(u32::MAX),
            declined: case.declined > 0,
            case_categories,
            case_priority: case.priority.0,
            case_safety_sensitive: case.safety_sensitive.0,
            other_pretext_active: other[0],
            other_information_pack_active: other[1],
            other_survey_active: other[2],
            suppressed,
            numbers_of_others,
            approved_templates,
        })
    }

    /// Those of `plain` whose keyed hash the query (ending in `IN`) finds.
    async fn matching_keys(
        &self,
        conn: &mut AnyConnection,
        select_in: &str,
        plain: &[String],
    ) -> Result<BTreeSet<String>> {
        if plain.is_empty() {
            return Ok(BTreeSet::new());
        }
        let sql = format!("{select_in} ({})", placeholders(1, plain.len()));
        let mut query = sqlx::query_scalar::<_, String>(dynamic(sql));
        let keys: Vec<String> = plain.iter().map(|p| self.address_key(p)).collect();
        for k in &keys {
            query = query.bind(k);
        }
        let found: BTreeSet<String> = query.fetch_all(&mut *conn).await?.into_iter().collect();
        Ok(plain.iter().zip(&keys).filter(|(_, k)| found.contains(*k)).map(|(p, _)| p.clone()).collect())
    }

    async fn approved_template_set(&self, conn: &mut AnyConnection) -> Result<BTreeSet<(String, Channel)>> {
        let rows: Vec<(String, String)> =
            // Rule 14 is about English: a job in another language without its own approved
            // version is sent the English one.
            sqlx::query_as("SELECT name, channel FROM template_versions WHERE state = 'approved' AND language = 'en'")
                .fetch_all(&mut *conn)
                .await?;
        Ok(rows.into_iter().filter_map(|(n, c)| Some((n, Channel::parse(&c)?))).collect())
    }
}
