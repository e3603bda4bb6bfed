//! Login sessions in SQLite: the store's messages, and actix-session's
//! `SessionStore` on top of them, so sessions survive restarts and crashes.
//! The table holds the SHA-256 of each session id, never the id itself: a
//! copy of the database cannot be replayed as a cookie.

use std::collections::HashMap;

use actix::{Addr, Handler, Message};
use actix_session::storage::{LoadError, SaveError, SessionKey, SessionStore, UpdateError};
use rand::distr::{Alphanumeric, SampleString};
use rusqlite::{params, OptionalExtension};

use super::{now_secs, Store, StoreError};

pub type SessionState = HashMap<String, String>;

#[derive(Message)]
#[rtype(result = "Result<Option<String>, StoreError>")]
pub struct LoadSession {
    pub key: String,
}

impl Handler<LoadSession> for Store {
    type Result = Result<Option<String>, StoreError>;
    fn handle(&mut self, msg: LoadSession, _: &mut Self::Context) -> Self::Result {
        Ok(self
            .conn
            .prepare_cached("SELECT state FROM sessions WHERE key = ?1 AND expires_at > ?2")?
            .query_row(params![msg.key, now_secs()], |r| r.get(0))
            .optional()?)
    }
}

/// Inserts or replaces a session; with `only_existing`, touches only a
/// session that still exists and answers whether it did.
#[derive(Message)]
#[rtype(result = "Result<bool, StoreError>")]
pub struct SaveSession {
    pub key: String,
    pub state: Option<String>,
    pub ttl_secs: i64,
    pub only_existing: bool,
}

impl Handler<SaveSession> for Store {
    type Result = Result<bool, StoreError>;
    fn handle(&mut self, msg: SaveSession, _: &mut Self::Context) -> Self::Result {
        let expires_at = now_secs().saturating_add(msg.ttl_secs);
        let changed = match (msg.only_existing, msg.state) {
            (false, Some(state)) => self
                .conn
                .prepare_cached(
                    "INSERT INTO sessions (key, state, expires_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT (key) DO UPDATE SET state = excluded.state, expires_at = excluded.expires_at",
                )?
                .execute(params![msg.key, state, expires_at])?,
            (true, Some(state)) => self
                .conn
                .prepare_cached("UPDATE sessions SET state = ?2, expires_at = ?3 WHERE key = ?1 AND expires_at > ?4")?
                .execute(params![msg.key, state, expires_at, now_secs()])?,
            (_, None) => self
                .conn
                .prepare_cached("UPDATE sessions SET expires_at = ?2 WHERE key = ?1")?
                .execute(params![msg.key, expires_at])?,
        };
        Ok(changed > 0)
    }
}

#[derive(Message)]
#[rtype(result = "Result<(), StoreError>")]
pub struct DeleteSession {
    pub key: String,
}

impl Handler<DeleteSession> for Store {
    type Result = Result<(), StoreError>;
    fn handle(&mut self, msg: DeleteSession, _: &mut Self::Context) -> Self::Result {
        self.conn.prepare_cached("DELETE FROM sessions WHERE key = ?1")?.execute(params![msg.key])?;
        Ok(())
    }
}

/// Ends every session (the password changed); answers how many.
#[derive(Message)]
#[rtype(result = "Result<usize, StoreError>")]
pub struct EndAllSessions;

impl Handler<EndAllSessions> for Store {
    type Result = Result<usize, StoreError>;
    fn handle(&mut self, _: EndAllSessions, _: &mut Self::Context) -> Self::Result {
        Ok(self.conn.execute("DELETE FROM sessions", [])?)
    }
}

/// Removes expired sessions; answers how many.
#[derive(Message)]
#[rtype(result = "Result<usize, StoreError>")]
pub struct SweepSessions;

impl Handler<SweepSessions> for Store {
    type Result = Result<usize, StoreError>;
    fn handle(&mut self, _: SweepSessions, _: &mut Self::Context) -> Self::Result {
        Ok(self.conn.execute("DELETE FROM sessions WHERE expires_at <= ?1", params![now_secs()])?)
    }
}

