//! `GET /api/ws`: the current view at once, then every new one as published.

use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::Message;
use futures::StreamExt;

use super::AppState;

/// Pings keep idle connections open through proxies and find dead clients.
const PING_EVERY: Duration = Duration::from_secs(30);

pub async fn connect(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> actix_web::Result<HttpResponse> {
    let (response, mut session, mut incoming) = actix_ws::handle(&req, body)?;
    let mut view = state.view.clone();
    actix_web::rt::spawn(async move {
        let first = view.borrow_and_update().ws_message.clone();
        if session.text(first).await.is_err() {
            return;
        }
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.tick().await;
        let mut unanswered_pings = 0u8;
        loop {
            tokio::select! {
                changed = view.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    let message = view.borrow_and_update().ws_message.clone();
                    if session.text(message).await.is_err() {
                        return;
                    }
                }
                _ = ping.tick() => {
                    if unanswered_pings >= 2 || session.ping(b"").await.is_err() {
                        break;
                    }
                    unanswered_pings += 1;
                }
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
