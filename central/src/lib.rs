//! tend-central: the reference central ticket service (`tend central`): implements
//! `shared/spec/central-api.md` over HTTP, on an SQLite file (default) or PostgreSQL.
//!
//! # Layout
//! - `api`: routes, authentication (site tokens, the shared token), parsing,
//!   answers (thin handlers).
//! - `desk`: the maintenance desk page (HTML, desk users' sign-in and sessions,
//!   queue, ticket actions).
//! - `error`: the error answer of every route.
//! - [`limits`]: what a request may hold (sizes, counts) and the checks (pure).
//! - `http`: the server loop (header-read timeout, request timeout, connection cap).
//! - [`admin`]: `tend central site …` and `user …` (sites' tokens, desk users).
//! - [`control`]: fault injection.
//! - [`record`]: a ticket as the service reads it back.
//! - [`store`]: the database; every SQL statement is there (schema:
//!   `central/migrations/`).
//! - `testing` (feature `testing`): a service on a free port, and a throw-away
//!   PostgreSQL, for tests.
//!
//! Endpoints (all behind `Authorization: Bearer <token>`; errors are
//! `{"error": "…"}`). A token is a site's (`tend central site add NAME`): it
//! creates and touches only that site's tickets (403 otherwise); or the shared
//! `--token`, which may act for every site (the demo's shortcut).
//! - `POST /api/v1/tickets` (`Idempotency-Key` required): 201 `{ticket_id, number}`
//!   when created, 200 with the same body when the key was seen before with the same
//!   body (also under concurrent duplicates, also across processes on one
//!   PostgreSQL), 422 when the key was seen with another body, 400 for a missing key
//!   or invalid JSON, 413 for a body over the size limit, 422 for a body that fails
//!   validation or a limit, 409 when the ticket id exists with a different body
//!   under another key.
//! - `POST /api/v1/tickets/{id}/events` (`Idempotency-Key` required): 201/200/422
//!   as above, 404 for an unknown ticket, 422 for a bad event or a ticket holding
//!   the most events allowed.
//! - `GET /api/v1/tickets/{id}`: `{ticket_id, number, status, closed_at?, resolution?}`.
//! - `POST /api/v1/tickets/{id}/close` `{resolution, closed_at}`: 200 with the status.
//! - Extensions for tests and the desk page: `GET /api/v1/tickets` (the caller's
//!   tickets with their events, [`TicketList`]) and
//!   `POST /api/v1/tickets/{id}/acknowledge`.
//! - `GET /api/v1/openapi.json` (no token): the OpenAPI 3 document of all of the
//!   above, kept in the repository as `central/src/openapi.json`.
//! - `GET /desk` and below: the maintenance desk page (see the `desk` module),
//!   signed in as a desk user (a session cookie), not with a bearer token.
//!
//! Numbers are sequential (`T-000001`, …) and unique across processes. Every
//! answered write is committed first. [`CentralControl`] injects failures and
//! delays for tests.

pub mod admin;
mod api;
pub mod control;
mod desk;
mod error;
mod http;
pub mod limits;
pub mod record;
pub mod store;

#[cfg(any(test, feature = "testing"))]
pub mod testing;
#[cfg(test)]
mod tests;

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;

pub use control::CentralControl;
pub use record::{EventRecord, TicketList, TicketRecord};

pub use limits::Limits;
pub use store::Database;

/// How the reference service runs.
#[derive(Clone)]
pub struct CentralConfig {
    /// Where the tickets are kept.
    pub database: Database,
    /// The shared bearer token that may act for every site (the demo's shortcut);
    /// `None`: only sites' tokens (`tend central site add`). Must not be empty.
    pub token: Option<String>,
    /// A token that signs in to the desk with an empty user name (and opens it to
    /// scripts as `Authorization: Bearer`); `None`: the shared token, if any. Desk
    /// users (`tend central user add`) sign in with their own passwords.
    pub desk_token: Option<String>,
    /// The service sits behind TLS (a reverse proxy): desk cookies are `Secure`.
    pub behind_tls: bool,
    /// Sizes, counts and timeouts.
    pub limits: Limits,
    /// Fault injection; inert unless a test steers it through a clone.
    pub control: CentralControl,
}

impl CentralConfig {
    /// A config on an SQLite file in `data_dir` with the shared `token`, default
    /// limits and no fault injection.
    pub fn new(data_dir: impl Into<PathBuf>, token: impl Into<String>) -> Self {
        Self::on(Database::Sqlite(data_dir.into()), Some(token.into()))
    }

    /// A config on `database` with the shared `token` (if any), default limits and
    /// no fault injection.
    pub fn on(database: Database, token: Option<String>) -> Self {
        Self {
            database,
            token,
            desk_token: None,
            behind_tls: false,
            limits: Limits::default(),
            control: CentralControl::new(),
        }
    }
}

impl fmt::Debug for CentralConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CentralConfig")
            .field("database", &self.database.describe())
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("desk_token", &self.desk_token.as_ref().map(|_| "<redacted>"))
            .field("behind_tls", &self.behind_tls)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// Serves the central API on `listener` until `shutdown` completes, then drains
/// in-flight requests and closes the database.
pub async fn serve(
    listener: tokio::net::TcpListener,
    cfg: CentralConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    if let Some(token) = &cfg.token {
        anyhow::ensure!(!token.trim().is_empty(), "the shared token (--token) must not be empty");
    }
    let desk_token = cfg.desk_token.clone().or_else(|| cfg.token.clone());
    if let Some(token) = &desk_token {
        anyhow::ensure!(!token.trim().is_empty(), "the desk token must not be empty");
    }
    let store = store::Store::open(&cfg.database)
        .await
        .with_context(|| format!("opening the central database ({})", cfg.database.describe()))?;
    let limits = Arc::new(cfg.limits.clone());
    let app =
        desk::router(store.clone(), desk_token.as_deref(), cfg.behind_tls, Arc::clone(&limits))
            .merge(api::router(
                store.clone(),
                cfg.token.as_deref(),
                Arc::clone(&limits),
                cfg.control,
            ));
    let addr = listener.local_addr().context("reading the listening address")?;
    tracing::info!(%addr, database = %cfg.database.describe(), desk = %format!("http://{addr}/desk"), "central service listening");
    let served = http::run(listener, app, &cfg.limits, shutdown).await;
    store.close().await;
    served.context("serving the central API")?;
    tracing::info!(%addr, "central service stopped");
    Ok(())
}
