//! HTTP layer of the reference service: routes, authentication, request parsing
//! and answers. Handlers are thin: parse, check, call the store, map the outcome.
//!
//! Authentication gives each request a [`Caller`]: a site (its token, looked up by
//! hash in the database) or the shared token. A site creates tickets only for
//! itself and touches only its own tickets (403 otherwise); its list holds only its
//! tickets.

use std::sync::Arc;

use axum::Extension;
use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use jiff::tz::Offset;
use serde::de::DeserializeOwned;

use subtle::ConstantTimeEq as _;

use super::control::{CentralControl, inject_faults};
use super::error::ApiError;
use super::http::time_limit;
use super::limits::Limits;
use super::record::TicketList;
use super::store::{Appended, Located, Opened, Store};
use tend_wire::model::{CloseRequest, Created, NewTicket, TicketEvent, TicketStatus, WireTime};

/// Longest idempotency key accepted.
const MAX_KEY_LEN: usize = 1024;

/// What every handler shares.
#[derive(Clone)]
pub(crate) struct AppState {
    /// The database.
    store: Store,
    /// The shared token that acts for every site, if the service has one.
    token: Option<Arc<str>>,
    /// What a request may hold.
    limits: Arc<Limits>,
}

/// Who sent a request (from its bearer token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Caller {
    /// The shared token: every site.
    Shared,
    /// A site's token: that site only.
    Site(String),
}

impl Caller {
    /// The site the caller is limited to.
    fn scope(&self) -> Option<&str> {
        match self {
            Self::Shared => None,
            Self::Site(site) => Some(site),
        }
    }

    /// Who did it, for the ticket's timeline.
    fn who(&self) -> String {
        match self {
            Self::Shared => "the API (shared token)".to_owned(),
            Self::Site(site) => format!("site {site} (API)"),
        }
    }
}

/// The OpenAPI 3 document of the API (spec endpoints and extensions), served at
/// `GET /api/v1/openapi.json`. A test checks it against [`routes`].
pub(crate) const OPENAPI: &str = include_str!("openapi.json");

/// Every route of the API behind the token: (method, path, handler).
pub(crate) fn routes() -> Vec<(Method, &'static str, MethodRouter<AppState>)> {
    vec![
        (Method::POST, "/api/v1/tickets", post(create)),
        (Method::GET, "/api/v1/tickets", get(list)),
        (Method::GET, "/api/v1/tickets/{ticket_id}", get(read)),
        (Method::POST, "/api/v1/tickets/{ticket_id}/events", post(add_event)),
        (Method::POST, "/api/v1/tickets/{ticket_id}/close", post(close)),
        (Method::POST, "/api/v1/tickets/{ticket_id}/acknowledge", post(acknowledge)),
        (Method::POST, "/api/v1/tickets/{ticket_id}/start", post(start_work)),
    ]
}

/// The path of the OpenAPI document (served without a token: it holds no data).
pub(crate) const OPENAPI_PATH: &str = "/api/v1/openapi.json";

/// The service's routes, behind authentication and fault injection, and the
/// OpenAPI document.
pub(crate) fn router(
    store: Store,
    token: Option<&str>,
    limits: Arc<Limits>,
    control: CentralControl,
) -> Router {
    let request_timeout = limits.request_timeout;
    let body_limit = limits.max_body_bytes;
    let state = AppState { store, token: token.map(Arc::from), limits };
    let mut api = Router::new();
    for (_, path, handler) in routes() {
        // Routes on one path merge their methods.
        api = api.route(path, handler);
    }
    let api = api
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), require_token))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(control, inject_faults))
        .layer(middleware::from_fn_with_state(request_timeout, time_limit))
        .with_state(state);
    Router::new()
        .route(OPENAPI_PATH, get(|| async { ([(CONTENT_TYPE, "application/json")], OPENAPI) }))
        .merge(api)
}

type Answer<T> = Result<(StatusCode, Json<T>), ApiError>;

