//! The HTTP edge: routes, the websocket and error mapping. Handlers stay thin:
//! they ask actors or read the view the inventory publishes.

pub mod auth;
pub mod error;
pub mod metrics;
pub mod policy;
pub mod routes;
pub mod static_files;
pub mod ws;

use std::net::SocketAddr;

use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use actix_session::config::{CookieContentSecurity, PersistentSession};
use actix_session::SessionMiddleware;
use actix_web::cookie::{Key, SameSite};
use actix_web::{middleware, web, App, HttpServer};

use crate::inventory::{Inventory, ViewReceiver};
use crate::jobs::supervisor::Jobs;
use crate::registry::poller::RegistryPoller;
use crate::store::{SqliteSessionStore, Store};
use auth::AuthState;
use policy::HostPolicy;
use tokio::sync::broadcast;

/// Request bodies are small JSON documents; anything bigger is refused (413).
pub const BODY_LIMIT: usize = 16 * 1024;
pub const SESSION_COOKIE: &str = "shipshape_session";

pub struct AppState {
    pub inventory: Addr<Inventory>,
    pub poller: Addr<RegistryPoller>,
    pub view: ViewReceiver,
    pub jobs: Addr<Jobs>,
    pub store: Addr<Store>,
    /// Job events (`progress`, `history`) as ready websocket messages.
    pub events: broadcast::Sender<String>,
    /// Whether the (first) engine answers (`GET /api/engine`, the websocket's `engine` message).
    pub engine: crate::docker::watcher::EngineStateReceiver,
    /// Every engine, in the configured order (`GET /api/hosts`, the websocket's `hosts` message).
    pub hosts: Vec<crate::docker::watcher::EngineWatch>,
    /// The body of `GET /api/settings`: effective settings a UI shows, no secrets.
    pub settings: serde_json::Value,
    /// `POST /api/notify/test`.
    pub notifier: Addr<crate::notify::Notifier>,
    /// `GET /metrics`, and the websocket gauge.
    pub metrics: crate::metrics::Metrics,
    /// Lets a scraper read `/metrics` without a session.
    pub metrics_token: Option<String>,
    /// Swarm services of the engine, when it is a manager.
    pub services: Addr<crate::swarm::Services>,
}

/// One engine as `GET /api/hosts` and the websocket's `hosts` message show it.
#[derive(serde::Serialize)]
struct HostView<'a> {
    name: &'a str,
    url: &'a str,
    #[serde(flatten)]
    state: crate::docker::watcher::EngineState,
    #[serde(flatten)]
    counts: crate::docker::watcher::Counts,
}

/// Every engine as JSON: name, address (no credentials), connection state, counts.
pub fn hosts_json(hosts: &[crate::docker::watcher::EngineWatch]) -> String {
    let views: Vec<HostView> = hosts
        .iter()
        .map(|h| HostView { name: &h.name, url: &h.url, state: h.state.borrow().clone(), counts: *h.counts.borrow() })
        .collect();
    serde_json::to_string(&views).unwrap_or_else(|_| "[]".into())
}

pub struct SessionSettings {
    pub store: SqliteSessionStore,
    pub key: Key,
    pub ttl: Duration,
    pub cookie_secure: bool,
}

/// Serves on a listener bound before anything else started (so a taken port
/// fails at once with a clear error); returns the bound addresses, which
/// differ from the configured one for port 0.
pub fn server(
    listener: std::net::TcpListener,
    state: AppState,
    auth: Arc<AuthState>,
    policy: HostPolicy,
    sessions: SessionSettings,
) -> std::io::Result<(actix_web::dev::Server, Vec<SocketAddr>)> {
    let state = web::Data::new(state);
    let auth = web::Data::new(auth);
    let policy = web::Data::new(policy);
    let ttl = actix_web::cookie::time::Duration::seconds(i64::try_from(sessions.ttl.as_secs()).unwrap_or(i64::MAX));
    let bound = HttpServer::new(move || {
        let session = SessionMiddleware::builder(sessions.store.clone(), sessions.key.clone())
            .cookie_name(SESSION_COOKIE.into())
            .cookie_http_only(true)
            .cookie_same_site(SameSite::Strict)
            .cookie_secure(sessions.cookie_secure)
            .cookie_path("/".into())
            .cookie_content_security(CookieContentSecurity::Private)
            .session_lifecycle(PersistentSession::default().session_ttl(ttl))
            .build();
        App::new()
            .app_data(state.clone())
            .app_data(auth.clone())
            .app_data(policy.clone())
            .app_data(web::JsonConfig::default().limit(BODY_LIMIT).error_handler(error::json_error))
            .app_data(web::PayloadConfig::default().limit(BODY_LIMIT))
            .app_data(web::PathConfig::default().error_handler(error::path_error))
            .app_data(web::QueryConfig::default().error_handler(error::query_error))
            .wrap(session)
            .wrap(middleware::Compress::default())
            .wrap(middleware::from_fn(auth::edge))
            .configure(routes::configure)
    })
    .listen(listener)?;
    let addrs = bound.addrs();
    Ok((bound.run(), addrs))
}
