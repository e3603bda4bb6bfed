//! `GET /api/ws`: the current view at once, then every new one as published.
//! The login behind it is re-checked at every ping and the socket closes as
//! soon as it ends (logout, expiry, a new password). With several engines,
//! each one's connection changes are told too (`hosts`).

use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::{CloseCode, CloseReason, Message};
use futures::stream::{self, BoxStream, SelectAll};
use futures::StreamExt;

use super::auth::SharedAuth;
use super::AppState;
use crate::docker::watcher::{EngineState, EngineWatch};
use crate::store::stored_key;

/// Whether each engine's connection state changed in a way worth telling: as
/// for the `engine` message, an engine's first contact going well is how
/// things should be, not news. Ends when every watcher is gone.
fn host_changes(hosts: &[EngineWatch]) -> SelectAll<BoxStream<'static, bool>> {
    stream::select_all(hosts.iter().map(|h| {
        let mut rx = h.state.clone();
        let known = !rx.borrow_and_update().initial;
        stream::unfold((rx, known), |(mut rx, known)| async move {
            rx.changed().await.ok()?;
            let state: EngineState = rx.borrow_and_update().clone();
            Some((known || !state.connected, (rx, true)))
        })
        .boxed()
    }))
}

pub async fn connect(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
    auth: SharedAuth,
) -> actix_web::Result<HttpResponse> {
    // The guard let the upgrade through, so with auth on there is a session.
    let session_id = auth.credentials.as_ref().and_then(|_| auth.session_id(&req));
    let (response, mut session, mut incoming) = actix_ws::handle(&req, body)?;
    let mut view = state.view.clone();
    let auth = auth.into_inner();
    let mut ended = auth.ended.subscribe();
    let mut events = state.events.subscribe();
    let mut engine = state.engine.clone();
    let mut engine_known = !engine.borrow_and_update().initial;
    let mut engine_alive = true;
    // One engine: its `engine` messages say it all.
    let several = state.hosts.len() > 1;
    let mut hosts_changed = host_changes(if several { &state.hosts } else { &[] });
    let mut hosts_alive = several;
    let state_for_hosts = state.clone();
    let own_key = session_id.as_deref().map(stored_key);
    let session_gone = || Some(CloseReason { code: CloseCode::Policy, description: Some("session ended".into()) });
    let counted = state.metrics.websocket_opened();
    actix_web::rt::spawn(async move {
        let _counted = counted;
        let (first, mut services, manager) = {
            let current = view.borrow_and_update();
            (current.ws_message.clone(), current.ws_services_message(), current.services.is_some())
        };
        if session.text(first).await.is_err() {
            return;
        }
        // On a plain engine there is no `services` message until it becomes a manager.
        if manager && session.text(services.clone()).await.is_err() {
            return;
        }
        let mut ping = tokio::time::interval(auth.ws_ping);
        ping.tick().await;
        let mut unanswered_pings = 0u8;
        loop {
            tokio::select! {
                changed = view.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    let (message, now) = {
                        let current = view.borrow_and_update();
                        (current.ws_message.clone(), current.ws_services_message())
                    };
                    if session.text(message).await.is_err() {
                        return;
                    }
                    // Services only when they changed (`null` once the
                    // engine is no longer a manager).
                    if now != services {
                        services = now;
                        if session.text(services.clone()).await.is_err() {
                            return;
                        }
                    }
                }
                changed = engine.changed(), if engine_alive => {
                    if changed.is_err() {
                        // The watcher is gone: nothing more will change.
                        engine_alive = false;
                        continue;
                    }
                    let data = engine.borrow_and_update().clone();
                    // The service's first contact with a working engine is
                    // how things should be, not a change to report.
                    let first_and_fine = !engine_known && data.connected;
                    engine_known = true;
                    if first_and_fine {
                        continue;
                    }
                    let message = serde_json::json!({ "type": "engine", "data": data }).to_string();
                    if session.text(message).await.is_err() {
                        return;
                    }
                }
                news = hosts_changed.next(), if hosts_alive => match news {
                    None => hosts_alive = false,
                    Some(false) => {}
                    Some(true) => {
                        let data = super::hosts_json(&state_for_hosts.hosts);
                        let message = format!(r#"{{"type":"hosts","data":{data}}}"#);
                        if session.text(message).await.is_err() {
                            return;
                        }
                    }
                },
                _ = ping.tick() => {
                    if let Some(id) = &session_id {
                        if !auth.session_is_live(id).await {
                            let _ = session.close(session_gone()).await;
                            return;
                        }
                    }
                    if unanswered_pings >= 2 || session.ping(b"").await.is_err() {
                        break;
                    }
                    unanswered_pings += 1;
                }
                event = events.recv() => match event {
                    Ok(message) => {
                        if session.text(message).await.is_err() {
                            return;
                        }
                    }
                    // A slow client misses some progress; the next one carries the whole state.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                },
                gone = ended.recv() => match gone {
                    Ok(key) if Some(&key) == own_key.as_ref() => {
                        let _ = session.close(session_gone()).await;
                        return;
                    }
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                },
                message = incoming.next() => match message {
                    Some(Ok(Message::Ping(bytes))) => {
                        if session.pong(&bytes).await.is_err() {
                            return;
                        }
                    }
                    Some(Ok(Message::Pong(_))) => unanswered_pings = 0,
                    Some(Ok(Message::Close(reason))) => {
                        let _ = session.close(reason).await;
                        return;
                    }
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => break,
                },
            }
        }
        let _ = session.close(None).await;
    });
    Ok(response)
}