/// Rejects requests without a known `Authorization: Bearer <token>`; lets the
/// others through with their [`Caller`].
async fn require_token(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let presented = request.headers().get(AUTHORIZATION).map(|value| {
        value
            .to_str()
            .ok()
            .and_then(|v| v.trim().split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim().to_owned())
    });
    let message = match presented {
        None => "missing bearer token (send Authorization: Bearer <token>)",
        Some(Some(token)) => match caller(&state, &token).await {
            Ok(Some(caller)) => {
                request.extensions_mut().insert(caller);
                return next.run(request).await;
            }
            Ok(None) => "invalid bearer token",
            Err(error) => return error.into_response(),
        },
        Some(None) => "malformed Authorization header (expected: Bearer <token>)",
    };
    let mut response = ApiError::new(StatusCode::UNAUTHORIZED, message).into_response();
    response.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// The caller a token stands for: the shared token, or a site's live token.
async fn caller(state: &AppState, token: &str) -> Result<Option<Caller>, ApiError> {
    if let Some(shared) = &state.token
        && same(token.as_bytes(), shared.as_bytes())
    {
        return Ok(Some(Caller::Shared));
    }
    if token.is_empty() || token.len() > MAX_KEY_LEN {
        return Ok(None);
    }
    Ok(state.store.site_of_token(token).await?.map(Caller::Site))
}

/// Compares secrets in time independent of where they differ (lengths are not secret).
pub(crate) fn same(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// The `Idempotency-Key` header: required, visible ASCII, at most 1 KiB.
fn idempotency_key(headers: &HeaderMap) -> Result<String, ApiError> {
    let bad = |message: &str| ApiError::new(StatusCode::BAD_REQUEST, message);
    let value = headers
        .get("idempotency-key")
        .ok_or_else(|| bad("the Idempotency-Key header is required"))?;
    let key =
        value.to_str().map_err(|_| bad("the Idempotency-Key header must be visible ASCII"))?.trim();
    if key.is_empty() {
        return Err(bad("the Idempotency-Key header must not be empty"));
    }
    if key.len() > MAX_KEY_LEN {
        return Err(bad("the Idempotency-Key header is longer than 1024 bytes"));
    }
    Ok(key.to_owned())
}

/// The body, or 413 naming the limit when it is too large.
fn body_of(body: Result<Bytes, BytesRejection>, limits: &Limits) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the body is larger than the limit of {} bytes", limits.max_body_bytes),
            )
        } else {
            ApiError::new(rejection.status(), rejection.body_text())
        }
    })
}

/// 422 listing the limits a body broke.
fn over_limits(what: &str, problems: &[String]) -> ApiError {
    ApiError::unprocessable(format!("invalid {what}: {}", problems.join("; ")))
}

/// Parses a JSON body: 400 when it is not JSON, 422 when it is JSON of the wrong
/// shape.
fn parse<T: DeserializeOwned>(body: &[u8], what: &str) -> Result<T, ApiError> {
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("invalid JSON: {e}")))?;
    serde_json::from_value(value)
        .map_err(|e| ApiError::unprocessable(format!("invalid {what}: {e}")))
}

/// The service clock, in UTC.
fn now() -> WireTime {
    WireTime::from_timestamp(jiff::Timestamp::now(), Offset::UTC)
}

fn unknown(ticket_id: &str) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, format!("no ticket {ticket_id:?}"))
}

/// The number of ticket `ticket_id`, when the caller may touch it.
async fn locate(state: &AppState, caller: &Caller, ticket_id: &str) -> Result<i64, ApiError> {
    match state.store.locate(ticket_id, caller.scope()).await? {
        Located::Found(number) => Ok(number),
        Located::Unknown => Err(unknown(ticket_id)),
        Located::OtherSite => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("ticket {ticket_id:?} belongs to another site than this token's"),
        )),
        Located::Ambiguous => Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("two sites use ticket id {ticket_id:?}; use the site's own token"),
        )),
    }
}

fn key_reused(created: &tend_wire::model::Created) -> ApiError {
    ApiError::unprocessable(format!(
        "this Idempotency-Key was used before with a different body (for ticket {:?}, {}); \
         a new request needs a new key",
        created.ticket_id, created.number
    ))
}

