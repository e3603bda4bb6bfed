//! Handlers: parse the request, ask an actor or read the published view, answer.

use actix_web::http::Method;
use actix_web::{middleware, web, HttpRequest, HttpResponse};
use serde_json::json;

use super::error::ApiError;
use super::AppState;
use crate::inventory::resolve::Resolved;
use crate::inventory::view::ImageGroup;
use crate::inventory::{CurrentView, FindContainer, ToggleAutoUpdate, ToggleServiceAutoUpdate};
use crate::jobs::supervisor::{GetProgress, StartUpdate};
use crate::notify::SendTest;
use crate::registry::poller::CheckNow;
use crate::registry::reference;
use crate::store::History;
use crate::swarm::view::ServiceItem;
use crate::swarm::{GetServiceProgress, UpdateService};

/// Public routes first; everything else under `/api` lives in one scope
/// behind the session guard, so a path the guard does not know is protected.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let resource = |path: &str| web::resource(path).default_service(web::to(method_not_allowed));
    cfg.service(resource("/health").route(web::get().to(health)))
        .service(resource("/api/login").route(web::post().to(super::auth::login)))
        .service(resource("/api/logout").route(web::post().to(super::auth::logout)))
        .service(resource("/api/auth/status").route(web::get().to(super::auth::status)))
        .service(
            resource("/metrics")
                .wrap(middleware::from_fn(super::metrics::guard))
                .route(web::get().to(super::metrics::metrics)),
        )
        .service(
            web::scope("/api")
                .wrap(middleware::from_fn(super::auth::require_session))
                .service(resource("/images").route(web::get().to(list_images)))
                .service(resource("/check").route(web::post().to(check_now)))
                .service(web::resource("/images/{tail:.*}").default_service(web::to(container_action)))
                .service(resource("/groups/{image:.*}/update").route(web::post().to(update_group)))
                .service(resource("/services").route(web::get().to(list_services)))
                .service(resource("/services/{id}/update").route(web::post().to(update_service)))
                .service(resource("/services/{id}/auto-update").route(web::post().to(toggle_service)))
                .service(resource("/services/{id}/progress").route(web::get().to(service_progress)))
                .service(resource("/history").route(web::get().to(history)))
                .service(resource("/engine").route(web::get().to(engine_state)))
                .service(resource("/hosts").route(web::get().to(hosts)))
                .service(resource("/settings").route(web::get().to(settings)))
                .service(resource("/ws").route(web::get().to(super::ws::connect)))
                .service(resource("/notify/test").route(web::post().to(notify_test)))
                .service(resource("/openapi.yaml").route(web::get().to(openapi)))
                .default_service(web::to(not_found)),
        )
        .configure(super::static_files::configure)
        .default_service(web::to(not_found));
}

async fn health() -> HttpResponse {
    HttpResponse::Ok().finish()
}

/// The API description, embedded so the binary always serves the one it was
/// built with (tests/openapi.rs checks that file against the running code).
const OPENAPI: &str = include_str!("../../docs/openapi.yaml");

async fn openapi() -> HttpResponse {
    HttpResponse::Ok().content_type("application/yaml").body(OPENAPI)
}

async fn method_not_allowed() -> Result<HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed)
}

async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound)
}

#[derive(serde::Deserialize)]
struct ImagesQuery {
    all: Option<String>,
}

/// `?all=1` (or `true`) lists excluded containers too, marked `"excluded": true`.
async fn list_images(query: web::Query<ImagesQuery>, state: web::Data<AppState>) -> HttpResponse {
    let all = query.all.as_deref().is_some_and(|v| matches!(v, "1" | "true" | "yes" | "on"));
    let body = {
        let view = state.view.borrow();
        if all {
            view.json_all.clone()
        } else {
            view.json.clone()
        }
    };
    HttpResponse::Ok().content_type("application/json").body(body)
}

/// The first engine's state (the only one's, with one engine).
async fn engine_state(state: web::Data<AppState>) -> HttpResponse {
    let engine = state.engine.borrow().clone();
    HttpResponse::Ok().json(engine)
}

/// Every engine, in the configured order.
async fn hosts(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(super::hosts_json(&state.hosts))
}

async fn settings(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(&state.settings)
}

/// Sends a test message to every notification target; answers per target.
async fn notify_test(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let results = state.notifier.send(SendTest).await?;
    Ok(HttpResponse::Ok().json(results))
}

#[derive(serde::Deserialize)]
struct CheckQuery {
    tags: Option<String>,
}

