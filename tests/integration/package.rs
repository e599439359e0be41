//! The Debian package (`[package.metadata.deb]` of cli/Cargo.toml, packaging/):
//! built by cargo-deb from the `tend` binary this suite runs and the plugins
//! tests/build.rs built, installed with dpkg, its files, conffiles, user and units
//! checked; the installed agent runs as user `tend` with the packaged config against a
//! real Mosquitto and the central service until a fault's ticket arrives, stops on
//! SIGTERM; a reinstall keeps an edited conffile; a purge removes the user and files.
//!
//! dpkg changes the machine: the test runs as root (CI does) or through `sudo -n`,
//! and purges the package even when it fails.

use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use tend_tests::mosquitto::Mosquitto;
use tend_tests::plugins::{self as built, REPO_ROOT};

use super::harness::{Central, TOKEN, WAIT, device_traces, publish, wait_exit};

/// The Debian revision of the test's packages: a leftover of a run that could not
/// purge (killed) is recognised by it and purged; any other installed `tend` is a
/// real installation, which the test refuses to touch.
const TEST_REVISION: &str = "0~test";

/// The packaged files and their owner, group and mode (`stat -c '%U:%G %a'`).
const FILES: [(&str, &str); 11] = [
    ("/usr/bin/tend", "root:root 755"),
    ("/usr/lib/tend/plugins/solar-water-heater.wasm", "root:root 644"),
    ("/usr/lib/tend/plugins/door-controller.wasm", "root:root 644"),
    ("/usr/lib/tend/plugins/av-system.wasm", "root:root 644"),
    ("/etc/tend/agent.toml", "root:root 644"),
    ("/etc/tend/site.toml", "root:root 644"),
    ("/etc/tend/tend.env", "root:root 600"),
    ("/usr/lib/systemd/system/tend.service", "root:root 644"),
    ("/usr/lib/systemd/system/tend-central.service", "root:root 644"),
    ("/var/lib/tend", "tend:tend 750"),
    ("/var/lib/tend/central", "tend:tend 750"),
];