/// `POST /api/v1/tickets`.
async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer<Created> {
    let body = body_of(body, &state.limits)?;
    let key = idempotency_key(&headers)?;
    let ticket: NewTicket = parse(&body, "ticket")?;
    ticket.validate().map_err(|e| ApiError::unprocessable(format!("invalid ticket: {e}")))?;
    state.limits.check_ticket(&ticket).map_err(|p| over_limits("ticket", &p))?;
    if let Some(site) = caller.scope()
        && site != ticket.site
    {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "this token is site {site:?}'s; it cannot open tickets for site {:?}",
                ticket.site
            ),
        ));
    }
    match state.store.open_ticket(&key, &ticket, &now()).await? {
        Opened::Created(created) => {
            tracing::info!(number = %created.number, ticket_id = %created.ticket_id, "ticket opened");
            Ok((StatusCode::CREATED, Json(created)))
        }
        Opened::Replayed(created) => Ok((StatusCode::OK, Json(created))),
        Opened::KeyReused(created) => Err(key_reused(&created)),
        Opened::Conflict(existing) => Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "ticket {:?} exists ({}) with a different body under another idempotency key",
                existing.ticket_id, existing.number
            ),
        )),
    }
}

/// `POST /api/v1/tickets/{ticket_id}/events`.
async fn add_event(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(ticket_id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer<Created> {
    let body = body_of(body, &state.limits)?;
    let key = idempotency_key(&headers)?;
    let event: TicketEvent = parse(&body, "event")?;
    event.validate().map_err(|e| ApiError::unprocessable(format!("invalid event: {e}")))?;
    state.limits.check_event(&event).map_err(|p| over_limits("event", &p))?;
    let number = locate(&state, &caller, &ticket_id).await?;
    let cap = state.limits.max_events_per_ticket;
    match state.store.add_event(number, &key, &event, &now(), cap).await? {
        Appended::Added(created) => Ok((StatusCode::CREATED, Json(created))),
        Appended::Replayed(created) => Ok((StatusCode::OK, Json(created))),
        Appended::KeyReused(created) => Err(key_reused(&created)),
        Appended::Full { limit } => Err(ApiError::unprocessable(format!(
            "ticket {ticket_id:?} holds {limit} events, the limit of events per ticket; \
             no more are recorded on it"
        ))),
        Appended::UnknownTicket => Err(unknown(&ticket_id)),
    }
}

/// `GET /api/v1/tickets/{ticket_id}`.
async fn read(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(ticket_id): Path<String>,
) -> Answer<TicketStatus> {
    let number = locate(&state, &caller, &ticket_id).await?;
    match state.store.get(number).await? {
        Some(record) => Ok((StatusCode::OK, Json(record.status_view()))),
        None => Err(unknown(&ticket_id)),
    }
}

/// `POST /api/v1/tickets/{ticket_id}/close`.
async fn close(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(ticket_id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Answer<TicketStatus> {
    let body = body_of(body, &state.limits)?;
    let request: CloseRequest = parse(&body, "close request")?;
    request
        .validate()
        .map_err(|e| ApiError::unprocessable(format!("invalid close request: {e}")))?;
    state
        .limits
        .check_resolution(&request.resolution)
        .map_err(|p| over_limits("close request", &p))?;
    let number = locate(&state, &caller, &ticket_id).await?;
    let CloseRequest { resolution, closed_at } = request;
    match state.store.close_ticket(number, &resolution, &closed_at, &caller.who()).await? {
        Some(changed) => Ok((StatusCode::OK, Json(changed.record.status_view()))),
        None => Err(unknown(&ticket_id)),
    }
}

/// `POST /api/v1/tickets/{ticket_id}/acknowledge` (body ignored).
async fn acknowledge(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(ticket_id): Path<String>,
) -> Answer<TicketStatus> {
    let number = locate(&state, &caller, &ticket_id).await?;
    match state.store.acknowledge(number, &now(), &caller.who()).await? {
        Some(changed) => Ok((StatusCode::OK, Json(changed.record.status_view()))),
        None => Err(unknown(&ticket_id)),
    }
}

/// `POST /api/v1/tickets/{ticket_id}/start`: work is under way (a technician on
/// site); open or acknowledged becomes in_progress, other states stay.
async fn start_work(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(ticket_id): Path<String>,
) -> Answer<TicketStatus> {
    let number = locate(&state, &caller, &ticket_id).await?;
    match state.store.start_work(number, &now(), &caller.who()).await? {
        Some(changed) => Ok((StatusCode::OK, Json(changed.record.status_view()))),
        None => Err(unknown(&ticket_id)),
    }
}

/// `GET /api/v1/tickets`: the caller's tickets with their events, by number.
async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Answer<TicketList> {
    Ok((StatusCode::OK, Json(TicketList { tickets: state.store.list(caller.scope()).await? })))
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no such endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed on this endpoint")
}
