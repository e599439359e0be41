//! The maintenance desk: the central service's web page for the people who take
//! the tickets. Server-rendered HTML; one small script refreshes the page in place.
//!
//! Routes (see [`auth`] for who may use them):
//! - `GET /` redirects to `GET /desk`: open tickets, most urgent first (a whole
//!   site down, device type `site`, above everything), filtered by
//!   `?site=&type=&kind=&status=`; the database sorts and pages (at most
//!   [`QUEUE_ROWS`] rows), so the page stays quick with 100,000 tickets.
//! - `GET /desk/tickets/{id}`: one ticket with everything the agent sent and what
//!   happened since; `POST …/acknowledge`, `POST …/start` (work under way: the
//!   agent holds the device's alarms while an inspection is in progress) and
//!   `POST …/close` (form field
//!   `resolution`) act on it, then redirect back to it (post/redirect/get).
//! - `GET|POST /desk/login`, `POST /desk/logout`; `GET /desk/assets/*` (public).
//!
//! The ticket's timeline names who acknowledged and who closed it.
//!
//! Closing here is the same store write as `POST /api/v1/tickets/{id}/close`, with
//! `closed_at` the service clock in the site's offset, so the agent's sync reads it
//! like any other close. Unlike the API (idempotent by contract), the desk tells a
//! person when their action changed nothing: acknowledging a ticket that is no
//! longer open, or closing a closed one, is a 409 page saying who got there first.
//!
//! # Layout
//! - [`auth`]: desk users' sign-in, sessions, the slow-down, origin check.
//! - [`board`]: urgency, filters, times for people (pure).
//! - [`page`]: the HTML (pure).

pub(crate) mod auth;
mod board;
mod page;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use std::net::SocketAddr;

use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::HeaderMap;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION, RETRY_AFTER, SET_COOKIE};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use jiff::Timestamp;
use maud::Markup;
use serde::Deserialize;

use self::auth::{DeskAuth, SignIn, Verdict};
use self::board::Filter;
use self::page::Notice;
use super::http::time_limit;
use super::limits::Limits;
use super::store::{Located, QueueFilter, Store, StoreError};
use tend_wire::model::{CloseRequest, Status, WireTime};

/// The desk's stylesheet.
const CSS: &str = include_str!("assets/desk.css");
/// The desk's script: in-place refresh, filters that apply on change.
const JS: &str = include_str!("assets/desk.js");

/// Every page forbids framing and foreign scripts (the script and stylesheet are
/// served from `/desk/assets`).
const CSP: &str = "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'";

/// The most tickets the queue page lists (the most urgent ones; the count says how
/// many match).
pub(crate) const QUEUE_ROWS: u32 = 500;

/// What the desk's handlers share.
#[derive(Clone)]
struct Desk {
    /// The database (the same as the API's).
    store: Store,
    /// Who may use the desk.
    auth: DeskAuth,
    /// The resolution's size limit (the API's).
    limits: Arc<Limits>,
}

/// The signed-in desk user of a request.
#[derive(Debug, Clone)]
struct DeskUser(String);

/// Who did it, for the ticket's timeline.
fn who(user: &str) -> String {
    if user == auth::TOKEN_USER { "the desk token".to_owned() } else { format!("desk user {user}") }
}