/// Runs a registry check of every image now and answers the fresh view;
/// with `?tags=1` every repository's tags are listed again too.
async fn check_now(query: web::Query<CheckQuery>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let tags = match query.tags.as_deref() {
        None | Some("0" | "false") => false,
        Some("1" | "true") => true,
        Some(_) => return Err(ApiError::BadRequest("tags must be 1 or 0".into())),
    };
    state.poller.send(CheckNow { tags }).await?;
    let view = state.inventory.send(CurrentView).await?;
    Ok(HttpResponse::Ok().content_type("application/json").body(view.json.clone()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Update,
    AutoUpdate,
    Progress,
}

impl Action {
    fn method(self) -> Method {
        match self {
            Action::Update | Action::AutoUpdate => Method::POST,
            Action::Progress => Method::GET,
        }
    }
}

/// Splits what follows `/api/images/` into an id and an action, in the
/// contract's order of checks: the path's shape first, then the action name.
pub fn parse_container_path(tail: &str) -> Result<(&str, Action), ApiError> {
    let mut parts = tail.split('/');
    let (Some(id), Some(action), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(ApiError::BadPath);
    };
    if id.is_empty() || action.is_empty() {
        return Err(ApiError::BadPath);
    }
    let action = match action {
        "update" => Action::Update,
        "auto-update" => Action::AutoUpdate,
        "progress" => Action::Progress,
        _ => return Err(ApiError::UnknownAction),
    };
    Ok((id, action))
}

async fn container_action(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let tail = req.match_info().get("tail").unwrap_or_default();
    let (id, action) = parse_container_path(tail)?;
    if req.method() != action.method() {
        return Err(ApiError::MethodNotAllowed);
    }
    match action {
        Action::AutoUpdate => {
            let enabled = state.inventory.send(ToggleAutoUpdate { container_id: id.to_string() }).await??;
            Ok(HttpResponse::Ok().json(json!({ "auto_update": enabled })))
        }
        Action::Update => {
            // Mid-update the container may be stopped or renamed, out of
            // the view: its running job answers for it.
            match state.jobs.send(GetProgress { container_id: id.to_string() }).await? {
                Resolved::One(p) if !p.is_final() => return Ok(updating()),
                Resolved::Ambiguous => return Err(ApiError::AmbiguousContainer),
                _ => {}
            }
            let container = state.inventory.send(FindContainer { container_id: id.to_string() }).await??;
            if let Some(service) = swarm_service(&container) {
                return Err(ApiError::SwarmManaged(service));
            }
            let to_tag = requested_tag(&body)?;
            if let Some(tag) = &to_tag {
                let view = state.view.borrow();
                let short: String = container.id.chars().take(12).collect();
                let group = view
                    .groups
                    .iter()
                    .find(|g| g.containers.iter().any(|c| c.container_id == short && c.host == container.host));
                offered(group, tag)?;
            }
            let image_ref = retagged(&container.image_ref, to_tag.as_deref());
            state.jobs.send(StartUpdate { targets: vec![container], image_ref, automatic: false, to_tag }).await??;
            Ok(updating())
        }
        Action::Progress => {
            // A container in the middle of its update may be stopped or
            // renamed: its job answers for it.
            match state.jobs.send(GetProgress { container_id: id.to_string() }).await? {
                Resolved::One(progress) => return Ok(HttpResponse::Ok().json(progress)),
                Resolved::Ambiguous => return Err(ApiError::AmbiguousContainer),
                Resolved::None => {}
            }
            state.inventory.send(FindContainer { container_id: id.to_string() }).await??;
            Err(ApiError::NoProgress)
        }
    }
}

/// The service a Swarm task's container belongs to.
fn swarm_service(container: &crate::docker::model::Container) -> Option<String> {
    use crate::docker::swarm::{SERVICE_ID_LABEL, SERVICE_NAME_LABEL};
    let labels = &container.labels;
    labels
        .contains_key(SERVICE_ID_LABEL)
        .then(|| labels.get(SERVICE_NAME_LABEL).or_else(|| labels.get(SERVICE_ID_LABEL)).cloned().unwrap_or_default())
}

/// The Swarm services (`[]` when the engine is no swarm manager).
async fn list_services(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let view = state.inventory.send(CurrentView).await?;
    Ok(HttpResponse::Ok().content_type("application/json").body(view.services_json.clone()))
}

/// A service by its id (or a unique prefix of 12 or more) in the current view.
fn find_service(state: &AppState, id: &str) -> Result<ServiceItem, ApiError> {
    let view = state.view.borrow();
    let services = view.services.as_deref().unwrap_or_default();
    let mut matching = services.iter().filter(|s| s.id == id || (id.len() >= 12 && s.id.starts_with(id)));
    match (matching.next(), matching.next()) {
        (Some(service), None) => Ok(service.clone()),
        _ => Err(ApiError::ServiceNotFound),
    }
}

/// Rolls the service out to the registry's digest of its tag, through Swarm.
async fn update_service(path: web::Path<String>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let service = find_service(&state, &path.into_inner())?;
    let image = service.target.clone().ok_or_else(|| ApiError::DigestUnknown(service.image.clone()))?;
    let request = UpdateService {
        service_id: service.id,
        service_name: service.name,
        image,
        from_digest: service.pinned,
        automatic: false,
    };
    state.services.send(request).await??;
    Ok(updating())
}

async fn toggle_service(path: web::Path<String>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let service = find_service(&state, &path.into_inner())?;
    let enabled = state.inventory.send(ToggleServiceAutoUpdate { service_id: service.id }).await??;
    Ok(HttpResponse::Ok().json(json!({ "auto_update": enabled })))
}

async fn service_progress(path: web::Path<String>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let service = find_service(&state, &path.into_inner())?;
    let progress = state.services.send(GetServiceProgress { service_id: service.id }).await?;
    Ok(HttpResponse::Ok().json(progress.ok_or(ApiError::NoProgress)?))
}

fn updating() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "updating" }))
}

