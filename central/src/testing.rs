//! A reference service for tests (feature `testing`): on a free loopback port, its
//! database in a directory of its own, stopped cleanly. The agent's unit tests and the
//! integration tests use this one.

use std::path::Path;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::{CentralConfig, CentralControl, TicketList, TicketRecord, serve};

/// The token test servers accept (the one `tend_tests::site` writes into a test
/// site's config).
pub const TOKEN: &str = "tok";

/// A running reference service.
pub struct TestServer {
    /// `http://127.0.0.1:{port}`.
    pub url: String,
    /// Its fault injection.
    pub control: CentralControl,
    /// Fires the shutdown.
    stop: Option<oneshot::Sender<()>>,
    /// The serving task.
    task: Option<JoinHandle<anyhow::Result<()>>>,
    /// The database directory when the server owns it.
    _dir: Option<tempfile::TempDir>,
}

impl TestServer {
    /// Starts a service on a free port with its database in a fresh temporary directory
    /// (removed when the server is dropped).
    pub async fn start_temp() -> anyhow::Result<Self> {
        Self::start_temp_on(0).await
    }

    /// As [`TestServer::start_temp`], on `port` of 127.0.0.1 (0: any free one).
    pub async fn start_temp_on(port: u16) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        let mut server = Self::start_on(listener, &dir.path().join("central"))?;
        server._dir = Some(dir);
        Ok(server)
    }

    /// Starts a service on a free port with its database in `dir`.
    pub async fn start(dir: &Path) -> anyhow::Result<Self> {
        Self::start_on(tokio::net::TcpListener::bind("127.0.0.1:0").await?, dir)
    }

    /// Starts a service on `listener` (e.g. a port a client already tried in vain).
    pub fn start_on(listener: tokio::net::TcpListener, dir: &Path) -> anyhow::Result<Self> {
        let cfg = CentralConfig { cache_capacity: 1024 * 1024, ..CentralConfig::new(dir, TOKEN) };
        Self::serve(listener, cfg)
    }

    /// Starts a service with `cfg` (its own tokens, data directory, fault injection)
    /// on `listener`.
    pub fn serve(listener: tokio::net::TcpListener, cfg: CentralConfig) -> anyhow::Result<Self> {
        let url = format!("http://{}", listener.local_addr()?);
        let control = cfg.control.clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, cfg, async move {
            let _ = stopped.await;
        }));
        Ok(Self { url, control, stop: Some(stop), task: Some(task), _dir: None })
    }

    /// Stops the service and waits until its database is closed.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await?,
            None => Ok(()),
        }
    }

    /// Every ticket the service holds (the list endpoint).
    pub async fn list(&self) -> anyhow::Result<TicketList> {
        let response = reqwest::Client::new()
            .get(self.at("/api/v1/tickets"))
            .bearer_auth(TOKEN)
            .send()
            .await?
            .error_for_status()?;
        Ok(response.json().await?)
    }

    /// Every ticket the service holds; empty while it does not answer (for polling).
    pub async fn tickets(&self) -> Vec<TicketRecord> {
        self.list().await.map(|l| l.tickets).unwrap_or_default()
    }

    /// `{url}{path}`.
    pub fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }
}
