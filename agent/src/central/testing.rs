//! Test helper: a reference service on 127.0.0.1:0 that stops cleanly.

use std::path::Path;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::{CentralConfig, CentralControl, serve};

/// The token test servers accept.
pub(crate) const TOKEN: &str = "test-token";

/// A running reference service.
pub(crate) struct TestServer {
    /// `http://127.0.0.1:{port}`.
    pub(crate) url: String,
    /// Its fault injection.
    pub(crate) control: CentralControl,
    /// Fires the shutdown.
    stop: oneshot::Sender<()>,
    /// The serving task.
    task: JoinHandle<anyhow::Result<()>>,
}

impl TestServer {
    /// Starts a service on a free port with its database in `dir`.
    pub(crate) async fn start(dir: &Path) -> anyhow::Result<Self> {
        Self::start_on(tokio::net::TcpListener::bind("127.0.0.1:0").await?, dir)
    }

    /// Starts a service on `listener` (e.g. a port a client already tried in vain).
    pub(crate) fn start_on(listener: tokio::net::TcpListener, dir: &Path) -> anyhow::Result<Self> {
        let url = format!("http://{}", listener.local_addr()?);
        let cfg = CentralConfig { cache_capacity: 1024 * 1024, ..CentralConfig::new(dir, TOKEN) };
        let control = cfg.control.clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, cfg, async move {
            let _ = stopped.await;
        }));
        Ok(Self { url, control, stop, task })
    }

    /// Stops the service and waits until its database is closed.
    pub(crate) async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.task.await?
    }

    /// A client of this service with `token`.
    pub(crate) fn client(&self, token: &str) -> anyhow::Result<crate::tickets::CentralClient> {
        Ok(crate::tickets::CentralClient::new(&self.url, token, std::time::Duration::from_secs(5))?)
    }

    /// Every ticket the service holds (the list endpoint).
    pub(crate) async fn list(&self) -> anyhow::Result<super::TicketList> {
        let response = reqwest::Client::new()
            .get(self.at("/api/v1/tickets"))
            .bearer_auth(TOKEN)
            .send()
            .await?
            .error_for_status()?;
        Ok(response.json().await?)
    }

    /// `{url}{path}`.
    pub(crate) fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }
}
