//! The persistence actor: the only owner of the SQLite connection. It runs on
//! its own thread (a `SyncArbiter`), so blocking database work never stalls
//! the actix event loops that serve HTTP and talk to Docker.

mod jobs;
mod messages;
mod sessions;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix::{Actor, Addr, SyncArbiter, SyncContext};
use rusqlite::Connection;
use rusqlite_migration::{Migrations, M};

pub use jobs::*;
pub use messages::*;
pub use sessions::*;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create data directory {path}: {source}")]
    DataDir { path: PathBuf, source: std::io::Error },
    #[error("database {path}: {source}")]
    Open { path: PathBuf, source: rusqlite::Error },
    #[error("database migration failed: {0}")]
    Migration(#[from] rusqlite_migration::Error),
    #[error("database error: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("the store is not running")]
    Unavailable,
}

/// The migrations in `migrations/`, applied in order; SQLite's `user_version`
/// records how far a database has come.
fn migrations() -> Migrations<'static> {
    Migrations::new(vec![
        M::up(include_str!("../../migrations/0001_auto_update.sql")),
        M::up(include_str!("../../migrations/0002_auth.sql")),
        M::up(include_str!("../../migrations/0003_jobs.sql")),
        M::up(include_str!("../../migrations/0004_hashed_session_ids.sql")),
        M::up(include_str!("../../migrations/0005_repo_tags.sql")),
        M::up(include_str!("../../migrations/0006_hosts.sql")),
        M::up(include_str!("../../migrations/0007_job_kind.sql")),
    ])
}

pub const DB_FILE: &str = "shipshape.db";

/// Opens (creating when needed) and migrates the database in `data_dir`.
/// The directory and the database files are the owner's alone: they hold
/// the cookie key and the sessions.
pub fn open(data_dir: &Path) -> Result<Connection, StoreError> {
    let dir_err = |source| StoreError::DataDir { path: data_dir.to_path_buf(), source };
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(data_dir).map_err(dir_err)?;
    }
    restrict(data_dir, 0o700).map_err(dir_err)?;
    let path = data_dir.join(DB_FILE);
    create_private(&path).map_err(dir_err)?;
    let open_err = |source| StoreError::Open { path: path.clone(), source };
    let mut conn = Connection::open(&path).map_err(open_err)?;
    conn.busy_timeout(Duration::from_secs(5)).map_err(open_err)?;
    conn.pragma_update(None, "journal_mode", "WAL").map_err(open_err)?;
    conn.pragma_update(None, "synchronous", "NORMAL").map_err(open_err)?;
    conn.pragma_update(None, "foreign_keys", "ON").map_err(open_err)?;
    migrations().to_latest(&mut conn)?;
    // SQLite gives -wal and -shm the main file's mode, but files left by an
    // older version may be looser.
    for suffix in ["", "-wal", "-shm"] {
        let file = data_dir.join(format!("{DB_FILE}{suffix}"));
        if file.exists() {
            restrict(&file, 0o600).map_err(dir_err)?;
        }
    }
    Ok(conn)
}

/// Takes group and other permissions away from `path`, warning when it had any.
fn restrict(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let current = std::fs::metadata(path)?.permissions().mode() & 0o777;
    if current & 0o077 != 0 {
        tracing::warn!(path = %path.display(), "was readable by others (mode {current:o}); now {mode:o}");
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

/// Creates an empty database file readable by the owner only, so SQLite never
/// creates it (or its -wal and -shm files) with the umask's looser mode.
fn create_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// What `shipshape check` reads of a database another process owns: the
/// auto-update flags and the kept tag listings (repository → JSON). Read
/// only, with one connection: it must not migrate or lock a running
/// service's file. A missing database has neither; one from before the tag
/// cache has no listings.
pub fn read_for_check(data_dir: &Path) -> Result<CheckData, StoreError> {
    let path = data_dir.join(DB_FILE);
    if !path.exists() {
        return Ok(CheckData::default());
    }
    let open_err = |source| StoreError::Open { path: path.clone(), source };
    let conn = Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(open_err)?;
    conn.busy_timeout(Duration::from_secs(5)).map_err(open_err)?;
    let mut stmt = conn.prepare("SELECT container_name, enabled FROM auto_update")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, bool>(1)?)))?;
    let auto_update = rows.collect::<Result<_, _>>()?;
    let repo_tags = match conn.prepare("SELECT repository, data FROM repo_tags") {
        Ok(mut stmt) => {
            let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
            rows.collect::<Result<_, _>>()?
        }
        Err(rusqlite::Error::SqliteFailure(_, Some(message))) if message.contains("no such table") => {
            Default::default()
        }
        Err(e) => return Err(e.into()),
    };
    Ok(CheckData { auto_update, repo_tags })
}

#[derive(Debug, Default)]
pub struct CheckData {
    pub auto_update: std::collections::HashMap<String, bool>,
    pub repo_tags: std::collections::HashMap<String, String>,
}

pub struct Store {
    conn: Connection,
}

impl Actor for Store {
    type Context = SyncContext<Self>;
}

impl Store {
    /// Starts the store on its own thread with a connection opened by `open`.
    pub fn start(conn: Connection, data_dir: PathBuf) -> Addr<Store> {
        let first = std::sync::Mutex::new(Some(conn));
        SyncArbiter::start(1, move || {
            // The first start gets the connection main already validated; a
            // restart after a panic reopens the same file.
            let conn = first.lock().ok().and_then(|mut c| c.take());
            let conn = match conn {
                Some(c) => c,
                None => match open(&data_dir) {
                    Ok(c) => c,
                    Err(e) => panic!("store cannot reopen its database: {e}"),
                },
            };
            Store { conn }
        })
    }
}

fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_valid() {
        assert!(migrations().validate().is_ok());
    }

    #[test]
    fn open_creates_the_data_dir_and_is_idempotent() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("nested/data");
        drop(open(&data).expect("first open"));
        let conn = open(&data).expect("second open");
        let mode: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0)).expect("pragma");
        assert_eq!(mode, "wal");
    }

    #[test]
    fn data_is_private_and_looser_modes_are_fixed() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let conn = open(&data).expect("open");
        conn.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);").expect("write");
        assert_eq!(mode(&data), 0o700);
        for suffix in ["", "-wal", "-shm"] {
            assert_eq!(mode(&data.join(format!("{DB_FILE}{suffix}"))), 0o600, "{suffix}");
        }
        drop(conn);
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        std::fs::set_permissions(data.join(DB_FILE), std::fs::Permissions::from_mode(0o644)).expect("chmod");
        drop(open(&data).expect("reopen"));
        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(&data.join(DB_FILE)), 0o600);
    }

    #[test]
    fn open_fails_clearly_on_an_unusable_dir() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("file");
        std::fs::write(&file, b"x").expect("write");
        let err = open(&file.join("sub")).expect_err("a file is not a directory");
        assert!(err.to_string().starts_with("cannot create data directory"), "{err}");
    }
}
