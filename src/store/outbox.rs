//! The transactional outbox of queue work. A decision that needs the queue writes a row here in
//! its own transaction; the relay later claims due rows, pushes them onto the queue and deletes
//! them. A crash between push and delete pushes twice, which the worker tolerates (it checks the
//! job's state first); a crash before the push loses nothing.

use sqlx::AnyConnection;

use super::{Result, Store, Writes, dynamic};

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DueJob {
    pub id: i64,
    pub outreach_id: String,
}

impl Store {
    /// Ask for `outreach_id` to be worked on at `run_at` (ms).
    pub async fn enqueue(&self, conn: &mut AnyConnection, outreach_id: &str, run_at: i64) -> Result<()> {
        sqlx::query("INSERT INTO job_outbox (outreach_id, run_at) VALUES ($1, $2)")
            .bind(outreach_id)
            .bind(run_at)
            .execute(conn)
            .await?;
        Ok(())
    }

    /// `enqueue` for many jobs: (outreach id, run at) each, in one statement.
    pub fn enqueue_all(&self, writes: &mut Writes, jobs: &[(&str, i64)]) {
        if jobs.is_empty() {
            return;
        }
        writes.push(
            "INSERT INTO job_outbox (outreach_id, run_at) SELECT outreach_id, run_at FROM $rows AS v",
            &[("outreach_id", "text"), ("run_at", "bigint")],
            super::json(jobs),
        );
    }

    /// Claim up to `limit` due rows for `lease_ms`. Two relays never claim the same row while a
    /// lease runs: the outer condition is checked again on the locked row.
    pub async fn claim_due_jobs(&self, now: i64, lease_ms: i64, limit: i64) -> Result<Vec<DueJob>> {
        let skip_locked = match self.dialect {
            super::Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
            super::Dialect::Sqlite => "",
        };
        let sql = format!(
            "UPDATE job_outbox SET claimed_until = $1
             WHERE claimed_until <= $2 AND id IN (
                 SELECT id FROM job_outbox WHERE run_at <= $2 AND claimed_until <= $2
                 ORDER BY run_at, id LIMIT $3{skip_locked})
             RETURNING id, outreach_id"
        );
        let query = sqlx::query_as(dynamic(sql)).bind(now + lease_ms).bind(now).bind(limit);
        Ok(match self.dialect {
            // One statement, atomic on its own: no BEGIN and COMMIT round trips.
            super::Dialect::Postgres => query.fetch_all(&self.pool).await?,
            // In this process's write turn (see `Store::begin`).
            super::Dialect::Sqlite => {
                let mut tx = self.begin().await?;
                let jobs = query.fetch_all(&mut *tx).await?;
                tx.commit().await?;
                jobs
            }
        })
    }

    /// The claimed rows are on the queue now.
    pub async fn delete_jobs(&self, ids: &[i64]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let sql = format!("DELETE FROM job_outbox WHERE {}", self.dialect.in_json("id", 1, "bigint"));
        sqlx::query(dynamic(sql)).bind(super::json(ids)).execute(&self.pool).await?;
        Ok(())
    }

    /// Give claimed rows back before their lease runs out (the queue did not take them).
    pub async fn release_jobs(&self, ids: &[i64]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let sql = format!("UPDATE job_outbox SET claimed_until = 0 WHERE {}", self.dialect.in_json("id", 1, "bigint"));
        sqlx::query(dynamic(sql)).bind(super::json(ids)).execute(&self.pool).await?;
        Ok(())
    }

    /// Put back on the outbox any job that should be on the queue but is not: queued and untouched
    /// since `stale_before`, or deferred past `stale_before`, with no outbox row. This catches work
    /// the queue lost (a flushed Redis, a job the queue gave up on); running it twice is harmless.
    pub async fn requeue_stale(&self, now: i64, stale_before: i64) -> Result<u64> {
        let mut tx = self.begin().await?;
        let requeued = sqlx::query(
            "INSERT INTO job_outbox (outreach_id, run_at)
             SELECT o.id, $1 FROM outreach o
             WHERE ((o.status = 'queued' AND o.updated_at < $2) OR (o.status = 'deferred' AND o.not_before < $2))
               AND NOT EXISTS (SELECT 1 FROM job_outbox j WHERE j.outreach_id = o.id)",
        )
        .bind(now)
        .bind(stale_before)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(requeued)
    }

    /// The backlog, for the queue metrics: how many outreach jobs are due and waiting for a
    /// worker now, and since when the oldest has been due. Read from the jobs themselves, so it is
    /// the same whichever backend holds the queue (the relay moves due work off the outbox within
    /// a second). A job is waiting when it is `queued` or `deferred` and
    /// - it has a row on the outbox: due at that row's run time (work a decision, a release or a
    ///   retry put there, not yet moved to the queue; a future row is a wait, not a backlog);
    /// - else, `queued`: on the queue (or lost by it) since it was last updated (accepted,
    ///   released, requeued, or for a retry the failure that scheduled it);
    /// - else, `deferred`: due at its `not_before`.
    pub async fn queue_backlog(&self, now: i64) -> Result<(i64, Option<i64>)> {
        Ok(sqlx::query_as(
            "SELECT COUNT(*), MIN(w.due) FROM (
               SELECT CASE WHEN j.run_at IS NOT NULL THEN j.run_at
                           WHEN o.status = 'queued' THEN o.updated_at
                           ELSE o.not_before END AS due
               FROM outreach o
               LEFT JOIN (SELECT outreach_id, MIN(run_at) AS run_at FROM job_outbox GROUP BY outreach_id) j
                 ON j.outreach_id = o.id
               WHERE o.status IN ('queued', 'deferred')
             ) w WHERE w.due <= $1",
        )
        .bind(now)
        .fetch_one(&self.pool)
        .await?)
    }
}
