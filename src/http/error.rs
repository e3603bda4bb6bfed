//! The one place where failures become HTTP answers. Bodies are plain text
//! ending in a newline, byte for byte as the API contract lists them.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

use crate::inventory::InventoryError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The contract's text, placeholders and all: the request's own path is
    /// never echoed back.
    #[error("bad path: /api/images/{{id}}/{{action}}")]
    BadPath,
    #[error("unknown action")]
    UnknownAction,
    #[error("container not found")]
    ContainerNotFound,
    /// A short id that containers of two engines start with: `host:id` or the full id says which.
    #[error("ambiguous container id")]
    AmbiguousContainer,
    #[error("image not found")]
    GroupNotFound,
    #[error("no progress")]
    NoProgress,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("not found")]
    NotFound,
    #[error("cannot update shipshape's own container")]
    OwnContainer,
    /// A `monitor-only` label: checked and shown, never updated.
    #[error("monitor only")]
    MonitorOnly,
    /// Left out by its labels (`enable=false`, or not enabled in opt-in mode).
    #[error("excluded by label")]
    Excluded,
    /// A Swarm task's container: Swarm replaces it, never a container job.
    #[error("managed by swarm service {0}")]
    SwarmManaged(String),
    #[error("service not found")]
    ServiceNotFound,
    #[error("no swarm manager")]
    NoSwarmManager,
    /// Nothing to roll out: the registry's digest for the service's tag is unknown.
    #[error("registry digest unknown: {0}")]
    DigestUnknown(String),
    #[error("unauthorized")]
    Unauthorized,
    #[error("invalid credentials")]
    InvalidCredentials,
    #[error("too many login attempts; retry in {}s", retry_secs(.0))]
    TooManyRequests(std::time::Duration),
    #[error("cross-origin request refused")]
    CrossOrigin,
    #[error("misdirected request")]
    MisdirectedRequest,
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("payload too large")]
    PayloadTooLarge,
    /// Details go to the log, never to the client.
    #[error("internal error")]
    Internal(String),
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadPath | ApiError::UnknownAction => StatusCode::BAD_REQUEST,
            ApiError::ContainerNotFound | ApiError::GroupNotFound | ApiError::NoProgress | ApiError::NotFound => {
                StatusCode::NOT_FOUND
            }
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::OwnContainer
            | ApiError::MonitorOnly
            | ApiError::Excluded
            | ApiError::AmbiguousContainer
            | ApiError::SwarmManaged(_)
            | ApiError::NoSwarmManager
            | ApiError::DigestUnknown(_) => StatusCode::CONFLICT,
            ApiError::ServiceNotFound => StatusCode::NOT_FOUND,
            ApiError::Unauthorized | ApiError::InvalidCredentials => StatusCode::UNAUTHORIZED,
            ApiError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::CrossOrigin => StatusCode::FORBIDDEN,
            ApiError::MisdirectedRequest => StatusCode::MISDIRECTED_REQUEST,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let ApiError::Internal(detail) = self {
            tracing::error!("{detail}");
        }
        let mut response = HttpResponse::build(self.status_code());
        if let ApiError::TooManyRequests(wait) = self {
            response.insert_header((actix_web::http::header::RETRY_AFTER, retry_secs(wait).to_string()));
        }
        response.content_type("text/plain; charset=utf-8").body(format!("{self}\n"))
    }
}

