//! A real Mosquitto (Debian's package) for tests: its own config on free loopback
//! ports, waited for with a deadline, killed on drop, restartable on the same ports.

use std::fs::File;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Where Debian installs the broker.
pub const MOSQUITTO: &str = "/usr/sbin/mosquitto";
/// Longest wait for the broker to listen.
const WAIT: Duration = Duration::from_secs(20);

/// A Mosquitto process with its own config, killed on drop.
pub struct Mosquitto {
    child: Option<Child>,
    /// The main listener's port.
    pub port: u16,
    /// Ports of the listeners `start_with` added.
    pub extra_ports: Vec<u16>,
    /// Config, log and whatever the extra config lines need (certificates ...).
    pub dir: tempfile::TempDir,
}

impl Mosquitto {
    /// Starts a broker with the default test config.
    pub fn start() -> Self {
        Self::start_with(|_, _| String::new(), 0)
    }

    /// `extra(dir, ports)` adds config lines (more listeners on `extra_ports` ports).
    pub fn start_with(extra: impl FnOnce(&Path, &[u16]) -> String, extra_ports: usize) -> Self {
        assert!(
            Path::new(MOSQUITTO).exists(),
            "these tests need Mosquitto at {MOSQUITTO}: apt-get install -y mosquitto"
        );
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let extra_ports: Vec<u16> = (0..extra_ports).map(|_| free_port()).collect();
        let user = Command::new("id").arg("-un").output().unwrap();
        let user = String::from_utf8(user.stdout).unwrap();
        let extra = extra(dir.path(), &extra_ports);
        // Tests that want persistence say so in `extra`; the default keeps nothing.
        let persistence = if extra.contains("persistence ") { "" } else { "persistence false\n" };
        let conf = format!(
            "# stay the current user: the temp files are private\n\
             user {}\n\
             listener {port} 127.0.0.1\n\
             allow_anonymous true\n\
             {persistence}\
             max_queued_messages 0\n\
             log_type all\n\
             {extra}\n",
            user.trim(),
        );
        std::fs::write(dir.path().join("mosquitto.conf"), conf).unwrap();
        let mut m = Self { child: None, port, extra_ports, dir };
        m.launch();
        m
    }

    /// Starts (again) with the same config and ports; waits until every port accepts.
    pub fn launch(&mut self) {
        let log = File::create(self.dir.path().join("mosquitto.log")).unwrap();
        let mut child = Command::new(MOSQUITTO)
            .arg("-c")
            .arg(self.dir.path().join("mosquitto.conf"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + WAIT;
        for port in std::iter::once(self.port).chain(self.extra_ports.clone()) {
            while TcpStream::connect(("127.0.0.1", port)).is_err() {
                if let Some(status) = child.try_wait().unwrap() {
                    panic!("mosquitto exited ({status}):\n{}", self.log());
                }
                assert!(Instant::now() < deadline, "mosquitto not listening:\n{}", self.log());
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        self.child = Some(child);
    }

    /// Stops the broker the way a service manager does (SIGTERM: it saves its
    /// persistent state) and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
            let deadline = Instant::now() + WAIT;
            while child.try_wait().ok().flatten().is_none() {
                if Instant::now() > deadline {
                    let _ = child.kill();
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }

    /// Kills the broker (`launch` starts it again on the same ports).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The broker's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A port nothing listens on right now, below the kernel's ephemeral range.
///
/// Not one the kernel hands out (`127.0.0.1:0`): while a test's server is down on
/// such a port, a client retrying it can be given that very port as its own local
/// port and connect to itself (TCP simultaneous open), and any other test's
/// outgoing connection can take it; either way the server cannot come back.
pub fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32768);
    let base = 10_000u32.min(low / 2);
    let span = low.saturating_sub(base).max(1);
    // Different processes (parallel test runs) start at different places.
    let mut x =
        std::process::id().wrapping_mul(2_654_435_761) ^ NEXT.fetch_add(7919, Ordering::Relaxed);
    for _ in 0..2000 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let port = (base + (x >> 8) % span) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port below {low}");
}
