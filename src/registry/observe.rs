//! A hook for whoever counts registry requests (the metrics), so the client
//! knows nothing of what is counted or how it is served.

use std::sync::Arc;

use reqwest::header::HeaderMap;

/// Told about every answer (or failure to get one) from a registry or its
/// token server.
pub trait RequestObserver: Send + Sync + std::fmt::Debug {
    /// `status` is `None` when no answer came (connect error, timeout);
    /// `ratelimit_remaining` when the answer carried `RateLimit-Remaining`.
    fn answered(&self, registry: &str, status: Option<u16>, ratelimit_remaining: Option<i64>);
}

pub type SharedObserver = Arc<dyn RequestObserver>;

/// Reports one request's outcome to the observer, if there is one.
pub fn report(observer: Option<&SharedObserver>, registry: &str, outcome: Result<&reqwest::Response, ()>) {
    let Some(observer) = observer else { return };
    match outcome {
        Ok(resp) => observer.answered(registry, Some(resp.status().as_u16()), ratelimit_remaining(resp.headers())),
        Err(()) => observer.answered(registry, None, None),
    }
}

/// Docker Hub's `RateLimit-Remaining: 76;w=21600`: the 76.
pub fn ratelimit_remaining(headers: &HeaderMap) -> Option<i64> {
    let value = headers.get("ratelimit-remaining")?.to_str().ok()?;
    value.split(';').next()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn rate_limit_headers() {
        for (value, expected) in [("76;w=21600", Some(76)), ("0", Some(0)), (" 5 ; w=60", Some(5)), ("lots", None)] {
            let mut headers = HeaderMap::new();
            headers.insert("RateLimit-Remaining", HeaderValue::from_static(value));
            assert_eq!(ratelimit_remaining(&headers), expected, "{value}");
        }
        assert_eq!(ratelimit_remaining(&HeaderMap::new()), None);
    }
}
