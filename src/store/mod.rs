//! The persistence actor: the only owner of the SQLite connection. It runs on
//! its own thread (a `SyncArbiter`), so blocking database work never stalls
//! the actix event loops that serve HTTP and talk to Docker.

mod messages;
mod sessions;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix::{Actor, Addr, SyncArbiter, SyncContext};
use rusqlite::Connection;
use rusqlite_migration::{Migrations, M};

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
    ])
}

pub const DB_FILE: &str = "shipshape.db";

/// Opens (creating when needed) and migrates the database in `data_dir`.
pub fn open(data_dir: &Path) -> Result<Connection, StoreError> {
    std::fs::create_dir_all(data_dir).map_err(|source| StoreError::DataDir { path: data_dir.to_path_buf(), source })?;
    let path = data_dir.join(DB_FILE);
    let open_err = |source| StoreError::Open { path: path.clone(), source };
    let mut conn = Connection::open(&path).map_err(open_err)?;
    conn.busy_timeout(Duration::from_secs(5)).map_err(open_err)?;
    conn.pragma_update(None, "journal_mode", "WAL").map_err(open_err)?;
    conn.pragma_update(None, "synchronous", "NORMAL").map_err(open_err)?;
    conn.pragma_update(None, "foreign_keys", "ON").map_err(open_err)?;
    migrations().to_latest(&mut conn)?;
    Ok(conn)
}

/// The auto-update flags of a database another process owns, read only:
/// for `shipshape check`, which must not migrate or lock a running service's file.
/// A missing database simply has no flags.
pub fn read_auto_update(data_dir: &Path) -> Result<std::collections::HashMap<String, bool>, StoreError> {
    let path = data_dir.join(DB_FILE);
    if !path.exists() {
        return Ok(Default::default());
    }
    let open_err = |source| StoreError::Open { path: path.clone(), source };
    let conn = Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(open_err)?;
    conn.busy_timeout(Duration::from_secs(5)).map_err(open_err)?;
    let mut stmt = conn.prepare("SELECT container_name, enabled FROM auto_update")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, bool>(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
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
    fn open_fails_clearly_on_an_unusable_dir() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("file");
        std::fs::write(&file, b"x").expect("write");
        let err = open(&file.join("sub")).expect_err("a file is not a directory");
        assert!(err.to_string().starts_with("cannot create data directory"), "{err}");
    }
}
