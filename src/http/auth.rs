//! Login, logout, auth status, and the guard in front of every other `/api` route.

use std::net::IpAddr;
use std::sync::Arc;

use actix_session::{Session, SessionExt};
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, Method};
use actix_web::middleware::Next;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::error::ApiError;
use crate::auth::{Credentials, LoginLimiter};

/// The session entry that marks a logged-in client.
const SESSION_USER: &str = "user";

/// `None` when auth is off.
pub struct AuthState {
    pub credentials: Option<Credentials>,
    pub limiter: LoginLimiter,
}

impl AuthState {
    /// Now and then forgets client addresses that stopped trying, so the
    /// limiter's memory stays bounded.
    pub fn forget_idle_every(self: &Arc<Self>, every: std::time::Duration) {
        let state = Arc::clone(self);
        actix::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                state.limiter.forget_idle();
            }
        });
    }
}

pub type SharedAuth = web::Data<Arc<AuthState>>;

#[derive(Deserialize)]
pub struct LoginBody {
    user: String,
    pass: String,
}

pub async fn login(
    req: HttpRequest,
    auth: SharedAuth,
    session: Session,
    body: web::Json<LoginBody>,
) -> Result<HttpResponse, ApiError> {
    let Some(credentials) = auth.credentials.clone() else {
        return Ok(HttpResponse::Ok().json(json!({ "status": "ok" })));
    };
    let address = req.peer_addr().map_or(IpAddr::from([0, 0, 0, 0]), |a| a.ip());
    auth.limiter.attempt(address).map_err(ApiError::TooManyRequests)?;
    let LoginBody { user, pass } = body.into_inner();
    // Hashing is slow on purpose: keep it off the event loop.
    let accepted = web::block(move || credentials.verify(&user, &pass).then_some(user))
        .await
        .map_err(|e| ApiError::Internal(format!("login check failed: {e}")))?;
    let Some(user) = accepted else {
        tracing::info!(%address, "failed login");
        return Err(ApiError::InvalidCredentials);
    };
    // A fresh session key at every login: a key planted before login is useless.
    session.renew();
    session.insert(SESSION_USER, &user).map_err(|e| ApiError::Internal(format!("session: {e}")))?;
    Ok(HttpResponse::Ok().json(json!({ "status": "ok" })))
}

pub async fn logout(session: Session) -> HttpResponse {
    session.purge();
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

pub async fn status(auth: SharedAuth) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "enabled": auth.credentials.is_some() }))
}

/// Paths under `/api` that answer without a session.
fn is_public(path: &str) -> bool {
    matches!(path, "/api/login" | "/api/logout" | "/api/auth/status") || !path.starts_with("/api/")
}

/// Whether a request that can change state (or open the websocket) comes
/// from a page of another origin: its `Origin` names a different host than
/// the one it was sent to.
fn is_cross_origin(req: &ServiceRequest) -> bool {
    let changes_state = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let is_websocket = req.headers().contains_key(header::UPGRADE);
    if !changes_state && !is_websocket {
        return false;
    }
    let Some(origin) = req.headers().get(header::ORIGIN).and_then(|o| o.to_str().ok()) else {
        return false;
    };
    let host = req.connection_info().host().to_ascii_lowercase();
    let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest).trim_end_matches('/');
    origin == "null" || !origin_host.eq_ignore_ascii_case(&host)
}

pub async fn guard(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if is_cross_origin(&req) {
        return Err(ApiError::CrossOrigin.into());
    }
    let enabled = req.app_data::<SharedAuth>().is_some_and(|a| a.credentials.is_some());
    if enabled && !is_public(req.path()) {
        let logged_in = req.get_session().get::<String>(SESSION_USER).ok().flatten().is_some();
        if !logged_in {
            return Err(ApiError::Unauthorized.into());
        }
    }
    next.call(req).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn public_paths() {
        for (path, public) in [
            ("/api/login", true),
            ("/api/logout", true),
            ("/api/auth/status", true),
            ("/api/images", false),
            ("/api/ws", false),
            ("/api/login/x", false),
            ("/health", true),
            ("/", true),
            ("/index.html", true),
        ] {
            assert_eq!(is_public(path), public, "{path}");
        }
    }

    #[test]
    fn cross_origin_table() {
        let cases = [
            ("POST", Some("http://localhost:8099"), false),
            ("POST", Some("http://evil.example"), true),
            ("POST", Some("null"), true),
            ("POST", None, false),
            ("GET", Some("http://evil.example"), false),
            ("DELETE", Some("http://LOCALHOST:8099"), false),
        ];
        for (method, origin, expected) in cases {
            let mut req = TestRequest::default()
                .method(Method::from_bytes(method.as_bytes()).expect("method"))
                .insert_header((header::HOST, "localhost:8099"));
            if let Some(o) = origin {
                req = req.insert_header((header::ORIGIN, o));
            }
            assert_eq!(is_cross_origin(&req.to_srv_request()), expected, "{method} {origin:?}");
        }
        let ws = TestRequest::get()
            .insert_header((header::HOST, "localhost:8099"))
            .insert_header((header::UPGRADE, "websocket"))
            .insert_header((header::ORIGIN, "http://evil.example"))
            .to_srv_request();
        assert!(is_cross_origin(&ws));
    }
}