/// The conffiles: what upgrades keep when a site edited them.
const CONFFILES: [&str; 3] = ["/etc/tend/agent.toml", "/etc/tend/site.toml", "/etc/tend/tend.env"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_package_installs_runs_as_the_tend_user_and_purges() {
    let root = Privilege::find();
    purge_leftover(&root);
    let out = tempfile::tempdir().unwrap();
    let deb = build_package(out.path());

    // Install; from here on the guard purges, whatever happens.
    let mut installed = Installed { root, purged: false };
    let output = root.run("dpkg", &["-i", path_str(&deb)]);
    assert!(output.status.success(), "dpkg -i failed\n{}", show(&output));
    let status = root.stdout("dpkg-query", &["-W", "-f", "${Status} ${Version}", "tend"]);
    assert!(status.starts_with("install ok installed"), "{status}");

    check_files(&root);
    check_user(&root);
    check_units(&root);
    let version = root.stdout("/usr/bin/tend", &["--version"]);
    assert_eq!(version.trim(), format!("tend {}", env!("CARGO_PKG_VERSION")));

    // The installed agent, as the service runs it: user `tend`, the packaged config,
    // the environment overrides of interfaces.md for the broker and the central service.
    let mosquitto = Mosquitto::start();
    let central = Central::start_temp().await.unwrap();
    let env = vec![
        ("TEND_MQTT_URL", format!("mqtt://127.0.0.1:{}", mosquitto.port)),
        ("TEND_CENTRAL_URL", central.url.clone()),
        ("TEND_CENTRAL_TOKEN", TOKEN.to_owned()),
        ("TEND_LOG", "info".to_owned()),
        ("HOME", "/var/lib/tend".to_owned()),
    ];
    // tend.service's ExecStartPre: validates everything, fills the plugin cache.
    let check = root
        .as_tend("/usr/bin/tend", &["check", "--config", "/etc/tend/agent.toml"], &env)
        .output()
        .unwrap();
    assert!(check.status.success(), "tend check as user tend\n{}", show(&check));
    let api = "127.0.0.1:9464";
    assert!(
        std::net::TcpListener::bind(api).is_ok(),
        "the packaged config's status API address {api} is taken on this machine"
    );
    let log_path = out.path().join("agent.log");
    let mut agent = RunningAgent {
        child: Some(
            root.as_tend(
                "/usr/bin/tend",
                &["--log-json", "run", "--config", "/etc/tend/agent.toml"],
                &env,
            )
            .stdout(Stdio::null())
            .stderr(File::create(&log_path).unwrap())
            .spawn()
            .unwrap(),
        ),
        root,
    };
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let deadline = Instant::now() + WAIT;
    while !log().contains("\"mqtt_ready\":true") {
        if let Some(status) = agent.child.as_mut().unwrap().try_wait().unwrap() {
            panic!("the installed agent exited ({status})\n{}", log());
        }
        assert!(Instant::now() < deadline, "the installed agent did not subscribe\n{}", log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    check_process_runs_as_tend();

    // A fault of an AV system of the packaged example site reaches the central service.
    let (site, device) = av_device_of_packaged_site(&root);
    let trace = device_traces(1)
        .into_iter()
        .find(|t| t.ticket == "test-site.av-1.amp_protect.1")
        .expect("the amp_protect fixture");
    let messages: Vec<(String, Vec<u8>)> = trace
        .messages
        .iter()
        .map(|(topic, payload)| {
            let topic =
                topic.replacen("tend/test-site/av-1/", &format!("tend/{site}/{device}/"), 1);
            (topic, payload.clone())
        })
        .collect();
    publish(mosquitto.port, "package-publisher", &messages).await;
    let ticket_id = format!("{site}.{device}.amp_protect.1");
    let deadline = Instant::now() + WAIT;
    loop {
        let tickets = central.tickets().await;
        if tickets.iter().any(|t| t.ticket.ticket_id == ticket_id) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no ticket {ticket_id} at the central service; it holds {:?}\n{}\n{}",
            tickets.iter().map(|t| &t.ticket.ticket_id).collect::<Vec<_>>(),
            log(),
            mosquitto.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let status = agent.terminate();
    assert!(status.success(), "the installed agent exited with {status} on SIGTERM\n{}", log());
    // Its store is in the state directory, written by the user `tend`.
    assert_eq!(root.stdout("stat", &["-c", "%U:%G", "/var/lib/tend/agent"]).trim(), "tend:tend");

    // An upgrade (here: the same package again) keeps an edited conffile and the data.
    let edit = "# edited on site by the package test\n";
    let edited = format!("{}{edit}", root.stdout("cat", &["/etc/tend/agent.toml"]));
    let write = root.run("sh", &["-c", &format!("printf '%s' '{edit}' >> /etc/tend/agent.toml")]);
    assert!(write.status.success(), "{}", show(&write));
    let output = root.run("dpkg", &["-i", path_str(&deb)]);
    assert!(output.status.success(), "dpkg -i over the installed package\n{}", show(&output));
    assert_eq!(root.stdout("cat", &["/etc/tend/agent.toml"]), edited, "the edit was not kept");
    assert_eq!(root.stdout("stat", &["-c", "%U:%G", "/var/lib/tend/agent"]).trim(), "tend:tend");
    check_files(&root);

    // Purge: the user, the group, the state and the config go with the package.
    installed.purge();
    check_purged(&root);
}

/// Every `[section]` and key of the example config (set or commented out) is in the
/// packaged one too: the packaged config stays the reference for every key.
#[test]
fn the_packaged_config_has_every_key_of_the_example() {
    let keys = |path: &str| -> BTreeSet<String> {
        let text = std::fs::read_to_string(Path::new(REPO_ROOT).join(path)).unwrap();
        text.lines()
            .filter_map(|l| {
                let l = l.strip_prefix("# ").unwrap_or(l);
                if l.starts_with('[') && l.ends_with(']') {
                    return Some(l.to_owned());
                }
                let (key, _) = l.split_once(" = ")?;
                let is_key = !key.is_empty()
                    && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                is_key.then(|| key.to_owned())
            })
            .collect()
    };
    let example = keys("configs/agent.toml");
    let packaged = keys("packaging/agent.toml");
    let missing: Vec<&String> = example.difference(&packaged).collect();
    assert!(missing.is_empty(), "packaging/agent.toml lacks {missing:?} of configs/agent.toml");
}

/// How the test gets root: it is root, or `sudo -n` works.
#[derive(Clone, Copy)]
enum Privilege {
    Root,
    Sudo,
}

impl Privilege {
    fn find() -> Self {
        let uid = Command::new("id").arg("-u").output().unwrap();
        if String::from_utf8_lossy(&uid.stdout).trim() == "0" {
            return Self::Root;
        }
        let sudo = Command::new("sudo")
            .args(["-n", "true"])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if sudo.is_ok_and(|s| s.success()) {
            return Self::Sudo;
        }
        panic!(
            "this test installs the Debian package with dpkg: run it as root (CI does) or \
             with passwordless sudo (`sudo -n true` failed)"
        );
    }

    /// `program args` with root's rights and `env` set.
    fn command(self, program: &str, args: &[&str], env: &[(&str, String)]) -> Command {
        let mut cmd = match self {
            Self::Root => {
                let mut cmd = Command::new(program);
                cmd.envs(env.iter().map(|(k, v)| (k, v)));
                cmd
            }
            Self::Sudo => {
                // sudo resets the environment: `env` sets it again under sudo.
                let mut cmd = Command::new("sudo");
                cmd.args(["-n", "env"]).args(env.iter().map(|(k, v)| format!("{k}={v}")));
                cmd.arg(program);
                cmd
            }
        };
        cmd.args(args).stdin(Stdio::null()).current_dir("/");
        // The packaged config must not be overridden by the test's own environment.
        for var in ["TEND_DATA_DIR", "TEND_INVENTORY"] {
            cmd.env_remove(var);
        }
        cmd
    }

    /// `program args` as user `tend`, the way tend.service runs it: no capability
    /// (an empty bounding set), no new privileges.
    fn as_tend(self, program: &str, args: &[&str], env: &[(&str, String)]) -> Command {
        let mut setpriv = vec![
            "--reuid=tend",
            "--regid=tend",
            "--init-groups",
            "--no-new-privs",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--",
            program,
        ];
        setpriv.extend_from_slice(args);
        self.command("setpriv", &setpriv, env)
    }

    /// Runs to completion with root's rights.
    fn run(self, program: &str, args: &[&str]) -> Output {
        self.command(program, args, &[])
            .output()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
    }

    /// Runs with root's rights; its stdout, which must succeed.
    fn stdout(self, program: &str, args: &[&str]) -> String {
        let out = self.run(program, args);
        assert!(out.status.success(), "{program} {args:?} failed\n{}", show(&out));
        String::from_utf8(out.stdout).unwrap()
    }
}

/// Purges the package on drop unless [`Installed::purge`] did.
struct Installed {
    root: Privilege,
    purged: bool,
}

impl Installed {
    /// `dpkg --purge tend`, which must succeed.
    fn purge(&mut self) {
        self.purged = true;
        let out = self.root.run("dpkg", &["--purge", "tend"]);
        assert!(out.status.success(), "dpkg --purge tend failed\n{}", show(&out));
    }
}

impl Drop for Installed {
    fn drop(&mut self) {
        if !self.purged {
            let out = self.root.run("dpkg", &["--purge", "tend"]);
            eprintln!("package test failed: purged the test's package\n{}", show(&out));
        }
    }
}

/// The installed agent; killed on drop (before the purge: it is declared after it).
struct RunningAgent {
    child: Option<Child>,
    root: Privilege,
}

impl RunningAgent {
    /// SIGTERM (through sudo when the test has it), then its exit status.
    fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        let pid = child.id().to_string();
        let kill = self.root.run("kill", &["-TERM", &pid]);
        assert!(kill.status.success(), "{}", show(&kill));
        wait_exit(&mut child, WAIT).unwrap_or_else(|| {
            let _ = self.root.run("kill", &["-KILL", &pid]);
            let _ = child.wait();
            panic!("the installed agent did not stop after SIGTERM");
        })
    }
}

impl Drop for RunningAgent {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = self.root.run("kill", &["-KILL", &child.id().to_string()]);
            let _ = child.wait();
        }
    }
}

/// A `tend` package the test left behind (killed before its purge) goes; another
/// installation of tend is not the test's to remove.
fn purge_leftover(root: &Privilege) {
    let out = root.run("dpkg-query", &["-W", "-f", "${Status} ${Version}", "tend"]);
    let status = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() || status.contains("not-installed") || status.is_empty() {
        return;
    }
    assert!(
        status.ends_with(TEST_REVISION),
        "a tend package is installed on this machine ({status}); this test installs and \
         purges its own: remove that one first (dpkg --purge tend)"
    );
    let out = root.run("dpkg", &["--purge", "tend"]);
    assert!(out.status.success(), "purging a leftover test package\n{}", show(&out));
}

/// `cargo deb` over the `tend` binary under test and the plugins tests/build.rs built
/// (no build of its own); returns the `.deb`.
fn build_package(out: &Path) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| env!("CARGO").to_owned());
    let has_deb = Command::new(&cargo).args(["deb", "--version"]).output();
    assert!(
        has_deb.is_ok_and(|o| o.status.success()),
        "cargo-deb is missing: scripts/setup.sh installs it (cargo install cargo-deb --locked)"
    );
    let target = Path::new(REPO_ROOT).join("target");
    // The package's plugin assets are target/plugins/*.wasm, where
    // scripts/build-plugins.sh copies them; here they are the same plugins (same
    // sources, same `plugin` profile) as tests/build.rs built them.
    let plugins = target.join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    for (src, name) in [
        (built::SOLAR_WATER_HEATER, "solar-water-heater.wasm"),
        (built::DOOR_CONTROLLER, "door-controller.wasm"),
        (built::AV_SYSTEM, "av-system.wasm"),
    ] {
        let tmp = plugins.join(format!(".{name}.{}", std::process::id()));
        std::fs::copy(src, &tmp).unwrap();
        std::fs::rename(&tmp, plugins.join(name)).unwrap();
    }
    // cargo-deb takes the binary from `<target dir>/release/tend`: a target dir of the
    // test's own whose release/tend is the binary under test, so the package is made
    // with the release profile's settings (debug info split off into a dbgsym package)
    // without a release build.
    let staging = target.join("package-test");
    let release = staging.join("release");
    std::fs::create_dir_all(&release).unwrap();
    let bin = release.join("tend");
    let _ = std::fs::remove_file(&bin);
    if std::fs::hard_link(env!("CARGO_BIN_EXE_tend"), &bin).is_err() {
        std::fs::copy(env!("CARGO_BIN_EXE_tend"), &bin).unwrap();
    }
    let output = Command::new(&cargo)
        .current_dir(REPO_ROOT)
        .args(["deb", "-p", "tend", "--no-build", "--fast", "--deb-revision", TEST_REVISION])
        .arg("--output")
        .arg(out)
        .env("CARGO_TARGET_DIR", &staging)
        .env_remove("CARGO_BUILD_TARGET")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(output.status.success(), "cargo deb failed\n{}", show(&output));
    let files: Vec<PathBuf> = std::fs::read_dir(out).unwrap().map(|e| e.unwrap().path()).collect();
    let arch = Command::new("dpkg").arg("--print-architecture").output().unwrap();
    let arch = String::from_utf8_lossy(&arch.stdout).trim().to_owned();
    let name = format!("tend_{}-{TEST_REVISION}_{arch}.deb", env!("CARGO_PKG_VERSION"));
    let deb = out.join(&name);
    assert!(files.contains(&deb), "no {name} among {files:?}\n{}", show(&output));
    // The debug info is split off into its own package, not shipped in this one.
    let dbgsym = files.iter().find(|f| path_str(f).ends_with(".ddeb"));
    let dbgsym = dbgsym.unwrap_or_else(|| panic!("no -dbgsym .ddeb among {files:?}"));
    let contents = Command::new("dpkg-deb").arg("-c").arg(&deb).output().unwrap();
    let contents = String::from_utf8_lossy(&contents.stdout).into_owned();
    assert!(!contents.contains("usr/lib/debug"), "debug info shipped:\n{contents}");
    let debug = Command::new("dpkg-deb").arg("-c").arg(dbgsym).output().unwrap();
    assert!(String::from_utf8_lossy(&debug.stdout).contains(".debug"), "{debug:?}");
    deb
}

