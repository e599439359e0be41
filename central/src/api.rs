//! HTTP layer of the reference service: routes, authentication, request parsing
//! and answers. Handlers are thin: parse, call the store, map the outcome.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Request, State};
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
use super::record::TicketList;
use super::store::{Appended, Opened, Store};
use tend_wire::model::{CloseRequest, Created, NewTicket, TicketEvent, TicketStatus, WireTime};

/// Longest idempotency key accepted.
const MAX_KEY_LEN: usize = 1024;

/// What every handler shares.
#[derive(Clone)]
pub(crate) struct AppState {
    /// The database.
    store: Arc<Store>,
    /// The bearer token every request must carry.
    token: Arc<str>,
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
    ]
}

/// The path of the OpenAPI document (served without a token: it holds no data).
pub(crate) const OPENAPI_PATH: &str = "/api/v1/openapi.json";

/// The service's routes, behind authentication and fault injection, and the
/// OpenAPI document.
pub(crate) fn router(store: Arc<Store>, token: &str, control: CentralControl) -> Router {
    let state = AppState { store, token: token.into() };
    let mut api = Router::new();
    for (_, path, handler) in routes() {
        // Routes on one path merge their methods.
        api = api.route(path, handler);
    }
    let api = api
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), require_token))
        .layer(middleware::from_fn_with_state(control, inject_faults))
        .with_state(state);
    Router::new()
        .route(OPENAPI_PATH, get(|| async { ([(CONTENT_TYPE, "application/json")], OPENAPI) }))
        .merge(api)
}

type Answer<T> = Result<(StatusCode, Json<T>), ApiError>;

/// Rejects requests without the right `Authorization: Bearer <token>`.
async fn require_token(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let presented = request.headers().get(AUTHORIZATION).map(|value| {
        value
            .to_str()
            .ok()
            .and_then(|v| v.trim().split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
    });
    let message = match presented {
        None => "missing bearer token (send Authorization: Bearer <token>)",
        Some(Some(token)) if same(token.as_bytes(), state.token.as_bytes()) => {
            return next.run(request).await;
        }
        Some(Some(_)) => "invalid bearer token",
        Some(None) => "malformed Authorization header (expected: Bearer <token>)",
    };
    let mut response = ApiError::new(StatusCode::UNAUTHORIZED, message).into_response();
    response.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
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

/// `POST /api/v1/tickets`.
async fn create(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Answer<Created> {
    let key = idempotency_key(&headers)?;
    let ticket: NewTicket = parse(&body, "ticket")?;
    ticket.validate().map_err(|e| ApiError::unprocessable(format!("invalid ticket: {e}")))?;
    match state.store.open_ticket(&key, &ticket, &now()).await? {
        Opened::Created(created) => {
            tracing::info!(number = %created.number, ticket_id = %created.ticket_id, "ticket opened");
            Ok((StatusCode::CREATED, Json(created)))
        }
        Opened::Replayed(created) => Ok((StatusCode::OK, Json(created))),
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
    Path(ticket_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer<Created> {
    let key = idempotency_key(&headers)?;
    let event: TicketEvent = parse(&body, "event")?;
    event.validate().map_err(|e| ApiError::unprocessable(format!("invalid event: {e}")))?;
    match state.store.add_event(&ticket_id, &key, &event, &now()).await? {
        Appended::Added(created) => Ok((StatusCode::CREATED, Json(created))),
        Appended::Replayed(created) => Ok((StatusCode::OK, Json(created))),
        Appended::UnknownTicket => Err(unknown(&ticket_id)),
    }
}

/// `GET /api/v1/tickets/{ticket_id}`.
async fn read(
    State(state): State<AppState>,
    Path(ticket_id): Path<String>,
) -> Answer<TicketStatus> {
    match state.store.get(&ticket_id)? {
        Some(record) => Ok((StatusCode::OK, Json(record.status_view()))),
        None => Err(unknown(&ticket_id)),
    }
}

/// `POST /api/v1/tickets/{ticket_id}/close`.
async fn close(
    State(state): State<AppState>,
    Path(ticket_id): Path<String>,
    body: Bytes,
) -> Answer<TicketStatus> {
    let request: CloseRequest = parse(&body, "close request")?;
    request
        .validate()
        .map_err(|e| ApiError::unprocessable(format!("invalid close request: {e}")))?;
    let CloseRequest { resolution, closed_at } = request;
    match state.store.update(&ticket_id, |record| record.close(resolution, closed_at)).await? {
        Some(record) => Ok((StatusCode::OK, Json(record.status_view()))),
        None => Err(unknown(&ticket_id)),
    }
}

/// `POST /api/v1/tickets/{ticket_id}/acknowledge` (body ignored).
async fn acknowledge(
    State(state): State<AppState>,
    Path(ticket_id): Path<String>,
) -> Answer<TicketStatus> {
    let at = now();
    match state.store.update(&ticket_id, |record| record.acknowledge(at)).await? {
        Some(record) => Ok((StatusCode::OK, Json(record.status_view()))),
        None => Err(unknown(&ticket_id)),
    }
}

/// `GET /api/v1/tickets`: every ticket with its events, by number.
async fn list(State(state): State<AppState>) -> Answer<TicketList> {
    Ok((StatusCode::OK, Json(TicketList { tickets: state.store.list()? })))
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no such endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed on this endpoint")
}
