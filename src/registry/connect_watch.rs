//! Tells a registry's first request when its connection negotiated h2.
//!
//! The first request to a registry goes alone (see `RegistryClient::send`)
//! so that the others reuse what it finds instead of each opening a
//! connection. Over TLS, what they need is known once the handshake is done:
//! if ALPN chose h2, every other request can go over that one connection
//! right away. Waiting for the first answer instead would cost a whole round
//! trip more — what `curl --parallel` saves by sending as soon as the
//! handshake says h2. reqwest shows no connection to its caller, so a layer
//! around its connector reports it to the request that is in a
//! [`watching`] scope (a task-local: the connection of the first request is
//! made while that request's own task polls it).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper_util::client::legacy::connect::Connection;
use tokio::sync::Notify;

tokio::task_local! {
    static WATCH: Arc<H2Signal>;
}

/// Set when a connection made inside the watched scope negotiated h2.
#[derive(Debug, Default)]
pub struct H2Signal {
    h2: AtomicBool,
    notify: Notify,
}

impl H2Signal {
    fn negotiated(&self) {
        self.h2.store(true, Ordering::SeqCst);
        // One permit is kept if nobody waits yet.
        self.notify.notify_one();
    }

    /// Resolves once a watched connection negotiated h2 (never otherwise).
    pub async fn h2(&self) {
        while !self.h2.load(Ordering::SeqCst) {
            self.notify.notified().await;
        }
    }
}

/// Runs `fut` with connections it makes reported to `signal`.
pub async fn watching<F: Future>(signal: Arc<H2Signal>, fut: F) -> F::Output {
    WATCH.scope(signal, fut).await
}

/// reqwest's `connector_layer`.
#[derive(Debug, Clone, Copy, Default)]
pub struct WatchLayer;

impl<S> tower_layer::Layer<S> for WatchLayer {
    type Service = Watch<S>;

    fn layer(&self, inner: S) -> Watch<S> {
        Watch(inner)
    }
}

#[derive(Debug, Clone)]
pub struct Watch<S>(S);

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, R> tower_service::Service<R> for Watch<S>
where
    S: tower_service::Service<R>,
    S::Response: Connection + Send + 'static,
    S::Error: Send + 'static,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        let signal = WATCH.try_with(Arc::clone).ok();
        let connecting = self.0.call(request);
        Box::pin(async move {
            let conn = connecting.await?;
            if let Some(signal) = signal {
                if conn.connected().is_negotiated_h2() {
                    signal.negotiated();
                }
            }
            Ok(conn)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_signal_keeps_a_negotiation_nobody_waited_for_yet() {
        let signal = Arc::new(H2Signal::default());
        let wait = signal.h2();
        tokio::pin!(wait);
        assert!(futures::poll!(wait.as_mut()).is_pending());
        signal.negotiated();
        wait.await;
        // Later waiters see it at once.
        signal.h2().await;
        // Outside a watched scope nothing is reported; inside, the scope's signal is found.
        assert!(WATCH.try_with(|_| ()).is_err());
        let inner = Arc::new(H2Signal::default());
        watching(inner.clone(), async { WATCH.with(|s| s.negotiated()) }).await;
        inner.h2().await;
    }
}