fn check_files(root: &Privilege) {
    for (path, expected) in FILES {
        let got = root.stdout("stat", &["-c", "%U:%G %a", path]);
        assert_eq!(got.trim(), expected, "{path}");
    }
    let conffiles = root.stdout("dpkg-query", &["-W", "-f", "${Conffiles}", "tend"]);
    let listed: Vec<&str> = conffiles.lines().filter_map(|l| l.split_whitespace().next()).collect();
    assert_eq!(listed.len(), CONFFILES.len(), "conffiles: {conffiles}");
    for file in CONFFILES {
        assert!(listed.contains(&file), "{file} is not a conffile: {conffiles}");
    }
    // Stripped: the DWARF (line tables) went to the dbgsym package, which the binary
    // names in its .gnu_debuglink.
    let sections = root.stdout("readelf", &["-S", "-W", "/usr/bin/tend"]);
    for dwarf in [".debug_info", ".debug_line", ".debug_str"] {
        assert!(!sections.contains(dwarf), "/usr/bin/tend has {dwarf}:\n{sections}");
    }
    assert!(sections.contains(".gnu_debuglink"), "{sections}");
}

fn check_user(root: &Privilege) {
    let passwd = root.stdout("getent", &["passwd", "tend"]);
    let fields: Vec<&str> = passwd.trim().split(':').collect();
    assert_eq!(fields.len(), 7, "{passwd}");
    let uid: u32 = fields[2].parse().unwrap();
    assert!(uid < 1000, "tend is not a system user: {passwd}");
    assert_eq!(fields[5], "/var/lib/tend", "{passwd}");
    assert!(fields[6].ends_with("nologin"), "tend can log in: {passwd}");
    let group = root.stdout("getent", &["group", "tend"]);
    assert_eq!(group.split(':').nth(2), Some(fields[3]), "tend's group: {group} / {passwd}");
}

