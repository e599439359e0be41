//! HTTP client of the central ticket service, with every failure classified for
//! the dispatcher: retry later, dead-letter, or hold (bad credentials).
//!
//! Any 2xx answer to a request that changes something (a create, an event, a
//! close) means the service accepted it (`shared/spec/central-api.md`): such calls
//! answer [`Accepted`], which holds the body read or, when it could not be read,
//! why ([`Unreadable`]); never an error, so the request is never sent again.

use std::time::Duration;

use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::model::{CloseRequest, Created, ErrorBody, NewTicket, TicketEvent, TicketStatus};
use tend_wire::route::{self, Route};

/// Header carrying the idempotency key of a create or an event.
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

/// How much of an error body goes into a [`SendError`] reason.
const REASON_LIMIT: usize = 500;

/// How much of an unreadable answer's body goes into [`Unreadable::detail`].
const BODY_LIMIT: usize = 200;

/// A 2xx answer whose body is not the answer the API describes (empty, HTML, JSON
/// of another shape, a ticket number that is neither a string nor an integer).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the central service answered {status} with a body that cannot be read ({kind}): {detail}")]
pub struct Unreadable {
    /// The HTTP status (2xx).
    pub status: u16,
    /// The kind of problem, a fixed text to group log lines by: `empty body`,
    /// `not JSON` or `unexpected JSON`.
    pub kind: &'static str,
    /// What exactly could not be read, and how the body starts.
    pub detail: String,
}

impl Unreadable {
    fn new(status: StatusCode, error: &serde_json::Error, body: &[u8]) -> Self {
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        let kind = match error.classify() {
            serde_json::error::Category::Data => "unexpected JSON",
            _ if text.is_empty() => "empty body",
            _ => "not JSON",
        };
        let start: String = text.chars().take(BODY_LIMIT).collect();
        Self { status: status.as_u16(), kind, detail: format!("{error}; body: {start:?}") }
    }
}

/// The service's 2xx answer to a request that changes something (a create, an
/// event, a close): the request was accepted, whatever the body says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted<T> {
    /// The answer, read.
    Read(T),
    /// The answer's body cannot be read. The request was accepted all the same:
    /// never send it again.
    Unreadable(Unreadable),
}

impl<T> Accepted<T> {
    /// The answer read, or why it could not be.
    pub fn read(self) -> Result<T, Unreadable> {
        match self {
            Accepted::Read(answer) => Ok(answer),
            Accepted::Unreadable(problem) => Err(problem),
        }
    }

    /// The answer read, converted by `f`.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Accepted<U> {
        match self {
            Accepted::Read(answer) => Accepted::Read(f(answer)),
            Accepted::Unreadable(problem) => Accepted::Unreadable(problem),
        }
    }
}

/// Why a request to the central service did not succeed, classified by what the
/// dispatcher must do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Try again later (5xx, 429, 408, timeout, connection error, unexpected
    /// redirect). `after` is the server's `Retry-After`, if it sent one:
    /// never retry sooner.
    #[error("central service unavailable, will retry: {reason}")]
    Retry {
        /// The server's `Retry-After`, if any.
        after: Option<Duration>,
        /// What happened, for the log.
        reason: String,
    },
    /// The service will never accept this request (400, 404, 409, 422, other 4xx):
    /// dead-letter it, do not retry.
    #[error("central service rejected the request ({status}): {reason}")]
    Rejected {
        /// The HTTP status.
        status: u16,
        /// The service's `error` message, or the start of its body.
        reason: String,
    },
    /// Missing or wrong credentials (401, 403): log loudly and keep the ticket
    /// queued; it goes out once the token is fixed.
    #[error("central service refused our credentials ({status}): {reason}; check the token")]
    Unauthorized {
        /// The HTTP status.
        status: u16,
        /// The service's message.
        reason: String,
    },
    /// A 2xx answer to a read ([`CentralClient::get`]) whose body cannot be read.
    /// (Requests that change something answer [`Accepted::Unreadable`] instead.)
    #[error(transparent)]
    Unreadable(Unreadable),
}

impl SendError {
    /// Whether the request should be sent again later (as is, same key).
    pub fn is_retryable(&self) -> bool {
        matches!(self, SendError::Retry { .. })
    }

