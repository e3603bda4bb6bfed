//! Update jobs: the journal that lets an update survive a crash, and the
//! update history. The SQL lives in plain functions on a connection; the
//! handlers only pass the clock and the store's connection.
//!
//! Durability: every write is one transaction, committed before the handler
//! answers, so a step is on disk before the job carries it out. The database
//! runs in WAL mode with `synchronous=NORMAL`: a commit has been written to the
//! WAL file (not yet fsynced) when it returns, which survives the death of the
//! process, `kill -9` included — the case the journal is for. Only a power
//! loss or an OS crash can lose the last commits (the file stays consistent);
//! recovery then still has the engine's names and the job labels to go by.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, UNIX_EPOCH};

use actix::{Handler, Message};
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::{Deserialize, Serialize};

use super::{now_secs, Store, StoreError};

/// Finished jobs kept as history; older ones are deleted when a job finishes,
/// so the file cannot grow without bound on a host that updates often.
pub const HISTORY_KEEP: usize = 5000;

/// A closed set of names stored as TEXT: `Display`, `FromStr` (over `ALL`,
/// with an error type naming the bad value) and the SQLite conversions, all
/// from `as_str`.
macro_rules! stored_name {
    ($ty:ident, $err:ident, $msg:literal) => {
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        #[derive(Debug, thiserror::Error)]
        #[error($msg)]
        pub struct $err(pub String);

        impl FromStr for $ty {
            type Err = $err;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $ty::ALL.into_iter().find(|v| v.as_str() == s).ok_or_else(|| $err(s.to_string()))
            }
        }

        impl ToSql for $ty {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(self.as_str().into())
            }
        }

        impl FromSql for $ty {
            fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
                value.as_str()?.parse().map_err(|e| FromSqlError::Other(Box::new(e)))
            }
        }
    };
}

/// A step of an update job, journalled *before* it is carried out: after a
/// crash, the step found may or may not have happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobStep {
    /// The job and its plan are recorded; nothing has been touched yet.
    Planned,
    Created,
    RestartPolicyCleared,
    Stopped,
    RenamedOld,
    RenamedNew,
    Started,
    Verified,
    RemovedOld,
    RollbackStoppedNew,
    RollbackRenamedNew,
    RollbackRenamedOld,
    RollbackRestartPolicyRestored,
    RollbackStartedOld,
    RollbackRemovedNew,
}

impl JobStep {
    /// Every step, in the order a job goes through them; for tests that crash
    /// a job at each one.
    pub const ALL: [JobStep; 15] = [
        JobStep::Planned,
        JobStep::Created,
        JobStep::RestartPolicyCleared,
        JobStep::Stopped,
        JobStep::RenamedOld,
        JobStep::RenamedNew,
        JobStep::Started,
        JobStep::Verified,
        JobStep::RemovedOld,
        JobStep::RollbackStoppedNew,
        JobStep::RollbackRenamedNew,
        JobStep::RollbackRenamedOld,
        JobStep::RollbackRestartPolicyRestored,
        JobStep::RollbackStartedOld,
        JobStep::RollbackRemovedNew,
    ];

    /// The name stored in the journal; never rename one, old rows carry it.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStep::Planned => "planned",
            JobStep::Created => "created",
            JobStep::RestartPolicyCleared => "restart_policy_cleared",
            JobStep::Stopped => "stopped",
            JobStep::RenamedOld => "renamed_old",
            JobStep::RenamedNew => "renamed_new",
            JobStep::Started => "started",
            JobStep::Verified => "verified",
            JobStep::RemovedOld => "removed_old",
            JobStep::RollbackStoppedNew => "rollback_stopped_new",
            JobStep::RollbackRenamedNew => "rollback_renamed_new",
            JobStep::RollbackRenamedOld => "rollback_renamed_old",
            JobStep::RollbackRestartPolicyRestored => "rollback_restart_policy_restored",
            JobStep::RollbackStartedOld => "rollback_started_old",
            JobStep::RollbackRemovedNew => "rollback_removed_new",
        }
    }

    /// Whether the job had already decided to roll back.
    pub fn is_rollback(self) -> bool {
        self.as_str().starts_with("rollback_")
    }
}