/// The optional body of an update: `{"tag":"1.26.2"}` moves to that tag.
/// No body (the contract's form) keeps the tag.
fn requested_tag(body: &[u8]) -> Result<Option<String>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct UpdateBody {
        tag: Option<String>,
    }
    let parsed: UpdateBody =
        serde_json::from_slice(body).map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))?;
    Ok(parsed.tag)
}

/// A tag may only be chosen from what the group is offered: the check
/// decided it is newer and of the same kind of tag.
fn offered(group: Option<&ImageGroup>, tag: &str) -> Result<(), ApiError> {
    let group = group.ok_or(ApiError::ContainerNotFound)?;
    if group.versions.newer.offers(tag) {
        return Ok(());
    }
    let newer = &group.versions.newer;
    let offers: Vec<String> = [("patch", &newer.patch), ("minor", &newer.minor), ("major", &newer.major)]
        .into_iter()
        .filter_map(|(kind, t)| t.as_ref().map(|t| format!("{t} ({kind})")))
        .collect();
    let tag: String = tag.chars().take(128).collect();
    Err(ApiError::BadRequest(if offers.is_empty() {
        format!("tag {tag:?} is not offered: no newer version of {} is known", group.image)
    } else {
        format!("tag {tag:?} is not offered for {}; newer: {}", group.image, offers.join(", "))
    }))
}

fn retagged(image_ref: &str, tag: Option<&str>) -> String {
    tag.map_or_else(|| image_ref.to_string(), |t| reference::with_tag(image_ref, t))
}

/// `{image}` is only ever compared with the view's group names.
async fn update_group(
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let image = path.into_inner();
    let to_tag = requested_tag(&body)?;
    let ids: Vec<String> = {
        let view = state.view.borrow();
        let group = view.groups.iter().find(|g| g.image == image).ok_or(ApiError::GroupNotFound)?;
        if let Some(tag) = &to_tag {
            offered(Some(group), tag)?;
        }
        // Excluded containers are not the group's to update; monitor-only
        // ones go along so that the history says they were skipped. A group
        // spans engines: each container is named with its engine.
        group.containers.iter().filter(|c| !c.excluded).map(|c| format!("{}:{}", c.host, c.container_id)).collect()
    };
    let mut targets = Vec::with_capacity(ids.len());
    for id in ids {
        if let Ok(container) = state.inventory.send(FindContainer { container_id: id }).await? {
            targets.push(container);
        }
    }
    let image_ref =
        targets.first().map(|c| retagged(&c.image_ref, to_tag.as_deref())).ok_or(ApiError::GroupNotFound)?;
    state.jobs.send(StartUpdate { targets, image_ref, automatic: false, to_tag }).await??;
    Ok(updating())
}

#[derive(serde::Deserialize)]
struct HistoryQuery {
    limit: Option<usize>,
}

/// Newest first; `limit` 1–500, default 50.
async fn history(query: web::Query<HistoryQuery>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let limit = query.limit.unwrap_or(50).clamp(1, 500);
    let entries = state.store.send(History { limit }).await?.map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(HttpResponse::Ok().json(entries))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_paths() {
        let ok = [
            ("abc/update", ("abc", Action::Update)),
            ("abc/auto-update", ("abc", Action::AutoUpdate)),
            ("abc/progress", ("abc", Action::Progress)),
        ];
        for (tail, expected) in ok {
            assert_eq!(parse_container_path(tail).ok(), Some(expected), "{tail}");
        }
        for tail in ["", "abc", "abc/", "/update", "abc/update/x", "abc//update", "a/b/c"] {
            assert!(matches!(parse_container_path(tail), Err(ApiError::BadPath)), "{tail}");
        }
        for tail in ["abc/delete", "abc/Update", "abc/auto_update"] {
            assert!(matches!(parse_container_path(tail), Err(ApiError::UnknownAction)), "{tail}");
        }
    }
}
