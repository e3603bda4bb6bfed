//! Login, logout and auth status (public), the session guard of the `/api`
//! scope, and the edge checks every request passes first: Host, Origin and
//! the security headers.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_session::{Session, SessionExt};
use actix_web::body::{EitherBody, MessageBody};
use actix_web::cookie::{CookieJar, Key};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast;

use super::error::ApiError;
use super::policy::HostPolicy;
use super::SESSION_COOKIE;
use crate::auth::{Credentials, LoginLimiter};
use crate::store::{stored_key, SqliteSessionStore};

/// The session entries that mark a logged-in client: the user, and the
/// fingerprint of the password it logged in with.
const SESSION_USER: &str = "user";
const SESSION_FINGERPRINT: &str = "fp";
/// When the session's expiry was last pushed back (unix seconds). Changing
/// it makes actix-session save the session with a fresh TTL; it changes at
/// most once per renewal interval, so a session in use slides without a
/// write per request.
const SESSION_RENEWED_AT: &str = "renewed_at";

pub struct AuthState {
    /// `None` when auth is off.
    pub credentials: Option<Credentials>,
    pub limiter: LoginLimiter,
    /// Decrypts the session cookie, for the websocket's own session checks.
    pub session_key: Key,
    pub sessions: SqliteSessionStore,
    /// Stored keys of sessions that just ended, so open websockets close at once.
    pub ended: broadcast::Sender<String>,
    /// How often the websocket pings, and re-checks its session.
    pub ws_ping: Duration,
    /// How old a session's last extension may get before a request extends it again.
    pub session_renew: Duration,
}

impl AuthState {
    pub fn new(
        credentials: Option<Credentials>,
        session_key: Key,
        sessions: SqliteSessionStore,
        ws_ping: Duration,
    ) -> Self {
        let (ended, _) = broadcast::channel(64);
        Self {
            credentials,
            limiter: LoginLimiter::default(),
            session_key,
            sessions,
            ended,
            ws_ping,
            session_renew: Duration::from_secs(3600),
        }
    }

    pub fn with_session_renew(mut self, every: Duration) -> Self {
        self.session_renew = every;
        self
    }

    /// Forgets client addresses that stopped trying, so the limiter's memory
    /// stays bounded; called by the periodic sweep.
    pub fn sweep(&self) {
        self.limiter.forget_idle(Instant::now());
    }

    /// The session id the request's cookie carries (decrypted), if any.
    pub fn session_id(&self, req: &HttpRequest) -> Option<String> {
        let cookie = req.cookie(SESSION_COOKIE)?;
        let mut jar = CookieJar::new();
        jar.add_original(cookie);
        jar.private(&self.session_key).get(SESSION_COOKIE).map(|c| c.value().to_string())
    }

    /// Whether the stored session behind `session_id` still logs a user in.
    pub async fn session_is_live(&self, session_id: &str) -> bool {
        let Some(credentials) = &self.credentials else { return true };
        match self.sessions.live_state(session_id).await {
            Ok(Some(state)) => is_logged_in(&state, credentials),
            Ok(None) => false,
            // A store hiccup does not end a session; the next check decides.
            Err(e) => {
                tracing::warn!("session check failed: {e}");
                true
            }
        }
    }
}

/// Session state holds JSON-encoded values (actix-session's format).
fn is_logged_in(state: &std::collections::HashMap<String, String>, credentials: &Credentials) -> bool {
    let value = |k: &str| state.get(k).and_then(|v| serde_json::from_str::<String>(v).ok());
    value(SESSION_USER).is_some() && value(SESSION_FINGERPRINT).is_some_and(|fp| fp == credentials.fingerprint())
}

pub type SharedAuth = web::Data<Arc<AuthState>>;
pub type SharedPolicy = web::Data<HostPolicy>;

#[derive(Deserialize)]
pub struct LoginBody {
    user: String,
    pass: String,
}

pub async fn login(
    req: HttpRequest,
    auth: SharedAuth,
    policy: SharedPolicy,
    session: Session,
    body: web::Json<LoginBody>,
) -> Result<HttpResponse, ApiError> {
    let Some(credentials) = auth.credentials.clone() else {
        return Ok(HttpResponse::Ok().json(json!({ "status": "ok" })));
    };
    let peer = req.peer_addr().map_or(IpAddr::from([0, 0, 0, 0]), |a| a.ip());
    let forwarded = req.headers().get_all("x-forwarded-for").filter_map(|v| v.to_str().ok());
    let address = policy.client_address(peer, forwarded);
    auth.limiter.attempt(address, Instant::now()).map_err(ApiError::TooManyRequests)?;
    let LoginBody { user, pass } = body.into_inner();
    let fingerprint = credentials.fingerprint();
    // Hashing is slow on purpose: keep it off the event loop.
    let accepted = web::block(move || credentials.verify(&user, &pass).then_some(user))
        .await
        .map_err(|e| ApiError::Internal(format!("login check failed: {e}")))?;
    let Some(user) = accepted else {
        tracing::info!(%address, "failed login");
        return Err(ApiError::InvalidCredentials);
    };
    auth.limiter.succeeded(address);
    // A fresh session key at every login: a key planted before login is useless.
    session.renew();
    let internal = |e: actix_session::SessionInsertError| ApiError::Internal(format!("session: {e}"));
    session.insert(SESSION_USER, &user).map_err(internal)?;
    session.insert(SESSION_FINGERPRINT, &fingerprint).map_err(internal)?;
    session.insert(SESSION_RENEWED_AT, unix_now()).map_err(internal)?;
    Ok(HttpResponse::Ok().json(json!({ "status": "ok" })))
}