/// The desk's routes; `token` (if any) signs in with an empty user name; cookies
/// are `Secure` when `secure`.
pub(crate) fn router(
    store: Store,
    token: Option<&str>,
    secure: bool,
    limits: Arc<Limits>,
) -> Router {
    let request_timeout = limits.request_timeout;
    let desk = Desk { auth: DeskAuth::new(store.clone(), token, secure), store, limits };
    let guarded = Router::new()
        .route("/desk", get(queue))
        .route("/desk/tickets/{ticket_id}", get(detail))
        .route("/desk/tickets/{ticket_id}/acknowledge", post(acknowledge))
        .route("/desk/tickets/{ticket_id}/start", post(start_work))
        .route("/desk/tickets/{ticket_id}/close", post(close))
        .route("/desk/logout", post(logout))
        .route_layer(middleware::from_fn_with_state(desk.clone(), require_sign_in));
    Router::new()
        .route("/", get(|| async { Redirect::to("/desk") }))
        .route("/desk/", get(|| async { Redirect::permanent("/desk") }))
        .route("/desk/login", get(login_page).post(login))
        .route("/desk/assets/desk.css", get(|| async { asset("text/css; charset=utf-8", CSS) }))
        .route(
            "/desk/assets/desk.js",
            get(|| async { asset("text/javascript; charset=utf-8", JS) }),
        )
        .merge(guarded)
        .layer(middleware::from_fn(security_headers))
        .layer(middleware::from_fn_with_state(request_timeout, time_limit))
        .with_state(desk)
}

/// A failed desk request, shown as a page: the status, a title, what went wrong
/// and a link back.
#[derive(Debug)]
struct DeskError {
    status: StatusCode,
    title: &'static str,
    message: String,
    back: String,
}

impl DeskError {
    fn new(status: StatusCode, title: &'static str, message: impl Into<String>) -> Self {
        Self { status, title, message: message.into(), back: "/desk".into() }
    }

    fn back(mut self, to: String) -> Self {
        self.back = to;
        self
    }

    fn unknown(ticket_id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "Unknown ticket",
            format!("There is no ticket {ticket_id:?}."),
        )
    }
}

impl IntoResponse for DeskError {
    fn into_response(self) -> Response {
        let markup = page::error(self.status.as_u16(), self.title, &self.message, &self.back);
        (self.status, markup).into_response()
    }
}

impl From<StoreError> for DeskError {
    fn from(error: StoreError) -> Self {
        tracing::error!(%error, "central store failed (desk)");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Storage error",
            format!("The ticket database failed: {error}. Nothing was changed; try again."),
        )
    }
}

/// Lets signed-in people (and bearer-token scripts) through; sends others to
/// sign in (pages) or answers 401 (writes), 403 for foreign-origin writes.
async fn require_sign_in(State(desk): State<Desk>, mut request: Request, next: Next) -> Response {
    let verdict = match desk.auth.check(request.method(), request.headers()).await {
        Ok(verdict) => verdict,
        Err(error) => return DeskError::from(error).into_response(),
    };
    match verdict {
        Verdict::Allowed(user) => {
            request.extensions_mut().insert(DeskUser(user));
            next.run(request).await
        }
        Verdict::SignIn if request.method() == axum::http::Method::GET => {
            let target = request.uri().path_and_query().map_or("/desk", |pq| pq.as_str());
            Redirect::to(&format!("/desk/login?next={}", page::encode(target))).into_response()
        }
        Verdict::SignIn => DeskError::new(
            StatusCode::UNAUTHORIZED,
            "Sign in first",
            "You are not signed in to the desk (or your session ended). Sign in and try again; nothing was changed.",
        )
        .back("/desk/login".into())
        .into_response(),
        Verdict::ForeignOrigin => DeskError::new(
            StatusCode::FORBIDDEN,
            "Refused",
            "This form was sent from another site. Nothing was changed.",
        )
        .into_response(),
    }
}

/// Security headers on every desk answer.
async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers
        .insert(HeaderName::from_static("content-security-policy"), HeaderValue::from_static(CSP));
    headers.insert(HeaderName::from_static("x-frame-options"), HeaderValue::from_static("DENY"));
    headers.insert(
        HeaderName::from_static("referrer-policy"),
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(
        HeaderName::from_static("x-content-type-options"),
        HeaderValue::from_static("nosniff"),
    );
    headers.entry(CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    response
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(CONTENT_TYPE, content_type), (CACHE_CONTROL, "public, max-age=300")], body).into_response()
}

/// The service clock.
fn now() -> Timestamp {
    Timestamp::now()
}

