//! Who may log in: the user name, the argon2id password hash, the cookie
//! key, and the brute-force limits on login attempts.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix::Addr;
use actix_web::cookie::Key;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::Engine as _;
use rand::distr::{Alphanumeric, SampleString};

use crate::config::AuthArgs;
use crate::store::{EndAllSessions, GetSetting, PutSetting, Store, StoreError};

const PASSWORD_HASH_KEY: &str = "auth_password_hash";
/// The shortest password accepted from configuration; generated ones are 24 characters.
pub const MIN_PASSWORD_LEN: usize = 12;
const GENERATED_PASSWORD_LEN: usize = 24;
const SESSION_KEY_KEY: &str = "session_key";

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("SHIPSHAPE_AUTH_PASSWORD_HASH is not an argon2 PHC string ($argon2id$v=19$...)")]
    BadHash,
    #[error("SHIPSHAPE_SESSION_KEY must be at least 32 bytes")]
    ShortSessionKey,
    #[error("stored session key is damaged; remove the session_key setting to generate a new one")]
    BadStoredKey,
    #[error("SHIPSHAPE_AUTH_PASSWORD is empty: set a password of at least {MIN_PASSWORD_LEN} characters, or unset it to have one generated")]
    EmptyPassword,
    #[error("SHIPSHAPE_AUTH_PASSWORD is too short: use at least {MIN_PASSWORD_LEN} characters")]
    ShortPassword,
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
    /// A short digest of the password hash, kept in every session: when the
    /// password changes, sessions made with the old one stop matching.
    pub fn fingerprint(&self) -> String {
        use sha2::Digest;
        let digest =
            sha2::Sha256::new().chain_update(b"shipshape session v1\0").chain_update(&self.password_hash).finalize();
        hex::encode(&digest[..16])
    }

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
    if let Some(password) = &args.password {
        check_password(password)?;
    }
    let stored = setting(store, PASSWORD_HASH_KEY).await?;
    let hash = match plan(args.password.as_deref(), args.password_hash.as_deref(), stored.as_deref()) {
        PasswordPlan::UseStored => stored.clone().unwrap_or_default(),
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
            let password = Alphanumeric.sample_string(&mut rand::rng(), GENERATED_PASSWORD_LEN);
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
    if stored.as_deref().is_some_and(|old| old != hash) {
        let ended = store.send(EndAllSessions).await.map_err(|_| StoreError::Unavailable)??;
        tracing::warn!(sessions = ended, "the password changed: every session has ended");
    }
    Ok(Credentials { user: args.user.clone(), password_hash: hash })
}

/// Refuses passwords a guess would find: empty (an unset variable in a
/// compose file) or shorter than [`MIN_PASSWORD_LEN`].
pub fn check_password(password: &str) -> Result<(), AuthError> {
    match password.chars().count() {
        0 => Err(AuthError::EmptyPassword),
        n if n < MIN_PASSWORD_LEN => Err(AuthError::ShortPassword),
        _ => Ok(()),
    }
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

/// Failed logins allowed per client address (IPv6: per /64) in a minute.
pub const FAILURES_PER_ADDRESS: usize = 5;
/// Failed logins in a minute over all addresses past which only addresses
/// with no recent failure may still try: it slows a guess spread over many
/// addresses, and never refuses the admin at an address that has not failed.
pub const GLOBAL_FAILURES: usize = 300;
/// Addresses remembered at most; the one whose last failure is oldest makes room.
pub const TRACKED_ADDRESSES: usize = 10_000;
const WINDOW: Duration = Duration::from_secs(60);

/// The key failures are counted under: an IPv6 host usually owns a whole /64.
fn limiter_key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(std::net::Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        },
        v4 => v4,
    }
}

#[derive(Default)]
struct LimiterState {
    /// Failure times in the last window, per address key, oldest first.
    per_address: HashMap<IpAddr, VecDeque<Instant>>,
    /// Failure times in the last window over all addresses (at most `GLOBAL_FAILURES`).
    global: VecDeque<Instant>,
}

impl LimiterState {
    fn prune(&mut self, now: Instant) {
        while self.global.front().is_some_and(|t| now.duration_since(*t) >= WINDOW) {
            self.global.pop_front();
        }
    }
}

/// Brute-force brake on `POST /api/login`. An attempt is counted as a failure
/// before the password is checked (so parallel guesses cannot slip past the
/// count while hashing) and forgiven when it succeeds: only failures count.
#[derive(Default)]
pub struct LoginLimiter {
    state: Mutex<LimiterState>,
}

impl LoginLimiter {
    /// Counts an attempt from `address`; `Err(wait)` when it must be refused.
    pub fn attempt(&self, address: IpAddr, now: Instant) -> Result<(), Duration> {
        let key = limiter_key(address);
        let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        state.prune(now);
        let recent = state.per_address.get_mut(&key).map(|times| {
            while times.front().is_some_and(|t| now.duration_since(*t) >= WINDOW) {
                times.pop_front();
            }
            times.clone()
        });
        let recent = recent.unwrap_or_default();
        if recent.len() >= FAILURES_PER_ADDRESS {
            return Err(wait_until(recent.front(), now));
        }
        if state.global.len() >= GLOBAL_FAILURES && !recent.is_empty() {
            return Err(wait_until(state.global.front(), now).min(wait_until(recent.back(), now)));
        }
        if !state.per_address.contains_key(&key) && state.per_address.len() >= TRACKED_ADDRESSES {
            let stalest = state.per_address.iter().min_by_key(|(_, t)| t.back().copied()).map(|(k, _)| *k);
            if let Some(stalest) = stalest {
                state.per_address.remove(&stalest);
            }
        }
        state.per_address.entry(key).or_default().push_back(now);
        if state.global.len() >= GLOBAL_FAILURES {
            state.global.pop_front();
        }
        state.global.push_back(now);
        Ok(())
    }

