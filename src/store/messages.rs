//! Messages the store answers. Each handler is one short transaction.

use std::collections::HashMap;

use actix::{Handler, Message};
use rusqlite::params;

use super::{now_secs, Store, StoreError};

/// All persisted auto-update flags, by container name.
#[derive(Message)]
#[rtype(result = "Result<HashMap<String, bool>, StoreError>")]
pub struct LoadAutoUpdate;

impl Handler<LoadAutoUpdate> for Store {
    type Result = Result<HashMap<String, bool>, StoreError>;
    fn handle(&mut self, _: LoadAutoUpdate, _: &mut Self::Context) -> Self::Result {
        let mut stmt = self.conn.prepare_cached("SELECT container_name, enabled FROM auto_update")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, bool>(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[derive(Message)]
#[rtype(result = "Result<(), StoreError>")]
pub struct SetAutoUpdate {
    pub container_name: String,
    pub enabled: bool,
}

impl Handler<SetAutoUpdate> for Store {
    type Result = Result<(), StoreError>;
    fn handle(&mut self, msg: SetAutoUpdate, _: &mut Self::Context) -> Self::Result {
        self.conn
            .prepare_cached(
                "INSERT INTO auto_update (container_name, enabled, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (container_name) DO UPDATE SET enabled = excluded.enabled, updated_at = excluded.updated_at",
            )?
            .execute(params![msg.container_name, msg.enabled, now_secs()])?;
        Ok(())
    }
}

/// A value shipshape generated once and keeps (password hash, cookie key).
#[derive(Message)]
#[rtype(result = "Result<Option<String>, StoreError>")]
pub struct GetSetting(pub &'static str);

impl Handler<GetSetting> for Store {
    type Result = Result<Option<String>, StoreError>;
    fn handle(&mut self, GetSetting(key): GetSetting, _: &mut Self::Context) -> Self::Result {
        use rusqlite::OptionalExtension;
        Ok(self
            .conn
            .prepare_cached("SELECT value FROM settings WHERE key = ?1")?
            .query_row(params![key], |r| r.get(0))
            .optional()?)
    }
}

#[derive(Message)]
#[rtype(result = "Result<(), StoreError>")]
pub struct PutSetting(pub &'static str, pub String);

impl Handler<PutSetting> for Store {
    type Result = Result<(), StoreError>;
    fn handle(&mut self, PutSetting(key, value): PutSetting, _: &mut Self::Context) -> Self::Result {
        self.conn
            .prepare_cached(
                "INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            )?
            .execute(params![key, value])?;
        Ok(())
    }
}

/// Every cached tag listing: repository → the registry layer's JSON.
#[derive(Message)]
#[rtype(result = "Result<HashMap<String, String>, StoreError>")]
pub struct LoadRepoTags;

impl Handler<LoadRepoTags> for Store {
    type Result = Result<HashMap<String, String>, StoreError>;
    fn handle(&mut self, _: LoadRepoTags, _: &mut Self::Context) -> Self::Result {
        let mut stmt = self.conn.prepare_cached("SELECT repository, data FROM repo_tags")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// Keeps a repository's tag listing (replacing the one before).
#[derive(Message)]
#[rtype(result = "Result<(), StoreError>")]
pub struct SaveRepoTags {
    pub repository: String,
    pub data: String,
}

impl Handler<SaveRepoTags> for Store {
    type Result = Result<(), StoreError>;
    fn handle(&mut self, msg: SaveRepoTags, _: &mut Self::Context) -> Self::Result {
        self.conn
            .prepare_cached(
                "INSERT INTO repo_tags (repository, data, saved_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (repository) DO UPDATE SET data = excluded.data, saved_at = excluded.saved_at",
            )?
            .execute(params![msg.repository, msg.data, now_secs()])?;
        Ok(())
    }
}