/// The number of ticket `ticket_id` (the desk sees every site).
async fn number_of(desk: &Desk, ticket_id: &str) -> Result<i64, DeskError> {
    match desk.store.locate(ticket_id, None).await? {
        Located::Found(number) => Ok(number),
        Located::Unknown | Located::OtherSite => Err(DeskError::unknown(ticket_id)),
        Located::Ambiguous => Err(DeskError::new(
            StatusCode::CONFLICT,
            "Ambiguous ticket",
            format!("Two sites use the ticket id {ticket_id:?}; open it from the queue by number."),
        )),
    }
}

/// Ticket `ticket_id` with its events.
async fn record_of(desk: &Desk, ticket_id: &str) -> Result<super::TicketRecord, DeskError> {
    let number = number_of(desk, ticket_id).await?;
    desk.store.get(number).await?.ok_or_else(|| DeskError::unknown(ticket_id))
}

/// `GET /desk`.
async fn queue(
    State(desk): State<Desk>,
    filter: Result<Query<Filter>, QueryRejection>,
) -> Result<Markup, DeskError> {
    let Query(filter) = filter.map_err(|e| {
        DeskError::new(
            StatusCode::BAD_REQUEST,
            "Bad filter",
            format!("The filter is not understood: {}.", e.body_text()),
        )
    })?;
    filter.validate().map_err(|e| {
        DeskError::new(
            StatusCode::BAD_REQUEST,
            "Bad filter",
            format!("The filter is not understood: {e}."),
        )
    })?;
    let wanted = QueueFilter {
        site: filter.site.clone(),
        device_type: filter.device_type.clone(),
        kind: filter.kind.clone(),
        status: filter.status.clone(),
    };
    let at = now();
    let mut view = desk.store.queue(&wanted, at.as_millisecond(), QUEUE_ROWS).await?;
    board::sort_by_urgency(&mut view.shown);
    Ok(page::queue(&view, &filter, at))
}

/// `?done=` after an action on the detail page.
#[derive(Debug, Default, Deserialize)]
struct DetailQuery {
    /// `acknowledged` or `closed`.
    #[serde(default)]
    done: Option<String>,
}

/// `GET /desk/tickets/{ticket_id}`.
async fn detail(
    State(desk): State<Desk>,
    Path(ticket_id): Path<String>,
    query: Result<Query<DetailQuery>, QueryRejection>,
) -> Result<Markup, DeskError> {
    let record = record_of(&desk, &ticket_id).await?;
    let notice = match query.ok().and_then(|Query(q)| q.done).as_deref() {
        Some("acknowledged") => Some(Notice::Done(format!("{} acknowledged.", record.number))),
        Some("started") => Some(Notice::Done(format!(
            "{} in progress. For an inspection, the agent holds the device's alarms until it is closed.",
            record.number
        ))),
        Some("closed") => Some(Notice::Done(format!(
            "{} closed. The agent sees it at its next sync.",
            record.number
        ))),
        _ => None,
    };
    Ok(page::detail(&record, notice.as_ref(), now()))
}

/// After an action: back to the ticket, with a notice.
fn done(ticket_id: &str, what: &str) -> Response {
    Redirect::to(&format!("{}?done={what}", page::ticket_url(ticket_id))).into_response()
}

/// A desk action that takes a ticket further.
#[derive(Debug, Clone, Copy)]
enum Take {
    /// Open becomes acknowledged.
    Acknowledge,
    /// Open or acknowledged becomes in progress.
    Start,
}

/// `POST /desk/tickets/{ticket_id}/acknowledge`.
async fn acknowledge(
    State(desk): State<Desk>,
    Extension(DeskUser(user)): Extension<DeskUser>,
    Path(ticket_id): Path<String>,
) -> Result<Response, DeskError> {
    take(&desk, &user, &ticket_id, Take::Acknowledge).await
}