pub async fn logout(req: HttpRequest, auth: SharedAuth, session: Session) -> HttpResponse {
    if let Some(id) = auth.session_id(&req) {
        // Nobody listening is fine.
        let _ = auth.ended.send(stored_key(&id));
    }
    session.purge();
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

pub async fn status(auth: SharedAuth) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "enabled": auth.credentials.is_some() }))
}

/// The guard of the `/api` scope: everything in it needs a live session
/// made with the current password. Public routes are registered outside
/// the scope, so what is public is decided by the router, on the same
/// decoded path it routes by.
pub async fn require_session(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let credentials = req.app_data::<SharedAuth>().and_then(|a| a.credentials.clone());
    if let Some(credentials) = credentials {
        let session = req.get_session();
        let logged_in = session.get::<String>(SESSION_USER).ok().flatten().is_some()
            && session
                .get::<String>(SESSION_FINGERPRINT)
                .ok()
                .flatten()
                .is_some_and(|fp| fp == credentials.fingerprint());
        if !logged_in {
            if session.get::<String>(SESSION_USER).ok().flatten().is_some() {
                // Made with an old password: end it for good.
                session.purge();
            }
            return Ok(refuse(req, &ApiError::Unauthorized));
        }
        let every = req.app_data::<SharedAuth>().map_or(Duration::from_secs(3600), |a| a.session_renew);
        let renewed_at = session.get::<u64>(SESSION_RENEWED_AT).ok().flatten();
        if needs_renewal(renewed_at, unix_now(), every) {
            // A failure only means no extension this time.
            let _ = session.insert(SESSION_RENEWED_AT, unix_now());
        }
    }
    next.call(req).await.map(ServiceResponse::map_into_left_body)
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Whether a session last extended at `renewed_at` is due another extension.
fn needs_renewal(renewed_at: Option<u64>, now: u64, every: Duration) -> bool {
    renewed_at.is_none_or(|at| now.saturating_sub(at) >= every.as_secs())
}

/// Whether a request can change state (or opens the websocket, which can).
fn needs_origin_check(req: &ServiceRequest) -> bool {
    let changes_state = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    changes_state || req.headers().contains_key(header::UPGRADE)
}

/// The `Host` a request names: the header, or the URI's authority (HTTP/2).
fn request_host(req: &ServiceRequest) -> Option<String> {
    match req.headers().get(header::HOST) {
        Some(h) => h.to_str().ok().map(str::to_string),
        None => req.uri().authority().map(|a| a.as_str().to_string()),
    }
}

/// In front of everything: a request must name this service as its Host
/// (421), a state-changing one from a browser must come from one of its
/// origins (403), and every answer carries the security headers. Forwarded
/// headers play no part here.
pub async fn edge(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let policy = req.app_data::<SharedPolicy>().cloned();
    let host = request_host(&req).unwrap_or_default();
    let refusal = match &policy {
        Some(policy) if !policy.host_allowed(&host) => Some(ApiError::MisdirectedRequest),
        Some(policy) if needs_origin_check(&req) => {
            let origin = req.headers().get(header::ORIGIN).map(|o| o.to_str().unwrap_or("null"));
            origin.is_some_and(|o| !policy.origin_allowed(o, &host)).then_some(ApiError::CrossOrigin)
        }
        _ => None,
    };
    let mut response = match refusal {
        Some(err) => refuse(req, &err),
        // Handlers and the guard answer errors as responses; only a failing
        // session store surfaces here as an error, and actix answers it 500.
        None => next.call(req).await?.map_into_left_body(),
    };
    add_security_headers(response.headers_mut());
    Ok(response)
}

fn refuse<B>(req: ServiceRequest, err: &ApiError) -> ServiceResponse<EitherBody<B>> {
    req.into_response(err.error_response()).map_into_right_body()
}

/// No sniffing, no framing, no referrer, only our own resources; API answers
/// (and anything else that does not say otherwise) are never cached.
fn add_security_headers(headers: &mut actix_web::http::header::HeaderMap) {
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'self'; frame-ancestors 'none'"),
    );
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn origin_check_applies_to_state_changes_and_upgrades() {
        for (method, upgrade, expected) in [
            ("POST", false, true),
            ("DELETE", false, true),
            ("GET", false, false),
            ("HEAD", false, false),
            ("GET", true, true),
        ] {
            let mut req = TestRequest::default().method(Method::from_bytes(method.as_bytes()).expect("method"));
            if upgrade {
                req = req.insert_header((header::UPGRADE, "websocket"));
            }
            assert_eq!(needs_origin_check(&req.to_srv_request()), expected, "{method} upgrade={upgrade}");
        }
    }

    #[test]
    fn sessions_are_renewed_once_per_interval() {
        let hour = Duration::from_secs(3600);
        for (renewed_at, now, expected) in [
            (None, 1000, true),
            (Some(1000), 1000, false),
            (Some(1000), 1000 + 3599, false),
            (Some(1000), 1000 + 3600, true),
            // A clock that went back does not renew on every request.
            (Some(5000), 1000, false),
        ] {
            assert_eq!(needs_renewal(renewed_at, now, hour), expected, "{renewed_at:?} {now}");
        }
    }

    #[test]
    fn host_comes_from_the_host_header_not_forwarded_ones() {
        let req = TestRequest::default()
            .insert_header((header::HOST, "127.0.0.1:8099"))
            .insert_header(("x-forwarded-host", "evil.example"))
            .insert_header((header::FORWARDED, "host=evil.example"))
            .to_srv_request();
        assert_eq!(request_host(&req).as_deref(), Some("127.0.0.1:8099"));
    }
}
