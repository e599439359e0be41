//! A small site for tests: config + inventory written into a temp dir, the plugins
//! built from source copied into its plugins directory.

use std::path::{Path, PathBuf};

use crate::plugins as built;

/// A test site on disk.
pub struct TestSite {
    /// Holds the files; removed on drop.
    pub dir: tempfile::TempDir,
    /// The agent config file.
    pub config: PathBuf,
}

/// Writes `agent.toml` + `site.toml` for site `test-site` (central token `tok`, quick
/// retries and ticket sync, status API on a free port) with the devices
/// `swh-1` (solar-water-heater), `door-1` (door-controller), `av-1` (av-system),
/// commissioned 2026-01-01. `extra` is appended to agent.toml (TOML sections).
pub fn test_site(central_url: &str, mqtt_url: &str, extra: &str) -> anyhow::Result<TestSite> {
    test_site_with(central_url, mqtt_url, extra, "")
}

/// [`test_site`] plus `devices` appended to site.toml; the deliberately bad plugin
/// (equipment type `misbehaving`) is installed too.
pub fn test_site_with(
    central_url: &str,
    mqtt_url: &str,
    extra: &str,
    devices: &str,
) -> anyhow::Result<TestSite> {
    let dir = tempfile::tempdir()?;
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins)?;
    for (src, name) in [
        (built::SOLAR_WATER_HEATER, "solar-water-heater.wasm"),
        (built::DOOR_CONTROLLER, "door-controller.wasm"),
        (built::AV_SYSTEM, "av-system.wasm"),
        (built::MISBEHAVING, "misbehaving.wasm"),
    ] {
        std::fs::copy(src, plugins.join(name))?;
    }
    let cache = Path::new(built::REPO_ROOT).join("target").join("test-plugin-cache");
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "inventory = \"site.toml\"\n\n[mqtt]\nurl = \"{mqtt_url}\"\nclient_id = \"tend-test\"\n\n\
             [central]\nurl = \"{central_url}\"\ntoken = \"tok\"\nsync_interval = \"1s\"\n\
             backoff_initial = \"100ms\"\nbackoff_max = \"1s\"\n\n\
             [store]\ndata_dir = \"data\"\n\n[plugins]\ndir = \"plugins\"\ncache_dir = \"{}\"\n\n\
             [api]\nlisten = \"127.0.0.1:0\"\n\n{extra}\n",
            cache.display()
        ),
    )?;
    std::fs::write(
        dir.path().join("site.toml"),
        r#"site = "test-site"
timezone = "Asia/Shanghai"

[[device]]
id = "swh-1"
type = "solar-water-heater"
model = "SWH-300"
serial = "S1"
location = "Roof"
commissioned = "2026-01-01"

[[device]]
id = "door-1"
type = "door-controller"
model = "FD-2"
serial = "D1"
location = "Stairwell A"
commissioned = "2026-01-01"

[[device]]
id = "av-1"
type = "av-system"
model = "BGM-4Z"
serial = "A1"
location = "Hall 1"
commissioned = "2026-01-01"
"#
        .to_owned()
            + devices,
    )?;
    Ok(TestSite { dir, config })
}

/// The fixture trace of `code` for `equipment_type` (plugins/<type>/traces/<code>.jsonl).
pub fn fixture(equipment_type: &str, code: &str) -> PathBuf {
    Path::new(built::REPO_ROOT)
        .join("plugins")
        .join(equipment_type)
        .join("traces")
        .join(format!("{code}.jsonl"))
}