stored_name!(JobStep, UnknownJobStep, "unknown job step {0:?}");

/// How a job ended; the history's `result`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobResult {
    Updated,
    RolledBack,
    Failed,
    /// The pulled image was the one the container already ran: nothing touched.
    Unchanged,
}

impl JobResult {
    pub const ALL: [JobResult; 4] =
        [JobResult::Updated, JobResult::RolledBack, JobResult::Failed, JobResult::Unchanged];

    /// The stored name, the same as the JSON one (the schema CHECKs it).
    pub fn as_str(self) -> &'static str {
        match self {
            JobResult::Updated => "updated",
            JobResult::RolledBack => "rolled_back",
            JobResult::Failed => "failed",
            JobResult::Unchanged => "unchanged",
        }
    }
}

stored_name!(JobResult, UnknownJobResult, "unknown job result {0:?}");

/// A whole journal row, as recovery needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRecord {
    pub id: String,
    pub container_id: String,
    pub container_name: String,
    pub image: String,
    pub from_image_id: String,
    pub to_image_id: Option<String>,
    pub from_digest: Option<String>,
    pub to_digest: Option<String>,
    pub new_container_id: Option<String>,
    pub step: JobStep,
    /// The JSON the job gave to `BeginJob`, unchanged.
    pub plan: String,
    /// Unix seconds.
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub result: Option<JobResult>,
    pub error: Option<String>,
    /// The engine the job runs on; `None` for a job journalled before
    /// engines had names (see [`AdoptUnnamedJobs`]).
    pub host: Option<String>,
}

const RECORD_COLUMNS: &str = "id, container_id, container_name, image, from_image_id, to_image_id, from_digest, \
     to_digest, new_container_id, step, plan, started_at, finished_at, result, error, host";

fn record_from_row(r: &Row<'_>) -> rusqlite::Result<JobRecord> {
    Ok(JobRecord {
        id: r.get(0)?,
        container_id: r.get(1)?,
        container_name: r.get(2)?,
        image: r.get(3)?,
        from_image_id: r.get(4)?,
        to_image_id: r.get(5)?,
        from_digest: r.get(6)?,
        to_digest: r.get(7)?,
        new_container_id: r.get(8)?,
        step: r.get(9)?,
        plan: r.get(10)?,
        started_at: r.get(11)?,
        finished_at: r.get(12)?,
        result: r.get(13)?,
        error: r.get(14)?,
        host: r.get(15)?,
    })
}

/// One finished job as `GET /api/history` and the websocket show it; these
/// fields are the API, add none without the contract (`host` is an
/// addition: absent for jobs from before engines had names).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistoryEntry {
    pub id: String,
    pub container_name: String,
    pub image: String,
    pub from_digest: Option<String>,
    pub to_digest: Option<String>,
    /// RFC 3339 UTC, whole seconds.
    pub started_at: String,
    pub finished_at: String,
    pub result: JobResult,
    pub error: Option<String>,
    /// The engine the container ran on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// `container`, or `service` for a Swarm service's update.
    pub kind: JobKind,
}

/// What a job updated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    #[default]
    Container,
    Service,
}

impl JobKind {
    fn as_str(self) -> &'static str {
        match self {
            JobKind::Container => "container",
            JobKind::Service => "service",
        }
    }
}

const HISTORY_COLUMNS: &str =
    "id, container_name, image, from_digest, to_digest, started_at, finished_at, result, error, host, kind";

fn history_from_row(r: &Row<'_>) -> rusqlite::Result<HistoryEntry> {
    Ok(HistoryEntry {
        id: r.get(0)?,
        container_name: r.get(1)?,
        image: r.get(2)?,
        from_digest: r.get(3)?,
        to_digest: r.get(4)?,
        started_at: rfc3339(r.get(5)?),
        finished_at: rfc3339(r.get(6)?),
        result: r.get(7)?,
        error: r.get(8)?,
        host: r.get(9)?,
        kind: if r.get::<_, String>(10)? == "service" { JobKind::Service } else { JobKind::Container },
    })
}