/// `POST /desk/tickets/{ticket_id}/start`.
async fn start_work(
    State(desk): State<Desk>,
    Extension(DeskUser(user)): Extension<DeskUser>,
    Path(ticket_id): Path<String>,
) -> Result<Response, DeskError> {
    take(&desk, &user, &ticket_id, Take::Start).await
}

/// Acknowledges or starts a ticket, back to it with a notice; a 409 page when it
/// changed nothing (someone got there first).
async fn take(
    desk: &Desk,
    user: &str,
    ticket_id: &str,
    action: Take,
) -> Result<Response, DeskError> {
    let number = number_of(desk, ticket_id).await?;
    let Some(record) = desk.store.get(number).await? else {
        return Err(DeskError::unknown(ticket_id));
    };
    // In the site's offset, like the close time.
    let at = WireTime::from_timestamp(now(), board::offset_of(&record.ticket.opened_at));
    let changed = match action {
        Take::Acknowledge => desk.store.acknowledge(number, &at, &who(user)).await?,
        Take::Start => desk.store.start_work(number, &at, &who(user)).await?,
    }
    .ok_or_else(|| DeskError::unknown(ticket_id))?;
    let (done_as, title) = match action {
        Take::Acknowledge => ("acknowledged", "Nothing to acknowledge"),
        Take::Start => ("started", "Nothing to start"),
    };
    if changed.changed {
        tracing::info!(number = %changed.record.number, %ticket_id, %user, "ticket {done_as} at the desk");
        return Ok(done(ticket_id, done_as));
    }
    Err(DeskError::new(
        StatusCode::CONFLICT,
        title,
        format!(
            "{} is already {} (someone got there first). Nothing was changed.",
            changed.record.number,
            page_status(changed.record.status)
        ),
    )
    .back(page::ticket_url(ticket_id)))
}

fn page_status(status: Status) -> &'static str {
    match status {
        Status::Open => "open",
        Status::Acknowledged => "acknowledged",
        Status::InProgress => "in progress",
        Status::Resolved => "resolved",
        Status::Closed => "closed",
    }
}

/// The close form.
#[derive(Debug, Deserialize)]
struct CloseForm {
    /// What was done.
    #[serde(default)]
    resolution: String,
}

/// `POST /desk/tickets/{ticket_id}/close`.
async fn close(
    State(desk): State<Desk>,
    Extension(DeskUser(user)): Extension<DeskUser>,
    Path(ticket_id): Path<String>,
    form: Result<Form<CloseForm>, FormRejection>,
) -> Result<Response, DeskError> {
    let back = page::ticket_url(&ticket_id);
    let Form(CloseForm { resolution }) = form.map_err(|e| {
        DeskError::new(
            StatusCode::BAD_REQUEST,
            "Bad form",
            format!("The close form is not understood: {}.", e.body_text()),
        )
        .back(back.clone())
    })?;
    let number = number_of(&desk, &ticket_id).await?;
    let record = desk.store.get(number).await?.ok_or_else(|| DeskError::unknown(&ticket_id))?;
    let refuse = |status: StatusCode, message: String, resolution: String| -> Response {
        let notice = Notice::Refused { message, resolution };
        (status, page::detail(&record, Some(&notice), now())).into_response()
    };
    if desk.limits.check_resolution(&resolution).is_err() {
        let message = format!(
            "The resolution is longer than {} bytes; shorten it. The ticket is still open.",
            desk.limits.max_text
        );
        return Ok(refuse(StatusCode::UNPROCESSABLE_ENTITY, message, resolution));
    }
    // The site's offset, so the close time reads local at the desk and at the agent.
    let closed_at = WireTime::from_timestamp(now(), board::offset_of(&record.ticket.opened_at));
    let request = CloseRequest { resolution: resolution.trim().to_owned(), closed_at };
    if let Err(e) = request.validate() {
        let message = format!("Cannot close: {e}. Say what was done; the ticket is still open.");
        return Ok(refuse(StatusCode::UNPROCESSABLE_ENTITY, message, resolution));
    }
    let CloseRequest { resolution: text, closed_at } = request;
    let changed = desk
        .store
        .close_ticket(number, &text, &closed_at, &who(&user))
        .await?
        .ok_or_else(|| DeskError::unknown(&ticket_id))?;
    let updated = changed.record;
    if !changed.changed {
        let message = format!(
            "{} was already closed {} (resolution: {}). Nothing was changed.",
            updated.number,
            updated.closed_at.as_ref().map(board::local).unwrap_or_default(),
            updated.resolution.as_deref().unwrap_or("none given"),
        );
        let notice = Notice::Refused { message, resolution };
        return Ok(
            (StatusCode::CONFLICT, page::detail(&updated, Some(&notice), now())).into_response()
        );
    }
    tracing::info!(number = %updated.number, %ticket_id, %user, "ticket closed at the desk");
    Ok(done(&ticket_id, "closed"))
}

