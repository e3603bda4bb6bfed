//! Who may log in: the user name, the argon2id password hash, the cookie
//! key, and the brute-force limits on login attempts.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use actix::Addr;
use actix_web::cookie::Key;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::Engine as _;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use rand::distr::{Alphanumeric, SampleString};

use crate::config::AuthArgs;
use crate::store::{GetSetting, PutSetting, Store, StoreError};

const PASSWORD_HASH_KEY: &str = "auth_password_hash";
const SESSION_KEY_KEY: &str = "session_key";

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("SHIPSHAPE_AUTH_PASSWORD_HASH is not an argon2 PHC string ($argon2id$v=19$...)")]
    BadHash,
    #[error("SHIPSHAPE_SESSION_KEY must be at least 32 bytes")]
    ShortSessionKey,
    #[error("stored session key is damaged; remove the session_key setting to generate a new one")]
    BadStoredKey,
    #[error("cannot hash the password: {0}")]
    Hashing(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The login that is accepted. `Debug` shows no hash.
#[derive(Clone)]
pub struct Credentials {
    pub user: String,
    password_hash: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("user", &self.user).finish_non_exhaustive()
    }
}

impl Credentials {
    /// Always runs the (slow) hash check, so a wrong user name takes as long
    /// to refuse as a wrong password and timing tells nothing.
    pub fn verify(&self, user: &str, password: &str) -> bool {
        let password_ok = verify_password(&self.password_hash, password);
        let user_ok = constant_time_eq(user.as_bytes(), self.user.as_bytes());
        password_ok & user_ok
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let len_diff = a.len() ^ b.len();
    let bytes_diff = a.iter().zip(b.iter().cycle()).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    len_diff == 0 && bytes_diff == 0 && (!a.is_empty() || b.is_empty())
}

pub fn hash_password(password: &str) -> Result<String, AuthError> {
    let mut salt_bytes = [0u8; 16];
    rand::fill(&mut salt_bytes);
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|e| AuthError::Hashing(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AuthError::Hashing(e.to_string()))
}

pub fn verify_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

/// What to do at start about the password, from what is configured and stored.
#[derive(Debug, PartialEq, Eq)]
pub enum PasswordPlan<'a> {
    /// The stored hash stands (it matches the configured password, or none is configured).
    UseStored,
    /// Store this ready hash.
    StoreHash(&'a str),
    /// Hash this configured password and store it.
    HashPassword(&'a str),
    /// Nothing anywhere: make up a password, store its hash, show it once.
    Generate,
}

pub fn plan<'a>(password: Option<&'a str>, hash: Option<&'a str>, stored: Option<&str>) -> PasswordPlan<'a> {
    match (password, hash, stored) {
        (_, Some(hash), Some(stored)) if hash == stored => PasswordPlan::UseStored,
        (_, Some(hash), _) => PasswordPlan::StoreHash(hash),
        (Some(pw), None, Some(stored)) if verify_password(stored, pw) => PasswordPlan::UseStored,
        (Some(pw), None, _) => PasswordPlan::HashPassword(pw),
        (None, None, Some(_)) => PasswordPlan::UseStored,
        (None, None, None) => PasswordPlan::Generate,
    }
}

async fn setting(store: &Addr<Store>, key: &'static str) -> Result<Option<String>, AuthError> {
    Ok(store.send(GetSetting(key)).await.map_err(|_| StoreError::Unavailable)??)
}

async fn put_setting(store: &Addr<Store>, key: &'static str, value: String) -> Result<(), AuthError> {
    Ok(store.send(PutSetting(key, value)).await.map_err(|_| StoreError::Unavailable)??)
}

/// Settles the password at start. A generated password is logged once, with
/// the user name; nothing else about the password or its hash ever is.
pub async fn load_credentials(args: &AuthArgs, store: &Addr<Store>) -> Result<Credentials, AuthError> {
    let stored = setting(store, PASSWORD_HASH_KEY).await?;
    let hash = match plan(args.password.as_deref(), args.password_hash.as_deref(), stored.as_deref()) {
        PasswordPlan::UseStored => stored.unwrap_or_default(),
        PasswordPlan::StoreHash(hash) => {
            PasswordHash::new(hash).map_err(|_| AuthError::BadHash)?;
            put_setting(store, PASSWORD_HASH_KEY, hash.to_string()).await?;
            hash.to_string()
        }
        PasswordPlan::HashPassword(password) => {
            let password = password.to_string();
            let hash = tokio::task::spawn_blocking(move || hash_password(&password))
                .await
                .map_err(|e| AuthError::Hashing(e.to_string()))??;
            put_setting(store, PASSWORD_HASH_KEY, hash.clone()).await?;
            hash
        }
        PasswordPlan::Generate => {
            let password = Alphanumeric.sample_string(&mut rand::rng(), 24);
            let hash = hash_password(&password)?;
            put_setting(store, PASSWORD_HASH_KEY, hash.clone()).await?;
            tracing::warn!(
                "generated a login password, shown only this once: user {} password {}  \
                 (set SHIPSHAPE_AUTH_PASSWORD to choose one)",
                args.user,
                password
            );
            hash
        }
    };
    Ok(Credentials { user: args.user.clone(), password_hash: hash })
}

/// The key that signs and encrypts session cookies: configured, or generated
/// once and stored so that sessions outlive restarts.
pub async fn load_session_key(args: &AuthArgs, store: &Addr<Store>) -> Result<Key, AuthError> {
    if let Some(configured) = &args.session_key {
        if configured.len() < 32 {
            return Err(AuthError::ShortSessionKey);
        }
        return Ok(Key::derive_from(configured.as_bytes()));
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    if let Some(stored) = setting(store, SESSION_KEY_KEY).await? {
        let bytes = b64.decode(stored).map_err(|_| AuthError::BadStoredKey)?;
        return Key::try_from(bytes.as_slice()).map_err(|_| AuthError::BadStoredKey);
    }
    let key = Key::generate();
    put_setting(store, SESSION_KEY_KEY, b64.encode(key.master())).await?;
    Ok(key)
}

/// Login attempts allowed per client address and in total, per minute.
pub const ATTEMPTS_PER_ADDRESS: u32 = 5;
pub const ATTEMPTS_IN_TOTAL: u32 = 60;

/// Brute-force brake on `POST /api/login`: a few attempts a minute per client
/// address, and a global ceiling against attacks spread over many addresses.
pub struct LoginLimiter {
    per_address: DefaultKeyedRateLimiter<IpAddr>,
    global: DefaultDirectRateLimiter,
}

impl Default for LoginLimiter {
    fn default() -> Self {
        let quota = |n: u32| Quota::per_minute(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN));
        Self {
            per_address: RateLimiter::keyed(quota(ATTEMPTS_PER_ADDRESS)),
            global: RateLimiter::direct(quota(ATTEMPTS_IN_TOTAL)),
        }
    }
}

impl LoginLimiter {
    /// Counts an attempt; `Err(wait)` when it must be refused.
    pub fn attempt(&self, address: IpAddr) -> Result<(), Duration> {
        let clock = DefaultClock::default();
        self.per_address.check_key(&address).map_err(|not_until| not_until.wait_time_from(clock.now()))?;
        self.global.check().map_err(|not_until| not_until.wait_time_from(clock.now()))?;
        Ok(())
    }

    /// Forgets addresses that have been quiet, so memory stays bounded.
    pub fn forget_idle(&self) {
        self.per_address.retain_recent();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_differ_per_salt() {
        let a = hash_password("s3cret").expect("hash");
        let b = hash_password("s3cret").expect("hash");
        assert!(a.starts_with("$argon2id$"));
        assert_ne!(a, b);
        assert!(verify_password(&a, "s3cret"));
        assert!(!verify_password(&a, "s3cret "));
        assert!(!verify_password("not a hash", "s3cret"));
    }

    #[test]
    fn credentials_need_both_user_and_password() {
        let creds = Credentials { user: "admin".into(), password_hash: hash_password("pw").expect("hash") };
        assert!(creds.verify("admin", "pw"));
        assert!(!creds.verify("admin", "pw2"));
        assert!(!creds.verify("admi", "pw"));
        assert!(!creds.verify("adminx", "pw"));
        assert!(!creds.verify("", "pw"));
        assert!(!format!("{creds:?}").contains("argon2"));
    }

    #[test]
    fn password_plan_table() {
        let stored = hash_password("old").expect("hash");
        let cases = [
            (None, None, None, PasswordPlan::Generate),
            (None, None, Some(stored.as_str()), PasswordPlan::UseStored),
            (Some("old"), None, Some(stored.as_str()), PasswordPlan::UseStored),
            (Some("new"), None, Some(stored.as_str()), PasswordPlan::HashPassword("new")),
            (Some("new"), None, None, PasswordPlan::HashPassword("new")),
            (None, Some("$argon2id$x"), None, PasswordPlan::StoreHash("$argon2id$x")),
            (None, Some(stored.as_str()), Some(stored.as_str()), PasswordPlan::UseStored),
        ];
        for (pw, hash, st, expected) in cases {
            assert_eq!(plan(pw, hash, st), expected, "{pw:?} {hash:?} {st:?}");
        }
    }

    #[test]
    fn limiter_refuses_after_the_per_address_quota_but_not_other_addresses() {
        let limiter = LoginLimiter::default();
        let a: IpAddr = [127, 0, 0, 1].into();
        let b: IpAddr = [127, 0, 0, 2].into();
        for _ in 0..ATTEMPTS_PER_ADDRESS {
            assert!(limiter.attempt(a).is_ok());
        }
        let wait = limiter.attempt(a).expect_err("sixth attempt refused");
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(60), "{wait:?}");
        assert!(limiter.attempt(b).is_ok());
    }

    #[test]
    fn limiter_has_a_global_ceiling_across_addresses() {
        let limiter = LoginLimiter::default();
        for i in 0..ATTEMPTS_IN_TOTAL {
            let address: IpAddr = [127, 1, (i / 256) as u8, (i % 256) as u8].into();
            assert!(limiter.attempt(address).is_ok(), "attempt {i}");
        }
        assert!(limiter.attempt([127, 2, 0, 0].into()).is_err(), "a fresh address over the global ceiling");
    }

    #[test]
    fn constant_time_eq_is_eq() {
        for (a, b) in [("", ""), ("a", "a"), ("a", ""), ("", "a"), ("ab", "a"), ("ab", "ba"), ("admin", "admin")] {
            assert_eq!(constant_time_eq(a.as_bytes(), b.as_bytes()), a == b, "{a:?} {b:?}");
        }
    }
}