/// actix-session's storage backend, asking the `Store` actor for every operation.
#[derive(Clone)]
pub struct SqliteSessionStore {
    store: Addr<Store>,
}

impl SqliteSessionStore {
    pub fn new(store: Addr<Store>) -> Self {
        Self { store }
    }

    /// The state of a live session by the id its cookie carries; `None`
    /// once it ended (logout, expiry, password change).
    pub async fn live_state(&self, session_id: &str) -> Result<Option<SessionState>, StoreError> {
        let state = self
            .store
            .send(LoadSession { key: stored_key(session_id) })
            .await
            .map_err(|_| StoreError::Unavailable)??;
        Ok(state.and_then(|s| serde_json::from_str(&s).ok()))
    }

    async fn save_state(
        &self,
        key: String,
        state: Option<String>,
        ttl: i64,
        only_existing: bool,
    ) -> anyhow::Result<bool> {
        let msg = SaveSession { key: stored_key(&key), state, ttl_secs: ttl, only_existing };
        Ok(self.store.send(msg).await.map_err(|_| StoreError::Unavailable)??)
    }
}

/// What the table keys a session by: the SHA-256 of its id, in hex.
pub fn stored_key(session_id: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(session_id.as_bytes()))
}

fn new_key() -> String {
    Alphanumeric.sample_string(&mut rand::rng(), 64)
}

fn to_session_key(key: String) -> anyhow::Result<SessionKey> {
    SessionKey::try_from(key).map_err(|e| anyhow::anyhow!("invalid session key: {e}"))
}

impl SessionStore for SqliteSessionStore {
    async fn load(&self, session_key: &SessionKey) -> Result<Option<SessionState>, LoadError> {
        let key = stored_key(session_key.as_ref());
        let found = self.store.send(LoadSession { key }).await.map_err(|_| StoreError::Unavailable);
        let state = found.and_then(|r| r).map_err(|e| LoadError::Other(e.into()))?;
        state.map(|s| serde_json::from_str(&s)).transpose().map_err(|e| LoadError::Deserialization(e.into()))
    }

    async fn save(
        &self,
        session_state: SessionState,
        ttl: &actix_web::cookie::time::Duration,
    ) -> Result<SessionKey, SaveError> {
        let state = serde_json::to_string(&session_state).map_err(|e| SaveError::Serialization(e.into()))?;
        let key = new_key();
        self.save_state(key.clone(), Some(state), ttl.whole_seconds(), false).await.map_err(SaveError::Other)?;
        to_session_key(key).map_err(SaveError::Other)
    }

    async fn update(
        &self,
        session_key: SessionKey,
        session_state: SessionState,
        ttl: &actix_web::cookie::time::Duration,
    ) -> Result<SessionKey, UpdateError> {
        let state = serde_json::to_string(&session_state).map_err(|e| UpdateError::Serialization(e.into()))?;
        let key = session_key.as_ref().to_string();
        let updated =
            self.save_state(key, Some(state.clone()), ttl.whole_seconds(), true).await.map_err(UpdateError::Other)?;
        if updated {
            return Ok(session_key);
        }
        // Gone meanwhile (logged out elsewhere, swept): never resurrect a
        // deleted key; store the state under a fresh one.
        let key = new_key();
        self.save_state(key.clone(), Some(state), ttl.whole_seconds(), false).await.map_err(UpdateError::Other)?;
        to_session_key(key).map_err(UpdateError::Other)
    }

    async fn update_ttl(
        &self,
        session_key: &SessionKey,
        ttl: &actix_web::cookie::time::Duration,
    ) -> anyhow::Result<()> {
        self.save_state(session_key.as_ref().to_string(), None, ttl.whole_seconds(), true).await.map(|_| ())
    }

    async fn delete(&self, session_key: &SessionKey) -> anyhow::Result<()> {
        let key = stored_key(session_key.as_ref());
        Ok(self.store.send(DeleteSession { key }).await.map_err(|_| StoreError::Unavailable)??)
    }
}