    /// The HTTP status the service answered, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            SendError::Rejected { status, .. } | SendError::Unauthorized { status, .. } => {
                Some(*status)
            }
            SendError::Unreadable(problem) => Some(problem.status),
            SendError::Retry { .. } => None,
        }
    }
}

/// A client that cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The base URL does not parse or is not http(s).
    #[error("invalid central service URL {url:?}: {reason}")]
    Url {
        /// The URL as configured.
        url: String,
        /// Why it is unusable.
        reason: String,
    },
    /// The token cannot go in an HTTP header.
    #[error("the central service token must be visible ASCII (no spaces or control characters)")]
    Token,
    /// The HTTP stack failed to initialise (TLS roots, …).
    #[error("cannot build the HTTP client: {0}")]
    Http(#[from] reqwest::Error),
}

/// Client of the central ticket API (`shared/spec/central-api.md`).
///
/// Cheap to clone (the connection pool is shared).
#[derive(Debug, Clone)]
pub struct CentralClient {
    /// The service root; endpoint paths are appended to it.
    base: Url,
    /// Connection pool, bearer token and timeouts.
    http: reqwest::Client,
}

impl CentralClient {
    /// A client of the service at `base_url` (e.g. `https://central.example/`; a path
    /// prefix is kept), authenticating with `token`; every request, answer body
    /// included, must finish within `timeout`.
    pub fn new(base_url: &str, token: &str, timeout: Duration) -> Result<Self, ClientError> {
        let url_error =
            |reason: &str| ClientError::Url { url: base_url.into(), reason: reason.into() };
        let base = Url::parse(base_url).map_err(|e| url_error(&e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(url_error("must be an http:// or https:// URL"));
        }
        if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ClientError::Token);
        }
        let mut auth =
            HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| ClientError::Token)?;
        auth.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, auth);
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(timeout)
            .connect_timeout(timeout)
            // A redirect of a POST would be replayed as a GET; treat it as an error.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("tend/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { base, http })
    }

    /// The service root this client talks to.
    pub fn base_url(&self) -> &Url {
        &self.base
    }

    /// Opens a ticket (`POST /api/v1/tickets`). The same `idempotency_key` always
    /// yields the same ticket, however often it is sent.
    pub async fn open(
        &self,
        ticket: &NewTicket,
        idempotency_key: &str,
    ) -> Result<Accepted<Created>, SendError> {
        let request = self.http.post(self.url(Route::Tickets)).json(ticket);
        self.change(with_key(request, idempotency_key)).await
    }

    /// Adds an event to a ticket (`POST /api/v1/tickets/{id}/events`); answers the
    /// ticket's id and number.
    pub async fn event(
        &self,
        ticket_id: &str,
        event: &TicketEvent,
        idempotency_key: &str,
    ) -> Result<Accepted<Created>, SendError> {
        let request = self.http.post(self.url(Route::Events(ticket_id))).json(event);
        self.change(with_key(request, idempotency_key)).await
    }

    /// Reads a ticket's status back (`GET /api/v1/tickets/{id}`); an unknown ticket
    /// is `Rejected` with status 404, a 2xx answer that cannot be read is
    /// [`SendError::Unreadable`].
    pub async fn get(&self, ticket_id: &str) -> Result<TicketStatus, SendError> {
        let (status, body) =
            self.exchange(self.http.get(self.url(Route::Ticket(ticket_id)))).await?;
        serde_json::from_slice(&body)
            .map_err(|e| SendError::Unreadable(Unreadable::new(status, &e, &body)))
    }

    /// Closes a ticket (`POST /api/v1/tickets/{id}/close`): what maintenance staff
    /// do on the service side, and what the agent sends for work recorded on site.
    pub async fn close(
        &self,
        ticket_id: &str,
        close: &CloseRequest,
    ) -> Result<Accepted<TicketStatus>, SendError> {
        self.post(Route::Close(ticket_id), close).await
    }

    /// Acknowledges a ticket (`POST /api/v1/tickets/{id}/acknowledge`, an extension
    /// of the reference service); for tools and tests.
    pub async fn acknowledge(&self, ticket_id: &str) -> Result<Accepted<TicketStatus>, SendError> {
        self.post(Route::Acknowledge(ticket_id), &serde_json::json!({})).await
    }

    async fn post<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        route: Route<'_>,
        body: &B,
    ) -> Result<Accepted<T>, SendError> {
        self.change(self.http.post(self.url(route)).json(body)).await
    }

    /// `{base}` followed by the route's segments, each percent-encoded (a ticket id may
    /// contain `/`).
    fn url(&self, route: Route<'_>) -> Url {
        let mut url = self.base.clone();
        // Cannot fail: `new` refused cannot-be-a-base URLs.
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(route::PREFIX).extend(route.segments());
        }
        url
    }

    /// Sends a request that changes something: any 2xx answer is [`Accepted`].
    async fn change<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<Accepted<T>, SendError> {
        let (status, body) = self.exchange(request).await?;
        Ok(accepted(status, &body))
    }

    /// Sends a request; a 2xx answer's status and body, or the failure classified.
    async fn exchange(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<(StatusCode, Vec<u8>), SendError> {
        let response = request.send().await.map_err(transport_error)?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, jiff::Timestamp::now()));
        let body = response.bytes().await.map_err(transport_error)?;
        if status.is_success() {
            return Ok((status, Vec::from(body)));
        }
        Err(classify(status, retry_after, &body))
    }
}