/// `?next=` of the sign-in page.
#[derive(Debug, Default, Deserialize)]
struct LoginQuery {
    #[serde(default)]
    next: Option<String>,
}

/// Where to go after signing in: only desk pages (no open redirect).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(path) if path.starts_with("/desk") && !path.starts_with("/desk/login") => {
            path.to_owned()
        }
        _ => "/desk".to_owned(),
    }
}

/// `GET /desk/login`.
async fn login_page(
    State(desk): State<Desk>,
    query: Result<Query<LoginQuery>, QueryRejection>,
) -> Markup {
    let next = query.ok().and_then(|Query(q)| q.next);
    page::login(&safe_next(next.as_deref()), None, desk.auth.has_token())
}

/// The sign-in form.
#[derive(Debug, Deserialize)]
struct LoginForm {
    /// The desk user (empty: sign in with the desk token).
    #[serde(default)]
    user: String,
    /// The user's password, or the desk token.
    #[serde(default, alias = "token")]
    password: String,
    #[serde(default)]
    next: Option<String>,
}

/// `POST /desk/login`.
async fn login(
    State(desk): State<Desk>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    let has_token = desk.auth.has_token();
    let Ok(Form(form)) = form else {
        let page = page::login("/desk", Some("The sign-in form is not understood."), has_token);
        return (StatusCode::BAD_REQUEST, page).into_response();
    };
    let next = safe_next(form.next.as_deref());
    let peer = peer.map(|Extension(ConnectInfo(addr))| addr.ip());
    match desk.auth.sign_in(&form.user, &form.password, peer).await {
        Ok(SignIn::Session(cookie)) => {
            (StatusCode::SEE_OTHER, [(LOCATION, next), (SET_COOKIE, cookie)]).into_response()
        }
        Ok(SignIn::Wrong) => {
            let message = "Wrong user name or password. Nothing was changed.";
            (StatusCode::UNAUTHORIZED, page::login(&next, Some(message), has_token)).into_response()
        }
        Ok(SignIn::Slowed(wait)) => {
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            let message = format!(
                "Too many wrong sign-ins: try again in {seconds} s. (The password was not checked.)"
            );
            let mut response =
                (StatusCode::TOO_MANY_REQUESTS, page::login(&next, Some(&message), has_token))
                    .into_response();
            response.headers_mut().insert(RETRY_AFTER, HeaderValue::from(seconds));
            response
        }
        Err(error) => DeskError::from(error).into_response(),
    }
}

/// `POST /desk/logout`: ends the session in the database, then the cookie.
async fn logout(State(desk): State<Desk>, headers: HeaderMap) -> Response {
    if let Err(error) = desk.auth.sign_out(&headers).await {
        return DeskError::from(error).into_response();
    }
    let cookie = desk.auth.sign_out_cookie();
    (StatusCode::SEE_OTHER, [(LOCATION, "/desk/login".to_owned()), (SET_COOKIE, cookie)])
        .into_response()
}
