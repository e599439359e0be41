//! For tests (feature `testing`): [`TestServer`], a reference service on a free
//! loopback port with its SQLite database in a directory of its own, stopped
//! cleanly (the agent's unit tests and the integration tests use this one); and
//! [`Postgres`], a throw-away PostgreSQL server (Debian's `postgresql` package) in a
//! temporary directory on a free port, stopped when dropped.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context as _;

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
        Self::serve(listener, CentralConfig::new(dir, TOKEN))
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

/// A database for one test: a fresh SQLite file in a temporary directory, or a fresh
/// database on the shared test [`Postgres`].
pub struct TestDatabase {
    /// Where it is.
    pub database: crate::Database,
    /// The SQLite file's directory.
    _dir: Option<tempfile::TempDir>,
    /// Keeps the PostgreSQL server up while the test runs.
    _server: Option<std::sync::Arc<Postgres>>,
}

impl TestDatabase {
    /// A fresh SQLite database.
    pub fn sqlite() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        Ok(Self {
            database: crate::Database::Sqlite(dir.path().join("central")),
            _dir: Some(dir),
            _server: None,
        })
    }

    /// A fresh database on the PostgreSQL server the running tests share.
    pub async fn postgres() -> anyhow::Result<Self> {
        let server = tokio::task::spawn_blocking(Postgres::shared).await??;
        let database = server.database().await?;
        Ok(Self { database, _dir: None, _server: Some(server) })
    }

    /// A config on this database with the shared [`TOKEN`].
    pub fn config(&self) -> CentralConfig {
        CentralConfig::on(self.database.clone(), Some(TOKEN.to_owned()))
    }

    /// A service on this database (default config) on a free port.
    pub async fn start(&self) -> anyhow::Result<TestServer> {
        self.start_with(self.config()).await
    }

    /// A service with `cfg` on a free port.
    pub async fn start_with(&self, cfg: CentralConfig) -> anyhow::Result<TestServer> {
        TestServer::serve(tokio::net::TcpListener::bind("127.0.0.1:0").await?, cfg)
    }

    /// The database opened directly (to add sites and users, or to spoil a row).
    pub async fn store(&self) -> anyhow::Result<crate::store::Store> {
        Ok(crate::store::Store::open(&self.database).await?)
    }
}

/// The PostgreSQL server tests share while any of them holds it.
static SHARED: std::sync::Mutex<std::sync::Weak<Postgres>> =
    std::sync::Mutex::new(std::sync::Weak::new());

/// A PostgreSQL server of its own: `initdb` in a temporary directory, `pg_ctl start`
/// on a free loopback port (as the `postgres` user when the tests run as root),
/// trust authentication on loopback only; `pg_ctl stop` when dropped.
pub struct Postgres {
    /// `postgres://postgres@127.0.0.1:{port}`, without a database name.
    base_url: String,
    /// The server's binaries.
    bindir: PathBuf,
    /// The cluster's directory.
    data: PathBuf,
    /// Run the binaries as `postgres` (we are root).
    as_postgres: bool,
    /// Holds the cluster, removed after the stop.
    _dir: tempfile::TempDir,
}

impl Postgres {
    /// Initialises and starts a server for tests (`fsync=off`: nothing here must
    /// survive a power cut). Blocking (a second or two).
    pub fn start() -> anyhow::Result<Self> {
        Self::start_with(false)
    }

    /// Initialises and starts a server; `durable`: with `fsync` on, as in
    /// production (benchmarks). Blocking (a second or two).
    pub fn start_with(durable: bool) -> anyhow::Result<Self> {
        let bindir = postgres_bindir()?;
        let as_postgres = is_root();
        let dir = tempfile::Builder::new().prefix("tend-pg-").tempdir()?;
        if as_postgres {
            run(Command::new("chown").arg("postgres:postgres").arg(dir.path()))?;
        }
        let data = dir.path().join("data");
        let pg = |program: &str| -> Command {
            if as_postgres {
                let mut command = Command::new("runuser");
                command.args(["-u", "postgres", "--"]).arg(bindir.join(program));
                command
            } else {
                Command::new(bindir.join(program))
            }
        };
        run(pg("initdb").arg("-D").arg(&data).args([
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
            "--no-instructions",
        ]))?;
        let mut last = None;
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
            let options = format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync={} -c max_connections=200",
                dir.path().display(),
                if durable { "on" } else { "off" }
            );
            let started = run(pg("pg_ctl")
                .arg("-D")
                .arg(&data)
                .arg("-o")
                .arg(options)
                .arg("-l")
                .arg(dir.path().join("log"))
                .args(["-w", "-t", "60", "start"]));
            match started {
                Ok(()) => {
                    return Ok(Self {
                        base_url: format!("postgres://postgres@127.0.0.1:{port}"),
                        bindir,
                        data,
                        as_postgres,
                        _dir: dir,
                    });
                }
                // Another process took the port meanwhile: try another.
                Err(error) => last = Some(error),
            }
        }
        let log = std::fs::read_to_string(dir.path().join("log")).unwrap_or_default();
        Err(last.unwrap_or_else(|| anyhow::anyhow!("pg_ctl start failed")).context(log))
    }

    /// The server the running tests share: started by the first test that asks,
    /// stopped when the last one holding it ends (a later test starts another).
    pub fn shared() -> anyhow::Result<std::sync::Arc<Self>> {
        let mut shared = SHARED.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(server) = shared.upgrade() {
            return Ok(server);
        }
        let server = std::sync::Arc::new(Self::start()?);
        *shared = std::sync::Arc::downgrade(&server);
        Ok(server)
    }

    /// `postgres://postgres@127.0.0.1:{port}/{name}`.
    pub fn url(&self, name: &str) -> String {
        format!("{}/{name}", self.base_url)
    }

    /// Creates a database of its own (a fresh name) and answers where it is.
    pub async fn database(&self) -> anyhow::Result<crate::Database> {
        sqlx::any::install_default_drivers();
        let name = format!("tend_{}", &crate::store::random_token()[..16]);
        let mut admin: sqlx::AnyConnection =
            sqlx::Connection::connect(&format!("{}/postgres", self.base_url)).await?;
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut admin).await?;
        sqlx::Connection::close(admin).await?;
        Ok(crate::Database::Url(format!("{}/{name}", self.base_url)))
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let program = self.bindir.join("pg_ctl");
        let mut command = if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        };
        let _ = command.arg("-D").arg(&self.data).args(["-m", "fast", "-w", "stop"]).output();
    }
}

/// The directory of `initdb` and `pg_ctl`: `pg_config --bindir`, else the newest
/// `/usr/lib/postgresql/*/bin`.
fn postgres_bindir() -> anyhow::Result<PathBuf> {
    if let Ok(output) = Command::new("pg_config").arg("--bindir").output()
        && output.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
        if dir.join("initdb").exists() {
            return Ok(dir);
        }
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .context("PostgreSQL is not installed (scripts/setup.sh installs Debian's postgresql)")?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin).context("no /usr/lib/postgresql/*/bin/initdb")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| String::from_utf8_lossy(&output.stdout).trim() == "0")
}

/// Runs `command`; an error with its output when it fails.
fn run(command: &mut Command) -> anyhow::Result<()> {
    let output = command.output().with_context(|| format!("running {command:?}"))?;
    anyhow::ensure!(
        output.status.success(),
        "{command:?} failed ({}): {}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}