    /// A correct login: the address's failures are forgiven.
    pub fn succeeded(&self, address: IpAddr) {
        let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        state.per_address.remove(&limiter_key(address));
    }

    /// Forgets addresses whose failures are all older than the window, so
    /// memory stays bounded between attacks.
    pub fn forget_idle(&self, now: Instant) {
        let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        state.prune(now);
        state.per_address.retain(|_, times| times.back().is_some_and(|t| now.duration_since(*t) < WINDOW));
    }

    pub fn tracked_addresses(&self) -> usize {
        self.state.lock().map_or(0, |s| s.per_address.len())
    }
}

fn wait_until(oldest: Option<&Instant>, now: Instant) -> Duration {
    oldest.map_or(WINDOW, |t| (*t + WINDOW).saturating_duration_since(now)).max(Duration::from_secs(1))
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
    fn limiter_counts_failures_per_address_and_forgives_success() {
        let limiter = LoginLimiter::default();
        let now = Instant::now();
        let a: IpAddr = [127, 0, 0, 1].into();
        let b: IpAddr = [127, 0, 0, 2].into();
        for _ in 0..FAILURES_PER_ADDRESS {
            assert!(limiter.attempt(a, now).is_ok());
        }
        let wait = limiter.attempt(a, now).expect_err("sixth failure refused");
        assert_eq!(wait, WINDOW);
        assert!(limiter.attempt(b, now).is_ok(), "another address is not affected");
        assert!(limiter.attempt(a, now + WINDOW).is_ok(), "the window passes");
        // Successes are forgiven: an admin logging in often is never braked.
        for _ in 0..3 * FAILURES_PER_ADDRESS {
            assert!(limiter.attempt(b, now).is_ok());
            limiter.succeeded(b);
        }
    }

    #[test]
    fn ipv6_is_limited_per_64() {
        let limiter = LoginLimiter::default();
        let now = Instant::now();
        for i in 0..FAILURES_PER_ADDRESS as u16 {
            let ip: IpAddr = format!("2001:db8:1:2::{:x}", i + 1).parse().expect("ip");
            assert!(limiter.attempt(ip, now).is_ok());
        }
        let same_64: IpAddr = "2001:db8:1:2:ffff::1".parse().expect("ip");
        let other_64: IpAddr = "2001:db8:1:3::1".parse().expect("ip");
        assert!(limiter.attempt(same_64, now).is_err());
        assert!(limiter.attempt(other_64, now).is_ok());
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().expect("ip");
        assert_eq!(limiter_key(mapped), IpAddr::from([192, 0, 2, 1]));
    }

    #[test]
    fn global_ceiling_slows_known_failers_but_not_a_fresh_address() {
        let limiter = LoginLimiter::default();
        let now = Instant::now();
        let addr = |i: usize| IpAddr::from([10, 1, (i / 256) as u8, (i % 256) as u8]);
        for i in 0..GLOBAL_FAILURES {
            assert!(limiter.attempt(addr(i), now).is_ok(), "attempt {i}");
        }
        assert!(limiter.attempt(addr(0), now).is_err(), "an address that failed waits while the ceiling is hit");
        let admin: IpAddr = [127, 0, 0, 1].into();
        assert!(limiter.attempt(admin, now).is_ok(), "a fresh address may still try");
        assert!(limiter.attempt(addr(0), now + WINDOW).is_ok(), "the ceiling clears");
    }

    #[test]
    fn limiter_memory_is_bounded() {
        let limiter = LoginLimiter::default();
        let now = Instant::now();
        for i in 0..TRACKED_ADDRESSES + 50 {
            let ip = IpAddr::from([10, (i / 65536) as u8, (i / 256 % 256) as u8, (i % 256) as u8]);
            let _ = limiter.attempt(ip, now);
        }
        assert_eq!(limiter.tracked_addresses(), TRACKED_ADDRESSES);
        limiter.forget_idle(now + WINDOW);
        assert_eq!(limiter.tracked_addresses(), 0);
    }

    #[test]
    fn password_rules() {
        assert!(matches!(check_password(""), Err(AuthError::EmptyPassword)));
        assert!(matches!(check_password("elevenchars"), Err(AuthError::ShortPassword)));
        assert!(check_password("twelve chars").is_ok());
        assert!(check_password("ääääääääääää").is_ok(), "characters, not bytes");
    }

    #[test]
    fn fingerprint_follows_the_hash() {
        let a = Credentials { user: "admin".into(), password_hash: hash_password("first password").expect("hash") };
        let b = Credentials { user: "admin".into(), password_hash: hash_password("first password").expect("hash") };
        assert_eq!(a.fingerprint(), a.clone().fingerprint());
        assert_ne!(a.fingerprint(), b.fingerprint(), "a new hash (new salt) ends old sessions");
        assert_eq!(a.fingerprint().len(), 32);
    }

    #[test]
    fn constant_time_eq_is_eq() {
        for (a, b) in [("", ""), ("a", "a"), ("a", ""), ("", "a"), ("ab", "a"), ("ab", "ba"), ("admin", "admin")] {
            assert_eq!(constant_time_eq(a.as_bytes(), b.as_bytes()), a == b, "{a:?} {b:?}");
        }
    }
}
