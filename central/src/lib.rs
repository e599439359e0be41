//! tend-central: the reference central ticket service (`tend central`): implements
//! `shared/spec/central-api.md` over HTTP, persistent in its own sled database.
//!
//! Endpoints (all behind `Authorization: Bearer <token>`; errors are
//! `{"error": "…"}`):
//! - `POST /api/v1/tickets` (`Idempotency-Key` required): 201 `{ticket_id, number}`
//!   when created, 200 with the same body when the key was seen before (also under
//!   concurrent duplicates), 400 for a missing key or invalid JSON, 422 for a body
//!   that fails validation, 409 when the ticket id exists with a different body
//!   under another key.
//! - `POST /api/v1/tickets/{id}/events` (`Idempotency-Key` required): 201/200 as
//!   above, 404 for an unknown ticket, 422 for a bad event.
//! - `GET /api/v1/tickets/{id}`: `{ticket_id, number, status, closed_at?, resolution?}`.
//! - `POST /api/v1/tickets/{id}/close` `{resolution, closed_at}`: 200 with the status.
//! - Extensions for tests and the desk page: `GET /api/v1/tickets` (every ticket
//!   with its events, [`TicketList`]) and `POST /api/v1/tickets/{id}/acknowledge`.
//! - `GET /api/v1/openapi.json` (no token): the OpenAPI 3 document of all of the
//!   above, kept in the repository as `central/src/openapi.json`.
//! - `GET /desk` and below: the maintenance desk page (see the `desk` module),
//!   signed in with the desk token (a cookie), not the bearer token.
//!
//! Numbers are sequential (`T-000001`, …). Every answered write is flushed to disk
//! first. [`CentralControl`] injects failures and delays for tests.
//!
//! # Layout
//! - `api`: routes, authentication, parsing, answers (thin handlers).
//! - `desk`: the maintenance desk page (HTML, sign-in, queue, ticket actions).
//! - `error`: the error answer of every route.
//! - [`control`]: fault injection.
//! - [`record`]: what is stored per ticket.
//! - [`store`]: the sled database; every sled call is there.
//! - `testing` (feature `testing`): a service on a free port for tests.

mod api;
pub mod control;
mod desk;
mod error;
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

/// Default sled page cache: small, the service holds little.
pub const DEFAULT_CACHE_CAPACITY: u64 = 16 * 1024 * 1024;

/// How the reference service runs.
#[derive(Clone)]
pub struct CentralConfig {
    /// Directory of the service's sled database (created when missing).
    pub data_dir: PathBuf,
    /// The bearer token every request must carry; must not be empty.
    pub token: String,
    /// What people sign in to the desk page with; `None`: the bearer token.
    /// A separate secret lets the company hand the desk to dispatchers without
    /// handing them the agents' credential (and rotate either alone).
    pub desk_token: Option<String>,
    /// sled page cache in bytes (sled's own default is 1 GiB).
    pub cache_capacity: u64,
    /// Fault injection; inert unless a test steers it through a clone.
    pub control: CentralControl,
}

impl CentralConfig {
    /// A config with the default cache and no fault injection.
    pub fn new(data_dir: impl Into<PathBuf>, token: impl Into<String>) -> Self {
        Self {
            data_dir: data_dir.into(),
            token: token.into(),
            desk_token: None,
            cache_capacity: DEFAULT_CACHE_CAPACITY,
            control: CentralControl::new(),
        }
    }
}

impl fmt::Debug for CentralConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CentralConfig")
            .field("data_dir", &self.data_dir)
            .field("token", &"<redacted>")
            .field("desk_token", &self.desk_token.as_ref().map(|_| "<redacted>"))
            .field("cache_capacity", &self.cache_capacity)
            .finish_non_exhaustive()
    }
}

/// Serves the central API on `listener` until `shutdown` completes, then drains
/// in-flight requests, flushes and closes the database.
pub async fn serve(
    listener: tokio::net::TcpListener,
    cfg: CentralConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    anyhow::ensure!(!cfg.token.trim().is_empty(), "the central service needs a non-empty token");
    let desk_token = cfg.desk_token.clone().unwrap_or_else(|| cfg.token.clone());
    anyhow::ensure!(!desk_token.trim().is_empty(), "the desk token must not be empty");
    let dir = cfg.data_dir.clone();
    let capacity = cfg.cache_capacity;
    let store = tokio::task::spawn_blocking(move || store::Store::open(&dir, capacity))
        .await
        .context("opening the central database")?
        .with_context(|| format!("opening the central database in {}", cfg.data_dir.display()))?;
    let store = Arc::new(store);
    let app = desk::router(Arc::clone(&store), &desk_token).merge(api::router(
        Arc::clone(&store),
        &cfg.token,
        cfg.control,
    ));
    let addr = listener.local_addr().context("reading the listening address")?;
    tracing::info!(%addr, data_dir = %cfg.data_dir.display(), desk = %format!("http://{addr}/desk"), "central service listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .context("serving the central API")?;
    store.flush().await.context("flushing the central database")?;
    tracing::info!(%addr, "central service stopped");
    Ok(())
}