/// Unix seconds as RFC 3339 UTC, e.g. `2026-11-27T01:02:03Z`.
fn rfc3339(secs: i64) -> String {
    let at = UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).unwrap_or(0));
    humantime::format_rfc3339_seconds(at).to_string()
}

/// The error for a job id that has no unfinished row: journalling or
/// finishing a job that was never begun, or has already ended, is a bug in
/// the caller and must not silently rewrite history.
fn no_such_job() -> StoreError {
    StoreError::Sql(rusqlite::Error::QueryReturnedNoRows)
}

/// Records a new job at step `planned`. Refused when the id exists, the plan
/// is not JSON, the id is not 8–64 alphanumerics, or another job for the same
/// container name on the same engine is unfinished.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<(), StoreError>")]
pub struct BeginJob {
    pub id: String,
    pub container_id: String,
    pub container_name: String,
    pub image: String,
    pub from_image_id: String,
    pub to_image_id: Option<String>,
    pub from_digest: Option<String>,
    pub to_digest: Option<String>,
    /// JSON, serialised by the job.
    pub plan: String,
    /// The engine the container runs on.
    pub host: Option<String>,
    pub kind: JobKind,
}

fn begin_job(conn: &Connection, job: &BeginJob, now: i64) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO jobs (id, container_id, container_name, image, from_image_id, to_image_id, from_digest,
                           to_digest, step, plan, started_at, host, kind)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    )?
    .execute(params![
        job.id,
        job.container_id,
        job.container_name,
        job.image,
        job.from_image_id,
        job.to_image_id,
        job.from_digest,
        job.to_digest,
        JobStep::Planned,
        job.plan,
        now,
        job.host,
        job.kind.as_str()
    ])?;
    Ok(())
}

impl Handler<BeginJob> for Store {
    type Result = Result<(), StoreError>;
    fn handle(&mut self, msg: BeginJob, _: &mut Self::Context) -> Self::Result {
        begin_job(&self.conn, &msg, now_secs())
    }
}

/// Journals the step the job is about to carry out; `new_container_id`, when
/// given, records the new container (a `None` keeps the one recorded). An
/// unknown or finished job is an error.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<(), StoreError>")]
pub struct JournalStep {
    pub id: String,
    pub step: JobStep,
    pub new_container_id: Option<String>,
}

fn journal_step(conn: &Connection, msg: &JournalStep) -> Result<(), StoreError> {
    let changed = conn
        .prepare_cached(
            "UPDATE jobs SET step = ?2, new_container_id = COALESCE(?3, new_container_id)
             WHERE id = ?1 AND finished_at IS NULL",
        )?
        .execute(params![msg.id, msg.step, msg.new_container_id])?;
    if changed == 0 {
        return Err(no_such_job());
    }
    Ok(())
}

impl Handler<JournalStep> for Store {
    type Result = Result<(), StoreError>;
    fn handle(&mut self, msg: JournalStep, _: &mut Self::Context) -> Self::Result {
        journal_step(&self.conn, &msg)
    }
}

/// Ends a job: it leaves the journal and joins the history (and history
/// beyond the newest `HISTORY_KEEP` entries goes). `to_digest`, when given,
/// replaces the one recorded at the start. An unknown or finished job is an error.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<(), StoreError>")]
pub struct FinishJob {
    pub id: String,
    pub result: JobResult,
    pub error: Option<String>,
    pub to_digest: Option<String>,
}

fn finish_job(conn: &mut Connection, msg: &FinishJob, now: i64, keep: usize) -> Result<(), StoreError> {
    let tx = conn.transaction()?;
    let changed = tx
        .prepare_cached(
            "UPDATE jobs SET finished_at = ?2, result = ?3, error = ?4, to_digest = COALESCE(?5, to_digest)
             WHERE id = ?1 AND finished_at IS NULL",
        )?
        .execute(params![msg.id, now, msg.result, msg.error, msg.to_digest])?;
    if changed == 0 {
        return Err(no_such_job());
    }
    tx.prepare_cached(
        "DELETE FROM jobs WHERE rowid IN (SELECT rowid FROM jobs WHERE finished_at IS NOT NULL
                                          ORDER BY finished_at DESC, rowid DESC LIMIT -1 OFFSET ?1)",
    )?
    .execute(params![i64::try_from(keep).unwrap_or(i64::MAX)])?;
    tx.commit()?;
    Ok(())
}