fn check_units(root: &Privilege) {
    let hardening = [
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "CapabilityBoundingSet=",
        "AmbientCapabilities=",
        "Restart=on-failure",
        "EnvironmentFile=-/etc/tend/tend.env",
        "User=tend",
    ];
    let units = [
        (
            "tend.service",
            vec![
                "ExecStart=/usr/bin/tend run --config /etc/tend/agent.toml",
                "ReadWritePaths=/var/lib/tend",
                "KillSignal=SIGTERM",
            ],
        ),
        (
            "tend-central.service",
            vec![
                "ExecStart=/usr/bin/tend central --listen ${TEND_CENTRAL_LISTEN} --data-dir /var/lib/tend/central",
                "ReadWritePaths=/var/lib/tend/central",
                // `tend central` stops gracefully on SIGTERM.
                "KillSignal=SIGTERM",
            ],
        ),
    ];
    for (unit, own) in units {
        let path = format!("/usr/lib/systemd/system/{unit}");
        let text = root.stdout("cat", &[&path]);
        let lines: BTreeSet<&str> = text.lines().map(str::trim).collect();
        for line in hardening.iter().chain(&own) {
            assert!(lines.contains(line), "{unit} lacks `{line}`:\n{text}");
        }
        // Not enabled on install: the site configures first.
        let wants = format!("/etc/systemd/system/multi-user.target.wants/{unit}");
        assert!(!Path::new(&wants).exists(), "{unit} is enabled on install");
    }
    let analyze = Path::new("/usr/bin/systemd-analyze");
    if analyze.exists() {
        let out = root.run(
            "/usr/bin/systemd-analyze",
            &[
                "verify",
                "/usr/lib/systemd/system/tend.service",
                "/usr/lib/systemd/system/tend-central.service",
            ],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && !stderr.lines().any(|l| l.contains("tend")),
            "systemd-analyze verify\n{}",
            show(&out)
        );
    } else {
        eprintln!("systemd-analyze is not installed: the units are not verified");
    }
}

