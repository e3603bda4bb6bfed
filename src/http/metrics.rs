//! `GET /metrics`: outside the `/api` scope (Prometheus expects the path),
//! behind its own guard: a bearer token (`SHIPSHAPE_METRICS_TOKEN`) or a
//! logged-in session; open only when auth is off.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse};
use subtle::ConstantTimeEq;

use super::AppState;
use crate::metrics::CONTENT_TYPE;

pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    state.metrics.set_containers(&state.view.borrow().groups);
    state.metrics.set_engine_connected(state.engine.borrow().connected);
    HttpResponse::Ok().content_type(CONTENT_TYPE).body(state.metrics.encode())
}

/// The right token lets a scraper in; anything else is the session guard's
/// to decide (so a wrong token with auth on is a 401).
pub async fn guard(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let expected = req.app_data::<web::Data<AppState>>().and_then(|s| s.metrics_token.clone());
    let given = bearer(req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()));
    if let (Some(expected), Some(given)) = (expected, given) {
        if token_matches(given, &expected) {
            return next.call(req).await.map(ServiceResponse::map_into_boxed_body);
        }
    }
    super::auth::require_session(req, next).await.map(ServiceResponse::map_into_boxed_body)
}

fn bearer(value: Option<&str>) -> Option<&str> {
    let (scheme, token) = value?.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

/// Constant time in the token's bytes: a wrong guess says nothing of how close it was.
fn token_matches(given: &str, expected: &str) -> bool {
    !expected.is_empty() && bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens() {
        for (header, expected) in [
            (Some("Bearer abc"), Some("abc")),
            (Some("bearer  abc "), Some("abc")),
            (Some("Basic abc"), None),
            (Some("Bearer "), None),
            (Some("Bearerabc"), None),
            (None, None),
        ] {
            assert_eq!(bearer(header), expected, "{header:?}");
        }
        assert!(token_matches("s3cret", "s3cret"));
        assert!(!token_matches("s3cre", "s3cret"));
        assert!(!token_matches("s3cret!", "s3cret"));
        assert!(!token_matches("", ""));
    }
}