/// Whole seconds to wait, rounded up so that retrying then succeeds.
fn retry_secs(wait: &std::time::Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

/// Extractor failures (bad JSON, oversized bodies, bad paths) become clear
/// plain-text 4xx answers instead of actix's defaults.
pub fn json_error(err: actix_web::error::JsonPayloadError, _: &actix_web::HttpRequest) -> actix_web::Error {
    use actix_web::error::JsonPayloadError as E;
    match err {
        E::OverflowKnownLength { .. } | E::Overflow { .. } => ApiError::PayloadTooLarge,
        E::Payload(actix_web::error::PayloadError::Overflow) => ApiError::PayloadTooLarge,
        E::ContentType => ApiError::BadRequest("expected Content-Type: application/json".into()),
        E::Deserialize(e) => ApiError::BadRequest(format!("invalid JSON body: {e}")),
        other => ApiError::BadRequest(other.to_string()),
    }
    .into()
}

pub fn payload_error(err: actix_web::error::PayloadError) -> ApiError {
    match err {
        actix_web::error::PayloadError::Overflow => ApiError::PayloadTooLarge,
        other => ApiError::BadRequest(other.to_string()),
    }
}

pub fn path_error(err: actix_web::error::PathError, _: &actix_web::HttpRequest) -> actix_web::Error {
    ApiError::BadRequest(format!("invalid path: {err}")).into()
}

pub fn query_error(err: actix_web::error::QueryPayloadError, _: &actix_web::HttpRequest) -> actix_web::Error {
    ApiError::BadRequest(format!("invalid query: {err}")).into()
}

impl From<InventoryError> for ApiError {
    fn from(e: InventoryError) -> Self {
        match e {
            InventoryError::ContainerNotFound => ApiError::ContainerNotFound,
            InventoryError::ServiceNotFound => ApiError::ServiceNotFound,
            InventoryError::AmbiguousContainer => ApiError::AmbiguousContainer,
            InventoryError::Store(e) => ApiError::Internal(e.to_string()),
        }
    }
}

impl From<crate::jobs::supervisor::JobsError> for ApiError {
    fn from(e: crate::jobs::supervisor::JobsError) -> Self {
        match e {
            crate::jobs::supervisor::JobsError::OwnContainer => ApiError::OwnContainer,
            crate::jobs::supervisor::JobsError::MonitorOnly => ApiError::MonitorOnly,
            crate::jobs::supervisor::JobsError::Excluded => ApiError::Excluded,
        }
    }
}

impl From<crate::swarm::SwarmError> for ApiError {
    fn from(e: crate::swarm::SwarmError) -> Self {
        match e {
            crate::swarm::SwarmError::NoManager => ApiError::NoSwarmManager,
        }
    }
}

impl From<actix::MailboxError> for ApiError {
    fn from(e: actix::MailboxError) -> Self {
        ApiError::Internal(format!("actor unavailable: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::to_bytes;

    #[actix_web::test]
    async fn bodies_match_the_contract() {
        let cases = [
            (ApiError::BadPath, 400, "bad path: /api/images/{id}/{action}\n"),
            (ApiError::MisdirectedRequest, 421, "misdirected request\n"),
            (ApiError::OwnContainer, 409, "cannot update shipshape's own container\n"),
            (ApiError::MonitorOnly, 409, "monitor only\n"),
            (ApiError::Excluded, 409, "excluded by label\n"),
            (ApiError::CrossOrigin, 403, "cross-origin request refused\n"),
            (ApiError::UnknownAction, 400, "unknown action\n"),
            (ApiError::ContainerNotFound, 404, "container not found\n"),
            (ApiError::AmbiguousContainer, 409, "ambiguous container id\n"),
            (ApiError::NoProgress, 404, "no progress\n"),
            (ApiError::MethodNotAllowed, 405, "method not allowed\n"),
            (ApiError::Internal("secret detail".into()), 500, "internal error\n"),
            (ApiError::Unauthorized, 401, "unauthorized\n"),
            (ApiError::InvalidCredentials, 401, "invalid credentials\n"),
            (ApiError::PayloadTooLarge, 413, "payload too large\n"),
        ];
        let limited = ApiError::TooManyRequests(std::time::Duration::from_millis(2500)).error_response();
        assert_eq!(limited.status().as_u16(), 429);
        assert_eq!(limited.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("3"));
        for (err, status, body) in cases {
            let resp = err.error_response();
            assert_eq!(resp.status().as_u16(), status);
            let bytes = to_bytes(resp.into_body()).await.expect("body");
            assert_eq!(bytes, body.as_bytes());
        }
    }
}