/// The running agent is user `tend`, without capabilities, with no_new_privs.
fn check_process_runs_as_tend() {
    let passwd = Command::new("getent").args(["passwd", "tend"]).output().unwrap();
    let uid = String::from_utf8_lossy(&passwd.stdout).split(':').nth(2).unwrap().to_owned();
    let statuses: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("status")).ok())
        .filter(|s| s.lines().next() == Some("Name:\ttend"))
        .filter(|s| s.lines().any(|l| l.starts_with("Uid:") && l.contains(&format!("\t{uid}\t"))))
        .collect();
    assert_eq!(statuses.len(), 1, "one agent process of user tend (uid {uid}): {statuses:#?}");
    let field = |name: &str| {
        statuses[0]
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_owned())
            .unwrap_or_default()
    };
    let real_and_effective = field("Uid:");
    assert!(real_and_effective.split_whitespace().all(|id| id == uid), "Uid: {real_and_effective}");
    assert_eq!(field("CapEff:"), "0000000000000000");
    assert_eq!(field("CapBnd:"), "0000000000000000");
    assert_eq!(field("NoNewPrivs:"), "1");
}

/// The packaged example inventory's site id and its first AV system.
fn av_device_of_packaged_site(root: &Privilege) -> (String, String) {
    let text = root.stdout("cat", &["/etc/tend/site.toml"]);
    let inventory: toml::Table = text.parse().unwrap();
    let site = inventory["site"].as_str().unwrap().to_owned();
    let device = inventory["device"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["type"].as_str() == Some("av-system"))
        .expect("an av-system device in /etc/tend/site.toml");
    (site, device["id"].as_str().unwrap().to_owned())
}

/// After the purge: no package, user, group, state, config, binary, plugins or units.
fn check_purged(root: &Privilege) {
    let status = root.run("dpkg-query", &["-W", "-f", "${Status}", "tend"]);
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(!status.contains("installed") || status.contains("not-installed"), "{status}");
    for db in ["passwd", "group"] {
        let out = root.run("getent", &[db, "tend"]);
        assert!(!out.status.success(), "{db} still has tend: {}", show(&out));
    }
    for path in [
        "/var/lib/tend",
        "/etc/tend",
        "/usr/bin/tend",
        "/usr/lib/tend",
        "/usr/lib/systemd/system/tend.service",
        "/usr/lib/systemd/system/tend-central.service",
    ] {
        let out = root.run("test", &["-e", path]);
        assert!(!out.status.success(), "{path} is still there after the purge");
    }
}

fn path_str(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn show(output: &Output) -> String {
    format!(
        "{}\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}
