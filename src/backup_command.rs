//! `shipshape backup <file>`: a consistent copy of the database while the
//! service runs. Copying `shipshape.db` with `cp` can catch it mid-write and
//! misses what still sits in its -wal file; SQLite's online backup API reads
//! one consistent snapshot instead, and WAL mode lets the service keep
//! writing meanwhile.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::backup::StepResult;
use rusqlite::{Connection, OpenFlags};

use crate::config::BackupArgs;
use crate::store::DB_FILE;

/// How long to wait for a lock the service holds (it holds them briefly).
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("no database at {0} (is SHIPSHAPE_DATA_DIR / --data-dir the service's?)")]
    NoDatabase(PathBuf),
    #[error("{0} already exists: not overwriting it (choose a new file name)")]
    Exists(PathBuf),
    #[error("cannot create {path}: {source}")]
    Create { path: PathBuf, source: std::io::Error },
    #[error("cannot open {path}: {source}")]
    Open { path: PathBuf, source: rusqlite::Error },
    #[error("backup of {from} into {to} failed: {source}")]
    Copy { from: PathBuf, to: PathBuf, source: rusqlite::Error },
    #[error("the backup in {path} does not pass SQLite's integrity check: {answer}")]
    Corrupt { path: PathBuf, answer: String },
}

/// Copies `$data_dir/shipshape.db` into `args.file`, a new file readable by
/// the owner only (it holds the cookie key and the sessions). On failure the
/// partial file is removed; an existing file is never touched.
pub fn run(args: &BackupArgs) -> Result<(), BackupError> {
    let source = args.data_dir.join(DB_FILE);
    if !source.is_file() {
        return Err(BackupError::NoDatabase(source));
    }
    create_private(&args.file)?;
    let result = copy(&source, &args.file);
    if result.is_err() {
        for suffix in ["", "-journal", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", args.file.display()));
        }
    }
    result
}

/// The new file is made here, not by SQLite, so it is never looser than
/// 0600 whatever the umask, and `create_new` refuses an existing one
/// atomically (no check-then-create race).
fn create_private(path: &Path) -> Result<(), BackupError> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(BackupError::Exists(path.to_path_buf())),
        Err(source) => Err(BackupError::Create { path: path.to_path_buf(), source }),
    }
}

fn copy(source: &Path, target: &Path) -> Result<(), BackupError> {
    // Read-write without CREATE: the file must exist, and a WAL database is
    // read reliably only by a connection that may use its -shm file.
    let src = Connection::open_with_flags(source, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(|e| BackupError::Open { path: source.to_path_buf(), source: e })?;
    src.busy_timeout(BUSY_TIMEOUT).map_err(|e| BackupError::Open { path: source.to_path_buf(), source: e })?;
    let mut dst = Connection::open(target).map_err(|e| BackupError::Open { path: target.to_path_buf(), source: e })?;
    let copy_err = |e| BackupError::Copy { from: source.to_path_buf(), to: target.to_path_buf(), source: e };
    {
        // All pages in one step: one read transaction, one snapshot; a step
        // at a time would start over whenever the service wrote in between.
        let backup = rusqlite::backup::Backup::new(&src, &mut dst).map_err(copy_err)?;
        let deadline = Instant::now() + BUSY_TIMEOUT;
        loop {
            match backup.step(-1).map_err(copy_err)? {
                StepResult::Done => break,
                // The service holds a lock for a moment: try again, not forever.
                _ if Instant::now() >= deadline => {
                    return Err(copy_err(rusqlite::Error::SqliteFailure(
                        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
                        Some(format!("database still busy after {BUSY_TIMEOUT:?}")),
                    )))
                }
                _ => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
    drop(src);
    // A rollback-journal file stands alone: no -wal beside it to lose. The
    // service switches it back to WAL when it opens it.
    dst.pragma_update(None, "journal_mode", "DELETE").map_err(copy_err)?;
    let answer: String = dst.pragma_query_value(None, "quick_check", |r| r.get(0)).map_err(copy_err)?;
    if answer != "ok" {
        return Err(BackupError::Corrupt { path: target.to_path_buf(), answer });
    }
    dst.close().map_err(|(_, e)| copy_err(e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(data_dir: &Path, file: &Path) -> BackupArgs {
        BackupArgs { data_dir: data_dir.to_path_buf(), file: file.to_path_buf() }
    }

    #[test]
    fn copies_a_live_database_into_a_private_new_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let conn = crate::store::open(&data).expect("open");
        conn.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (42);").expect("write");
        let file = dir.path().join("copy.db");
        run(&args(&data, &file)).expect("backup");
        let mode = std::fs::metadata(&file).expect("backup file").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let copy = Connection::open(&file).expect("open copy");
        let x: i64 = copy.query_row("SELECT x FROM t", [], |r| r.get(0)).expect("row in the copy");
        assert_eq!(x, 42);
        drop(conn);
    }

    #[test]
    fn refuses_clearly_and_touches_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let err = run(&args(&data, &dir.path().join("a.db"))).expect_err("no database");
        assert!(matches!(err, BackupError::NoDatabase(_)), "{err}");
        assert!(!dir.path().join("a.db").exists(), "nothing created");
        drop(crate::store::open(&data).expect("open"));
        let existing = dir.path().join("existing.db");
        std::fs::write(&existing, b"keep me").expect("write");
        let err = run(&args(&data, &existing)).expect_err("existing file");
        assert!(matches!(err, BackupError::Exists(_)), "{err}");
        assert_eq!(std::fs::read(&existing).expect("read"), b"keep me");
        let err = run(&args(&data, &dir.path().join("no/such/dir/b.db"))).expect_err("missing directory");
        assert!(matches!(err, BackupError::Create { .. }), "{err}");
    }
}
