//! The numbers `GET /metrics` serves, in the Prometheus/OpenMetrics text
//! format (prometheus-client). One cheap-to-clone handle is passed to whoever
//! counts; gauges that describe state (containers by status, engine
//! connected) are set from the published state when scraped.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::inventory::view::{ImageGroup, Status};
use crate::registry::observe::RequestObserver;

/// What the endpoint answers with.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The container statuses counted (`excluded`: left out by its labels).
const STATUSES: [&str; 4] = ["uptodate", "outdated", "unknown", "excluded"];
/// Update results counted, as `GET /api/history` names them.
const UPDATE_RESULTS: [&str; 4] = ["updated", "rolled_back", "failed", "unchanged"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    registry: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RegistryLabel {
    registry: String,
}

struct Inner {
    registry: Registry,
    containers: Family<StatusLabel, Gauge>,
    images_checked: Family<ResultLabel, Counter>,
    check_duration: Histogram,
    registry_requests: Family<RequestLabels, Counter>,
    ratelimit_remaining: Family<RegistryLabel, Gauge>,
    updates: Family<ResultLabel, Counter>,
    update_duration: Histogram,
    websocket_clients: Gauge,
    engine_connected: Gauge,
}

#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("shipshape");
        let containers = Family::<StatusLabel, Gauge>::default();
        registry.register("containers", "Running containers by image status", containers.clone());
        let images_checked = Family::<ResultLabel, Counter>::default();
        registry.register("images_checked", "Image references checked against their registry", images_checked.clone());
        let check_duration = Histogram::new(exponential_buckets(0.05, 2.0, 12));
        registry.register("check_duration_seconds", "Time one check of all images took", check_duration.clone());
        let registry_requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "registry_requests",
            "Registry API requests by registry and answer (2xx, 401, 404, 429, 5xx, other, error)",
            registry_requests.clone(),
        );
        let ratelimit_remaining = Family::<RegistryLabel, Gauge>::default();
        registry.register(
            "registry_ratelimit_remaining",
            "Pulls left as the registry's RateLimit-Remaining header last said (Docker Hub)",
            ratelimit_remaining.clone(),
        );
        let updates = Family::<ResultLabel, Counter>::default();
        registry.register("updates", "Container updates by result", updates.clone());
        let update_duration = Histogram::new(exponential_buckets(0.5, 2.0, 12));
        registry.register("update_duration_seconds", "Time one container's update took", update_duration.clone());
        let websocket_clients = Gauge::default();
        registry.register("websocket_clients", "Open websocket connections", websocket_clients.clone());
        let engine_connected = Gauge::default();
        registry.register("engine_connected", "1 while the Docker engine answers", engine_connected.clone());
        // Every known series exists from the start, at zero.
        for result in UPDATE_RESULTS {
            let _ = updates.get_or_create(&ResultLabel { result });
        }
        for result in ["ok", "error"] {
            let _ = images_checked.get_or_create(&ResultLabel { result });
        }
        let inner = Inner {
            registry,
            containers,
            images_checked,
            check_duration,
            registry_requests,
            ratelimit_remaining,
            updates,
            update_duration,
            websocket_clients,
            engine_connected,
        };
        Self { inner: Arc::new(inner) }
    }

    pub fn image_checked(&self, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        self.inner.images_checked.get_or_create(&ResultLabel { result }).inc();
    }

    pub fn check_finished(&self, took: Duration) {
        self.inner.check_duration.observe(took.as_secs_f64());
    }

    /// `result` is a `JobResult` name; `took` is known for updates this
    /// process started (not for recreated namespace dependents).
    pub fn update_finished(&self, result: &'static str, took: Option<Duration>) {
        self.inner.updates.get_or_create(&ResultLabel { result }).inc();
        if let Some(took) = took {
            self.inner.update_duration.observe(took.as_secs_f64());
        }
    }

    /// Counts an open websocket until the guard is dropped.
    pub fn websocket_opened(&self) -> WebsocketGuard {
        self.inner.websocket_clients.inc();
        WebsocketGuard(self.clone())
    }

    pub fn set_engine_connected(&self, connected: bool) {
        self.inner.engine_connected.set(i64::from(connected));
    }

    /// Sets the container gauges from the view.
    pub fn set_containers(&self, groups: &[ImageGroup]) {
        let mut counts = [0i64; 4];
        for c in groups.iter().flat_map(|g| &g.containers) {
            let i = match (c.excluded, c.status) {
                (true, _) => 3,
                (false, Status::Uptodate) => 0,
                (false, Status::Outdated) => 1,
                (false, Status::Unknown | Status::Partial) => 2,
            };
            counts[i] += 1;
        }
        for (status, n) in STATUSES.into_iter().zip(counts) {
            self.inner.containers.get_or_create(&StatusLabel { status }).set(n);
        }
    }

    /// The text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.inner.registry);
        out
    }
}

/// Decrements the websocket gauge when the connection ends, however it ends.
pub struct WebsocketGuard(Metrics);

impl Drop for WebsocketGuard {
    fn drop(&mut self) {
        self.0.inner.websocket_clients.dec();
    }
}

impl RequestObserver for Metrics {
    fn answered(&self, registry: &str, status: Option<u16>, ratelimit_remaining: Option<i64>) {
        let result = match status {
            Some(200..=299) => "2xx",
            Some(401) => "401",
            Some(404) => "404",
            Some(429) => "429",
            Some(500..=599) => "5xx",
            Some(_) => "other",
            None => "error",
        };
        let labels = RequestLabels { registry: registry.to_string(), result: result.to_string() };
        self.inner.registry_requests.get_or_create(&labels).inc();
        if let Some(n) = ratelimit_remaining {
            self.inner.ratelimit_remaining.get_or_create(&RegistryLabel { registry: registry.to_string() }).set(n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_every_family_with_the_prefix() {
        let m = Metrics::new();
        m.image_checked(true);
        m.check_finished(Duration::from_millis(120));
        m.update_finished("updated", Some(Duration::from_secs(3)));
        m.answered("127.0.0.1:5000", Some(200), None);
        m.answered("docker.io", Some(429), Some(0));
        m.set_engine_connected(true);
        let ws = m.websocket_opened();
        let text = m.encode();
        for line in [
            "shipshape_images_checked_total{result=\"ok\"} 1",
            "shipshape_updates_total{result=\"updated\"} 1",
            "shipshape_updates_total{result=\"failed\"} 0",
            "shipshape_registry_requests_total{registry=\"127.0.0.1:5000\",result=\"2xx\"} 1",
            "shipshape_registry_requests_total{registry=\"docker.io\",result=\"429\"} 1",
            "shipshape_registry_ratelimit_remaining{registry=\"docker.io\"} 0",
            "shipshape_engine_connected 1",
            "shipshape_websocket_clients 1",
            "shipshape_check_duration_seconds_count 1",
            "shipshape_update_duration_seconds_count 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
        drop(ws);
        assert!(m.encode().lines().any(|l| l == "shipshape_websocket_clients 0"));
    }
}