/// Adds the idempotency key header. A header value must be visible ASCII, so
/// other bytes (and `%`) are percent-encoded: deterministic, so the key stays stable.
fn with_key(request: reqwest::RequestBuilder, key: &str) -> reqwest::RequestBuilder {
    request.header(IDEMPOTENCY_KEY, route::header_key(key))
}

/// Reads a 2xx answer's body: the answer, or what could not be read.
fn accepted<T: DeserializeOwned>(status: StatusCode, body: &[u8]) -> Accepted<T> {
    match serde_json::from_slice(body) {
        Ok(answer) => Accepted::Read(answer),
        Err(e) => Accepted::Unreadable(Unreadable::new(status, &e, body)),
    }
}

/// What an answer of the central service means, as the client reads it (pure; the
/// fuzz target `central_answer` drives it): a 2xx is [`Accepted`] whatever its body,
/// anything else a classified [`SendError`] (`retry_after`: the header's text).
pub fn read_answer<T: DeserializeOwned>(
    status: u16,
    retry_after: Option<&str>,
    body: &[u8],
    now: jiff::Timestamp,
) -> Result<Accepted<T>, SendError> {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if status.is_success() {
        return Ok(accepted(status, body));
    }
    Err(classify(status, retry_after.and_then(|v| parse_retry_after(v, now)), body))
}

/// Classifies a non-success answer.
fn classify(status: StatusCode, retry_after: Option<Duration>, body: &[u8]) -> SendError {
    let reason = error_reason(status, body);
    match status.as_u16() {
        401 | 403 => SendError::Unauthorized { status: status.as_u16(), reason },
        408 | 429 => SendError::Retry { after: retry_after, reason },
        400..=499 => SendError::Rejected { status: status.as_u16(), reason },
        _ => SendError::Retry { after: retry_after, reason },
    }
}

/// The service's `{"error": "…"}` message, or the start of the body.
fn error_reason(status: StatusCode, body: &[u8]) -> String {
    let message = match serde_json::from_slice::<ErrorBody>(body) {
        Ok(ErrorBody { error }) => error,
        Err(_) => String::from_utf8_lossy(body).trim().chars().take(REASON_LIMIT).collect(),
    };
    if message.is_empty() { status.to_string() } else { format!("{status}: {message}") }
}

/// Describes a transport failure (no usable answer): always retryable.
fn transport_error(error: reqwest::Error) -> SendError {
    let what = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    let mut reason = format!("{what}: {error}");
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        reason.push_str(": ");
        reason.push_str(&cause.to_string());
        source = cause.source();
    }
    SendError::Retry { after: None, reason }
}

/// Parses a `Retry-After` value: delay-seconds or an HTTP date (RFC 9110), the
/// latter relative to `now` (a date in the past means "now").
pub fn parse_retry_after(value: &str, now: jiff::Timestamp) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = jiff::fmt::rfc2822::DateTimeParser::new().parse_timestamp(value).ok()?;
    let wait = at.duration_since(now);
    Some(Duration::try_from(wait).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests;