impl Handler<FinishJob> for Store {
    type Result = Result<(), StoreError>;
    fn handle(&mut self, msg: FinishJob, _: &mut Self::Context) -> Self::Result {
        finish_job(&mut self.conn, &msg, now_secs(), HISTORY_KEEP)
    }
}

/// Every job a crash left unfinished, oldest first, for recovery at start.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Vec<JobRecord>, StoreError>")]
pub struct UnfinishedJobs;

fn unfinished_jobs(conn: &Connection) -> Result<Vec<JobRecord>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {RECORD_COLUMNS} FROM jobs WHERE finished_at IS NULL ORDER BY started_at, rowid"
    ))?;
    let rows = stmt.query_map([], record_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

impl Handler<UnfinishedJobs> for Store {
    type Result = Result<Vec<JobRecord>, StoreError>;
    fn handle(&mut self, _: UnfinishedJobs, _: &mut Self::Context) -> Self::Result {
        unfinished_jobs(&self.conn)
    }
}

/// Unfinished jobs journalled before engines had names ran on the one engine
/// there was: they are given `host` (the first configured engine's name), so
/// recovery goes there and the one-job-per-container rule holds across the
/// upgrade. Answers how many were.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<usize, StoreError>")]
pub struct AdoptUnnamedJobs {
    pub host: String,
}

fn adopt_unnamed_jobs(conn: &Connection, host: &str) -> Result<usize, StoreError> {
    Ok(conn
        .prepare_cached("UPDATE jobs SET host = ?1 WHERE host IS NULL AND finished_at IS NULL")?
        .execute(params![host])?)
}

impl Handler<AdoptUnnamedJobs> for Store {
    type Result = Result<usize, StoreError>;
    fn handle(&mut self, msg: AdoptUnnamedJobs, _: &mut Self::Context) -> Self::Result {
        adopt_unnamed_jobs(&self.conn, &msg.host)
    }
}

/// Finished jobs, newest first (by finish time, then by start order).
/// `limit` is used as given: the caller clamps the API's `limit` to 1..=500.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Vec<HistoryEntry>, StoreError>")]
pub struct History {
    pub limit: usize,
}

fn history(conn: &Connection, limit: usize) -> Result<Vec<HistoryEntry>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {HISTORY_COLUMNS} FROM jobs WHERE finished_at IS NOT NULL
         ORDER BY finished_at DESC, rowid DESC LIMIT ?1"
    ))?;
    let rows = stmt.query_map(params![i64::try_from(limit).unwrap_or(i64::MAX)], history_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

impl Handler<History> for Store {
    type Result = Result<Vec<HistoryEntry>, StoreError>;
    fn handle(&mut self, msg: History, _: &mut Self::Context) -> Self::Result {
        history(&self.conn, msg.limit)
    }
}

/// The history entry of one finished job (`None` while it runs or when it is
/// unknown): what the websocket announces once `FinishJob` has answered.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Option<HistoryEntry>, StoreError>")]
pub struct HistoryEntryOf {
    pub id: String,
}

fn history_entry(conn: &Connection, id: &str) -> Result<Option<HistoryEntry>, StoreError> {
    Ok(conn
        .prepare_cached(&format!("SELECT {HISTORY_COLUMNS} FROM jobs WHERE id = ?1 AND finished_at IS NOT NULL"))?
        .query_row(params![id], history_from_row)
        .optional()?)
}

impl Handler<HistoryEntryOf> for Store {
    type Result = Result<Option<HistoryEntry>, StoreError>;
    fn handle(&mut self, msg: HistoryEntryOf, _: &mut Self::Context) -> Self::Result {
        history_entry(&self.conn, &msg.id)
    }
}

#[cfg(test)]
mod tests {
    use super::super::open;
    use super::*;
    use serde_json::json;

    /// 2026-11-27T01:02:03Z
    const T0: i64 = 1_795_741_323;

    fn job(id: &str, name: &str) -> BeginJob {
        BeginJob {
            id: id.to_string(),
            container_id: format!("{id}{}", "0".repeat(56)),
            container_name: name.to_string(),
            image: "127.0.0.1:5000/app:1.2".to_string(),
            from_image_id: "sha256:aaaa".to_string(),
            to_image_id: Some("sha256:bbbb".to_string()),
            from_digest: Some("sha256:aaaaaaaaaa".to_string()),
            to_digest: None,
            plan: json!({"name": name, "running": true, "restart_policy": {"Name": "always"}}).to_string(),
            host: None,
            kind: JobKind::Container,
        }
    }

    fn step(id: &str, step: JobStep) -> JournalStep {
        JournalStep { id: id.to_string(), step, new_container_id: None }
    }

    fn finish(id: &str, result: JobResult) -> FinishJob {
        FinishJob { id: id.to_string(), result, error: None, to_digest: None }
    }

    fn ids(entries: &[HistoryEntry]) -> Vec<&str> {
        entries.iter().map(|e| e.id.as_str()).collect()
    }

    #[test]
    fn a_finished_job_appears_in_the_history_with_exactly_the_api_fields() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut conn = open(dir.path()).expect("open");
        begin_job(&conn, &job("0123abcd", "web"), T0).expect("begin");
        for s in [JobStep::Created, JobStep::Stopped, JobStep::Started, JobStep::Verified, JobStep::RemovedOld] {
            journal_step(&conn, &step("0123abcd", s)).expect("step");
        }
        assert!(history(&conn, 50).expect("history").is_empty(), "an unfinished job is not history");
        assert_eq!(history_entry(&conn, "0123abcd").expect("entry"), None);
        let done =
            FinishJob { to_digest: Some("sha256:bbbbbbbbbb".to_string()), ..finish("0123abcd", JobResult::Updated) };
        finish_job(&mut conn, &done, T0 + 7, HISTORY_KEEP).expect("finish");

        let entries = history(&conn, 50).expect("history");
        let expected = json!([{
            "id": "0123abcd",
            "container_name": "web",
            "image": "127.0.0.1:5000/app:1.2",
            "from_digest": "sha256:aaaaaaaaaa",
            "to_digest": "sha256:bbbbbbbbbb",
            "started_at": "2026-11-27T01:02:03Z",
            "finished_at": "2026-11-27T01:02:10Z",
            "result": "updated",
            "error": null,
            "kind": "container",
        }]);
        assert_eq!(serde_json::to_value(&entries).expect("json"), expected);
        assert_eq!(history_entry(&conn, "0123abcd").expect("entry").as_ref(), entries.first());
        assert!(unfinished_jobs(&conn).expect("unfinished").is_empty());
    }

    #[test]
    fn a_rolled_back_job_keeps_its_error_and_the_digest_given_at_the_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut conn = open(dir.path()).expect("open");
        let begun = BeginJob { to_digest: Some("sha256:cccccccccc".to_string()), ..job("feedbeef", "db") };
        begin_job(&conn, &begun, T0).expect("begin");
        journal_step(&conn, &step("feedbeef", JobStep::RollbackStartedOld)).expect("step");
        let failed = FinishJob {
            error: Some("rolled back: exited with code 1".to_string()),
            ..finish("feedbeef", JobResult::RolledBack)
        };
        finish_job(&mut conn, &failed, T0, HISTORY_KEEP).expect("finish");
        let entry = serde_json::to_value(history_entry(&conn, "feedbeef").expect("entry")).expect("json");
        assert_eq!(entry["result"], "rolled_back");
        assert_eq!(entry["error"], "rolled back: exited with code 1");
        assert_eq!(entry["to_digest"], "sha256:cccccccccc");
    }

    #[test]
    fn the_last_step_written_survives_closing_and_reopening_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let conn = open(dir.path()).expect("open");
        let begun = job("0a0a0a0a", "web");
        begin_job(&conn, &begun, T0).expect("begin");
        let created = JournalStep { new_container_id: Some("n".repeat(64)), ..step("0a0a0a0a", JobStep::Created) };
        journal_step(&conn, &created).expect("created");
        journal_step(&conn, &step("0a0a0a0a", JobStep::RestartPolicyCleared)).expect("policy");
        journal_step(&conn, &step("0a0a0a0a", JobStep::Stopped)).expect("stopped");
        drop(conn);

        let conn = open(dir.path()).expect("reopen");
        let found = unfinished_jobs(&conn).expect("unfinished");
        let expected = JobRecord {
            id: begun.id,
            container_id: begun.container_id,
            container_name: begun.container_name,
            image: begun.image,
            from_image_id: begun.from_image_id,
            to_image_id: begun.to_image_id,
            from_digest: begun.from_digest,
            to_digest: None,
            new_container_id: Some("n".repeat(64)),
            step: JobStep::Stopped,
            plan: begun.plan,
            started_at: T0,
            finished_at: None,
            result: None,
            error: None,
            host: None,
        };
        assert_eq!(found, vec![expected]);
    }

    /// A killed process closes nothing: no checkpoint, the step only in the
    /// WAL. Copying the files while the writer still has them open leaves
    /// exactly what a `kill -9` leaves.
    #[test]
    fn the_last_step_written_survives_a_process_that_never_closed_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let conn = open(dir.path()).expect("open");
        begin_job(&conn, &job("0b0b0b0b", "web"), T0).expect("begin");
        journal_step(&conn, &step("0b0b0b0b", JobStep::RenamedOld)).expect("renamed");
        let wal = dir.path().join(format!("{}-wal", super::super::DB_FILE));
        assert!(std::fs::metadata(&wal).map(|m| m.len() > 0).unwrap_or(false), "the commits are in the WAL");

        let after = tempfile::tempdir().expect("tempdir");
        for suffix in ["", "-wal", "-shm"] {
            let name = format!("{}{suffix}", super::super::DB_FILE);
            if dir.path().join(&name).exists() {
                std::fs::copy(dir.path().join(&name), after.path().join(&name)).expect("copy");
            }
        }
        let reopened = open(after.path()).expect("open the copy");
        let found = unfinished_jobs(&reopened).expect("unfinished");
        assert_eq!(
            found.iter().map(|j| (j.id.as_str(), j.step)).collect::<Vec<_>>(),
            [("0b0b0b0b", JobStep::RenamedOld)]
        );
        drop(conn);
    }

    #[test]
    fn unfinished_jobs_are_listed_oldest_first_and_finished_ones_are_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut conn = open(dir.path()).expect("open");
        begin_job(&conn, &job("00000003", "c"), T0 + 5).expect("begin");
        begin_job(&conn, &job("00000001", "a"), T0).expect("begin");
        begin_job(&conn, &job("00000002", "b"), T0).expect("begin");
        begin_job(&conn, &job("00000004", "d"), T0 - 5).expect("begin");
        finish_job(&mut conn, &finish("00000004", JobResult::Failed), T0, HISTORY_KEEP).expect("finish");
        let found = unfinished_jobs(&conn).expect("unfinished");
        assert_eq!(found.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(), ["00000001", "00000002", "00000003"]);
        assert!(found.iter().all(|j| j.step == JobStep::Planned));
    }

    #[test]
    fn history_is_newest_first_ties_by_start_order_and_limited() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut conn = open(dir.path()).expect("open");
        for (i, id) in ["0000000a", "0000000b", "0000000c", "0000000d", "0000000e"].into_iter().enumerate() {
            begin_job(&conn, &job(id, id), T0 + i as i64).expect("begin");
        }
        // c and a finish in the same second: the later-begun one counts as newer.
        for (id, at) in [("0000000b", T0 + 30), ("0000000c", T0 + 20), ("0000000a", T0 + 20), ("0000000d", T0 + 40)] {
            finish_job(&mut conn, &finish(id, JobResult::Unchanged), at, HISTORY_KEEP).expect("finish");
        }
        let all = history(&conn, 500).expect("history");
        assert_eq!(ids(&all), ["0000000d", "0000000b", "0000000c", "0000000a"], "e is still running");
        assert_eq!(ids(&history(&conn, 2).expect("history")), ["0000000d", "0000000b"]);
        assert_eq!(ids(&history(&conn, 1).expect("history")), ["0000000d"]);
        assert!(history(&conn, 0).expect("history").is_empty());
    }

    #[test]
    fn journalling_or_finishing_an_unknown_or_finished_job_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut conn = open(dir.path()).expect("open");
        assert!(finish_job(&mut conn, &finish("deadbeef", JobResult::Updated), T0, HISTORY_KEEP).is_err());
        assert!(journal_step(&conn, &step("deadbeef", JobStep::Created)).is_err());
        assert!(history(&conn, 10).expect("history").is_empty(), "nothing was created by the failed calls");
        assert!(unfinished_jobs(&conn).expect("unfinished").is_empty());

        begin_job(&conn, &job("deadbeef", "web"), T0).expect("begin");
        finish_job(&mut conn, &finish("deadbeef", JobResult::Updated), T0 + 1, HISTORY_KEEP).expect("finish");
        let again = FinishJob { error: Some("late".to_string()), ..finish("deadbeef", JobResult::Failed) };
        assert!(finish_job(&mut conn, &again, T0 + 2, HISTORY_KEEP).is_err(), "history is not rewritten");
        assert!(journal_step(&conn, &step("deadbeef", JobStep::Started)).is_err());
        let entry = history_entry(&conn, "deadbeef").expect("entry").expect("finished");
        assert_eq!(
            (entry.result, entry.error, entry.finished_at.as_str()),
            (JobResult::Updated, None, "2026-11-27T01:02:04Z")
        );
    }

    #[test]
    fn history_keeps_only_the_newest_entries_and_never_prunes_running_jobs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut conn = open(dir.path()).expect("open");
        begin_job(&conn, &job("running0", "running"), T0).expect("begin");
        for i in 0..6 {
            let id = format!("done000{i}");
            begin_job(&conn, &job(&id, &id), T0).expect("begin");
            finish_job(&mut conn, &finish(&id, JobResult::Updated), T0 + i, 3).expect("finish");
        }
        assert_eq!(ids(&history(&conn, 500).expect("history")), ["done0005", "done0004", "done0003"]);
        let total: i64 = conn.query_row("SELECT count(*) FROM jobs", [], |r| r.get(0)).expect("count");
        assert_eq!(total, 4, "three finished and the running one");
        assert_eq!(unfinished_jobs(&conn).expect("unfinished").len(), 1);
    }

    #[test]
    fn the_schema_refuses_what_recovery_could_not_use() {
        let dir = tempfile::tempdir().expect("tempdir");
        let conn = open(dir.path()).expect("open");
        let bad_plan = BeginJob { plan: "{not json".to_string(), ..job("11111111", "web") };
        assert!(begin_job(&conn, &bad_plan, T0).is_err(), "plan must be JSON");
        for id in ["short", "has space1", "../../etc0", "ab-cd-ef-12"] {
            assert!(begin_job(&conn, &job(id, "web"), T0).is_err(), "op id {id:?}");
        }
        begin_job(&conn, &job("22222222", "web"), T0).expect("begin");
        assert!(begin_job(&conn, &job("22222222", "other"), T0).is_err(), "duplicate id");
        assert!(begin_job(&conn, &job("33333333", "web"), T0).is_err(), "a second job on the same container");
        let unknown = conn.execute("UPDATE jobs SET result = 'maybe', finished_at = 1 WHERE id = '22222222'", []);
        assert!(unknown.is_err(), "results are CHECKed");
        let half = conn.execute("UPDATE jobs SET finished_at = 1 WHERE id = '22222222'", []);
        assert!(half.is_err(), "finished without a result");
        assert_eq!(unfinished_jobs(&conn).expect("unfinished").len(), 1);
    }

    #[test]
    fn one_unfinished_job_per_container_name_on_each_engine_and_old_jobs_are_adopted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut conn = open(dir.path()).expect("open");
        let on = |id: &str, host: Option<&str>| BeginJob { host: host.map(str::to_string), ..job(id, "web") };
        begin_job(&conn, &on("0000000a", None), T0).expect("a job from before engines had names");
        begin_job(&conn, &on("0000000b", Some("nas")), T0).expect("web on another engine");
        assert!(begin_job(&conn, &on("0000000c", Some("nas")), T0).is_err(), "a second job on nas's web");
        assert_eq!(adopt_unnamed_jobs(&conn, "local").expect("adopt"), 1);
        assert!(begin_job(&conn, &on("0000000d", Some("local")), T0).is_err(), "the adopted job holds local's web");
        let hosts: Vec<_> = unfinished_jobs(&conn).expect("unfinished").into_iter().map(|j| j.host).collect();
        assert_eq!(hosts, [Some("local".to_string()), Some("nas".to_string())]);
        finish_job(&mut conn, &finish("0000000b", JobResult::Updated), T0 + 1, HISTORY_KEEP).expect("finish");
        let entry = history_entry(&conn, "0000000b").expect("entry").expect("finished");
        assert_eq!(serde_json::to_value(&entry).expect("json")["host"], "nas");
        assert!(conn.execute("UPDATE jobs SET host = '' WHERE id = '0000000a'", []).is_err(), "no empty name");
    }

    #[test]
    fn an_unknown_step_in_the_journal_is_a_clear_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let conn = open(dir.path()).expect("open");
        begin_job(&conn, &job("44444444", "web"), T0).expect("begin");
        conn.execute("UPDATE jobs SET step = 'teleported' WHERE id = '44444444'", []).expect("raw update");
        let err = unfinished_jobs(&conn).expect_err("not a step");
        assert!(err.to_string().contains("unknown job step \"teleported\""), "{err}");
    }

    #[test]
    fn step_and_result_names_round_trip_and_match_serde() {
        for s in JobStep::ALL {
            assert_eq!(s.as_str().parse::<JobStep>().expect("parse"), s);
            assert_eq!(s.is_rollback(), s.as_str().starts_with("rollback"));
        }
        let mut names: Vec<_> = JobStep::ALL.iter().map(|s| s.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), JobStep::ALL.len(), "step names are distinct");
        for r in JobResult::ALL {
            assert_eq!(r.as_str().parse::<JobResult>().expect("parse"), r);
            assert_eq!(serde_json::to_value(r).expect("json"), json!(r.as_str()));
        }
        assert!("Updated".parse::<JobResult>().is_err());
    }

    #[test]
    fn timestamps_are_rfc3339_utc_seconds() {
        assert_eq!(rfc3339(T0), "2026-11-27T01:02:03Z");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(-5), "1970-01-01T00:00:00Z");
    }

    /// The handlers, through a running `Store` actor on its own thread.
    #[actix::test]
    async fn the_store_actor_answers_the_job_messages() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::start(open(dir.path()).expect("open"), dir.path().to_path_buf());
        store.send(job("abcdef01", "web")).await.expect("mailbox").expect("begin");
        let created = JournalStep { new_container_id: Some("f".repeat(64)), ..step("abcdef01", JobStep::Created) };
        store.send(created).await.expect("mailbox").expect("step");
        let running = store.send(UnfinishedJobs).await.expect("mailbox").expect("unfinished");
        assert_eq!(
            running.iter().map(|j| (j.step, j.new_container_id.as_deref())).collect::<Vec<_>>(),
            [(JobStep::Created, Some("f".repeat(64).as_str()))]
        );
        store.send(finish("abcdef01", JobResult::Updated)).await.expect("mailbox").expect("finish");
        assert!(store.send(finish("abcdef01", JobResult::Updated)).await.expect("mailbox").is_err());
        let entries = store.send(History { limit: 50 }).await.expect("mailbox").expect("history");
        assert_eq!(ids(&entries), ["abcdef01"]);
        let entry = store.send(HistoryEntryOf { id: "abcdef01".to_string() }).await.expect("mailbox").expect("entry");
        assert_eq!(entry.as_ref(), entries.first());
        assert!(store.send(UnfinishedJobs).await.expect("mailbox").expect("unfinished").is_empty());
    }
}
