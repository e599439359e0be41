//! Per-message cost of `evaluate_batch` through the wasm host versus the same rule
//! crate called natively through the same `Evaluate` trait.
//!
//! ```text
//! cargo bench -p tend-agent --bench plugin_overhead              # full run
//! cargo bench -p tend-agent --bench plugin_overhead -- --quick   # fewer repetitions
//! cargo bench -p tend-agent --bench plugin_overhead -- door      # only plugins matching "door"
//! cargo bench -p tend-agent --bench plugin_overhead -- --json    # only the JSON document on stdout
//! # one mode only, for a profiler (guest functions named through a perf map):
//! perf record -g target/release/deps/plugin_overhead-HASH --profile host1 solar
//! ```
//!
//! For each reference plugin (compiled to `wasm32-wasip2` from source with the `plugin`
//! profile, release plus LTO, by `tend-tests`' build script) the bench:
//!
//! 1. builds a message stream from the plugin's fixture traces (`traces/*.jsonl`,
//!    concatenated per device with event time shifted so it never goes backwards,
//!    repeated under other device ids until there are at least [`MIN_MESSAGES`]),
//!    decoded once up front;
//! 2. times the compile of the component, loading it from the compiled-artifact
//!    cache, and instantiate + `describe` (cold and warm);
//! 3. checks that host and native give the same outcomes and states for the stream;
//! 4. times whole passes over the stream — host one message per call, host batches
//!    of [`BATCH`], native one message per call, native batches of [`BATCH`] — with
//!    the four modes interleaved, after warm-up passes, state threaded through per
//!    device as the pipeline does;
//! 5. times an `evaluate_batch` call with no messages (the fixed cost of one call,
//!    with and without a typical state).
//!
//! Times are the CPU time of the calling thread (`CLOCK_THREAD_CPUTIME_ID`), not wall
//! time: the figure the target is about is CPU per message, and on a machine shared
//! with other work wall time mostly measures the neighbours. (The epoch ticker runs on
//! its own thread and wakes every 5 ms; its share is negligible and the same for both.)
//!
//! Prints tables to stdout, then one line per plugin and one overall line
//! (`plugin_overhead_ratio 1.42`: the worst of the plugins' batched host/native
//! ratios), and writes the figures to `target/bench/plugin_overhead.json`
//! (`$CARGO_TARGET_DIR/bench/...` when set), overwritten on each run (with a filter it
//! holds only the selected plugins): `{"plugin_overhead_ratio": .., "plugins": {..}}`.
//! With `--json` the same document is printed on stdout and the tables go to stderr.
//! `--profile MODE` (`host1`, `host64`, `native1`, `native64`) only loops that mode
//! for a profiler and writes nothing.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::hint::black_box;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::json;
use sha2::{Digest, Sha256};
use tend_agent::ingest::event_time::event_time_ms;
use tend_agent::plugins::bindings as wit;
use tend_agent::plugins::native::Native;
use tend_agent::plugins::{Evaluate, Limits, PluginEngine, WasmPlugin};
use tend_agent::trace::read_trace;
use tend_plugin_sdk as sdk;
use tend_tests::plugins as built;

/// Messages per call in the batched modes.
const BATCH: usize = 64;
/// The stream is repeated (under other device ids) until it has at least this many.
const MIN_MESSAGES: usize = 4000;
/// Event-time gap between two concatenated traces of one device.
const SEGMENT_GAP_MS: i64 = 60_000;
/// Calls per sample when timing a call with no messages.
const EMPTY_CALLS: usize = 2000;
/// Extra instantiations timed for the warm instantiate + `describe` figure.
const WARM_INSTANTIATIONS: usize = 5;

/// A plugin under test: its wasm build and its rule crate.
struct Subject {
    /// The equipment type (also the plugin's folder under `plugins/`).
    equipment_type: &'static str,
    /// The component built from source.
    wasm: &'static str,
    /// The same rule crate, native, behind `Evaluate`.
    native: fn() -> Box<dyn Evaluate>,
}

/// The three reference plugins.
const SUBJECTS: [Subject; 3] = [
    Subject {
        equipment_type: "solar-water-heater",
        wasm: built::SOLAR_WATER_HEATER,
        native: native_box::<tend_plugin_solar_water_heater::SolarWaterHeater>,
    },
    Subject {
        equipment_type: "door-controller",
        wasm: built::DOOR_CONTROLLER,
        native: native_box::<tend_plugin_door_controller::DoorController>,
    },
    Subject {
        equipment_type: "av-system",
        wasm: built::AV_SYSTEM,
        native: native_box::<tend_plugin_av_system::AvSystem>,
    },
];

/// Command-line options.
#[derive(clap::Parser)]
#[command(about = "Per-message cost of `evaluate` through the wasm host vs natively")]
struct Options {
    /// Fewer repetitions.
    #[arg(long)]
    quick: bool,
    /// Only plugins whose equipment type contains one of these (all when none).
    filters: Vec<String>,
    /// Only loop this mode (e.g. `wasm1`), for a profiler.
    #[arg(long = "profile", value_name = "MODE", value_parser = parse_mode)]
    profile: Option<usize>,
    /// The JSON document on stdout, the tables on stderr.
    #[arg(long)]
    json: bool,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

/// A mode's name (without `×`) as its index into [`MODES`].
fn parse_mode(mode: &str) -> Result<usize, String> {
    let ascii = |name: &str| name.replace('×', "");
    let names: Vec<String> = MODES.iter().map(|m| ascii(m.0)).collect();
    MODES
        .iter()
        .position(|(name, _, _)| ascii(name) == ascii(mode))
        .ok_or_else(|| format!("one of {names:?}, not `{mode}`"))
}

impl Options {
    /// Timed passes per mode.
    fn repetitions(&self) -> usize {
        if self.quick { 5 } else { 21 }
    }

    /// Untimed passes per mode before timing.
    fn warmup(&self) -> usize {
        if self.quick { 1 } else { 3 }
    }

    /// Whether `equipment_type` is selected.
    fn selects(&self, equipment_type: &str) -> bool {
        self.filters.is_empty() || self.filters.iter().any(|f| equipment_type.contains(f.as_str()))
    }
}

fn main() -> Result<()> {
    let opts = <Options as clap::Parser>::parse();
    let out_dir = target_dir().join("bench");
    let cache_dir = out_dir.join("plugin-cache");
    if let Some(mode) = opts.profile {
        for subject in SUBJECTS.iter().filter(|s| opts.selects(s.equipment_type)) {
            profile(subject, mode, &opts)
                .with_context(|| format!("profiling {}", subject.equipment_type))?;
        }
        return Ok(());
    }
    let reps = opts.repetitions();
    // The first compile in a process also sets up the compiler (thread pool, ISA):
    // done once here so the per-plugin figures are comparable.
    let first_compile = Instant::now();
    if let Some(subject) = SUBJECTS.iter().find(|s| opts.selects(s.equipment_type)) {
        let path = Path::new(subject.wasm);
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        drop(PluginEngine::new(None)?.compile(path, &bytes)?);
    }
    let first_compile = first_compile.elapsed();
    let mut results = Vec::new();
    for subject in SUBJECTS.iter().filter(|s| opts.selects(s.equipment_type)) {
        eprintln!("plugin_overhead: {} ...", subject.equipment_type);
        let r = bench_plugin(subject, &opts, &cache_dir)
            .with_context(|| format!("benchmarking {}", subject.equipment_type))?;
        results.push(r);
    }
    if results.is_empty() {
        bail!("no plugin matches {:?}", opts.filters);
    }
    let mut report = String::new();
    print_report(&mut report, &results, reps, opts.warmup());
    _ = writeln!(
        report,
        "(the process's first compile, untimed above, took {:.1} ms incl. compiler setup)",
        ms(first_compile)
    );
    // Machine-readable lines: each plugin's ratios, then the headline figure.
    report.push('\n');
    for r in &results {
        _ = writeln!(
            report,
            "plugin_overhead {} batch{BATCH}={:.3} single={:.3} target<=1.5:{}",
            r.equipment_type,
            r.ratio_batch(),
            r.ratio_single(),
            if r.ratio_batch() <= 1.5 { "met" } else { "missed" }
        );
    }
    let worst = results.iter().map(PluginResult::ratio_batch).fold(f64::NAN, f64::max);
    _ = writeln!(report, "plugin_overhead_ratio {worst:.3}");
    let file = out_dir.join("plugin_overhead.json");
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let plugins: serde_json::Map<String, serde_json::Value> =
        results.iter().map(|r| (r.equipment_type.to_owned(), r.to_json(reps))).collect();
    let doc = json!({
        "plugin_overhead_ratio": worst,
        "target": 1.5,
        "batch": BATCH,
        "clock": "thread_cpu_time",
        "plugins": plugins,
    });
    let text = serde_json::to_string_pretty(&doc)? + "\n";
    std::fs::write(&file, &text).with_context(|| format!("writing {}", file.display()))?;
    _ = writeln!(report, "\nfigures written to {}", file.display());
    if opts.json {
        eprint!("{report}");
        print!("{text}");
    } else {
        print!("{report}");
    }
    Ok(())
}

/// Where cargo puts build output (`$CARGO_TARGET_DIR`, else `<repo>/target`).
fn target_dir() -> PathBuf {
    let root = Path::new(built::REPO_ROOT);
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => root.join(dir),
        None => root.join("target"),
    }
}

/// `Native::<P>` boxed (a `fn` pointer for [`Subject::native`]).
fn native_box<P: sdk::Plugin + 'static>() -> Box<dyn Evaluate> {
    Box::new(Native::<P>::new())
}

// ---------------------------------------------------------------------------------
// The message stream.

/// One device's messages, in event-time order.
struct DeviceStream {
    /// The device as the pipeline would hand it over.
    device: wit::Device,
    /// Its messages.
    messages: Vec<wit::Message>,
}

/// Every message of one plugin's traces, decoded.
struct Stream {
    /// Devices, each with its messages (the pipeline batches per device).
    devices: Vec<DeviceStream>,
    /// Messages in all.
    messages: usize,
    /// Payload bytes in all.
    payload_bytes: usize,
    /// Trace lines that could not be decoded (left out).
    skipped: usize,
}

/// Reads every trace of `equipment_type`, concatenated per device (each trace shifted
/// in event time to start after the previous one ended), then repeats the result
/// under other device ids until there are at least [`MIN_MESSAGES`] messages.
fn build_stream(equipment_type: &str) -> Result<Stream> {
    let dir = Path::new(built::REPO_ROOT).join("plugins").join(equipment_type).join("traces");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();
    let mut per_device: BTreeMap<String, Vec<wit::Message>> = BTreeMap::new();
    let mut skipped = 0;
    for file in &files {
        let reader = BufReader::new(
            std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?,
        );
        let mut segment: BTreeMap<String, Vec<wit::Message>> = BTreeMap::new();
        let mut watermark = i64::MIN;
        for item in read_trace(reader) {
            let Ok((_, line)) = item else {
                skipped += 1;
                continue;
            };
            let Some((device, kind)) = tend_agent::ingest::topic::split_device_kind(&line.topic)
            else {
                skipped += 1;
                continue;
            };
            let payload = line.payload_bytes();
            let ts_ms = match kind {
                // Status messages carry no ts: they take the watermark (interfaces.md).
                tend_agent::ingest::topic::MessageKind::Status => watermark.max(0),
                _ => match event_time_ms(&payload) {
                    Ok(ts) => ts,
                    Err(_) => {
                        skipped += 1;
                        continue;
                    }
                },
            };
            watermark = watermark.max(ts_ms);
            let message =
                wit::Message { kind: kind.into(), topic: line.topic.clone(), payload, ts_ms };
            segment.entry(device.to_owned()).or_default().push(message);
        }
        for (device, mut messages) in segment {
            let all = per_device.entry(device).or_default();
            if let (Some(last), Some(first)) = (all.last(), messages.first()) {
                let shift = (last.ts_ms + SEGMENT_GAP_MS - first.ts_ms).max(0);
                for m in &mut messages {
                    m.ts_ms += shift;
                }
            }
            all.extend(messages);
        }
    }
    let base: usize = per_device.values().map(Vec::len).sum();
    if base == 0 {
        bail!("no usable messages in {}", dir.display());
    }
    let mut devices = Vec::new();
    for copy in 0..MIN_MESSAGES.div_ceil(base) {
        for (id, messages) in &per_device {
            let new_id = if copy == 0 { id.clone() } else { format!("{id}-r{copy}") };
            let (from, to) = (format!("/{id}/"), format!("/{new_id}/"));
            let messages = messages
                .iter()
                .map(|m| wit::Message { topic: m.topic.replace(&from, &to), ..m.clone() })
                .collect();
            let device = wit::Device { id: new_id, model: String::new(), settings: "{}".into() };
            devices.push(DeviceStream { device, messages });
        }
    }
    let messages = devices.iter().map(|d| d.messages.len()).sum();
    let payload_bytes =
        devices.iter().flat_map(|d| &d.messages).map(|m| m.payload.len()).sum::<usize>();
    Ok(Stream { devices, messages, payload_bytes, skipped })
}

// ---------------------------------------------------------------------------------
// Running the stream.

/// One pass over the stream, `batch` messages per call, state threaded through per
/// device as the pipeline does. Returns the number of outcomes (kept alive for the
/// optimiser's sake).
fn run_pass(plugin: &mut dyn Evaluate, stream: &Stream, batch: usize) -> Result<usize> {
    let mut outcomes = 0;
    for ds in &stream.devices {
        let mut state: Option<Vec<u8>> = None;
        for chunk in ds.messages.chunks(batch) {
            let now_ms = chunk.last().map_or(0, |m| m.ts_ms);
            let b = plugin.evaluate_batch(&ds.device, chunk, state.as_deref(), now_ms)?;
            outcomes += black_box(&b.outcomes).len();
            state = Some(b.state);
        }
    }
    Ok(outcomes)
}

/// What one pass produced: every outcome in order, and each device's final state.
struct Outputs {
    /// One per message.
    outcomes: Vec<Result<wit::Outcome, wit::EvalError>>,
    /// One per device.
    states: Vec<Vec<u8>>,
    /// The state after every call.
    call_states: Vec<Vec<u8>>,
}

impl Outputs {
    /// Runs one pass and keeps what it produced.
    fn collect(plugin: &mut dyn Evaluate, stream: &Stream, batch: usize) -> Result<Self> {
        let mut out = Self { outcomes: Vec::new(), states: Vec::new(), call_states: Vec::new() };
        for ds in &stream.devices {
            let mut state: Option<Vec<u8>> = None;
            for chunk in ds.messages.chunks(batch) {
                let now_ms = chunk.last().map_or(0, |m| m.ts_ms);
                let b = plugin.evaluate_batch(&ds.device, chunk, state.as_deref(), now_ms)?;
                out.outcomes.extend(b.outcomes);
                out.call_states.push(b.state.clone());
                state = Some(b.state);
            }
            out.states.push(state.unwrap_or_default());
        }
        Ok(out)
    }

    /// Where `self` first differs from `other`, for the report (`None`: equal).
    fn first_difference(&self, other: &Self) -> Option<String> {
        let outcomes = self.outcomes.iter().zip(&other.outcomes).enumerate();
        if let Some((i, (a, b))) = outcomes.clone().find(|(_, (a, b))| a != b) {
            let text = |o| serde_json::to_string(o).unwrap_or_default();
            return Some(format!("message {i}: {}", diff_window(&text(a), &text(b))));
        }
        if self.outcomes.len() != other.outcomes.len() {
            return Some(format!("{} vs {} outcomes", self.outcomes.len(), other.outcomes.len()));
        }
        let states = self.states.iter().zip(&other.states).enumerate();
        states.clone().find(|(_, (a, b))| a != b).map(|(i, (a, b))| {
            let text = |s| String::from_utf8_lossy(s).into_owned();
            format!("state of device {i}: {}", diff_window(&text(a), &text(b)))
        })
    }

    /// Outcomes that are errors (messages the plugin rejected).
    fn rejected(&self) -> usize {
        self.outcomes.iter().filter(|o| o.is_err()).count()
    }
}

/// `…abc[x|y]def…`: the first difference of two texts with a little context.
fn diff_window(a: &str, b: &str) -> String {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let at = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let from = at.saturating_sub(60);
    let piece = |s: &[char]| s[at.min(s.len())..(at + 30).min(s.len())].iter().collect::<String>();
    let before: String = a[from..at].iter().collect();
    format!("…{before}[{} | {}]…", piece(&a), piece(&b))
}

/// Median, minimum and maximum of some samples (ns per message or per call).
#[derive(Debug, Clone, Copy)]
struct Stat {
    /// The median.
    median: f64,
    /// The fastest sample.
    min: f64,
    /// The slowest sample.
    max: f64,
}

impl Stat {
    /// Summarises `samples` (not empty).
    fn of(samples: &mut [f64]) -> Self {
        samples.sort_by(f64::total_cmp);
        let n = samples.len();
        let median = match n {
            0 => f64::NAN,
            _ if n % 2 == 1 => samples[n / 2],
            _ => (samples[n / 2 - 1] + samples[n / 2]) / 2.0,
        };
        Self {
            median,
            min: samples.first().copied().unwrap_or(f64::NAN),
            max: samples.last().copied().unwrap_or(f64::NAN),
        }
    }

    /// `median [min–max]`, right-aligned in `width`.
    fn cell(&self, width: usize) -> String {
        let text = format!("{} [{}–{}]", ns(self.median), ns(self.min), ns(self.max));
        format!("{text:>width$}")
    }
}

/// CPU time used by the calling thread so far (what the timed passes measure).
fn thread_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(t.tv_sec.max(0) as u64, t.tv_nsec.clamp(0, 999_999_999) as u32)
}

/// A nanosecond figure for the tables.
fn ns(x: f64) -> String {
    if x >= 100.0 { format!("{x:.0}") } else { format!("{x:.1}") }
}

/// Milliseconds of a duration, as a float.
fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The four timed modes, in the order they are interleaved.
const MODES: [(&str, bool, usize); 4] = [
    ("host×1", true, 1),
    ("host×64", true, BATCH),
    ("native×1", false, 1),
    ("native×64", false, BATCH),
];

/// Everything measured for one plugin.
struct PluginResult {
    /// The equipment type.
    equipment_type: &'static str,
    /// Messages per pass.
    messages: usize,
    /// Devices per pass.
    devices: usize,
    /// Mean payload size.
    payload_bytes_avg: f64,
    /// Trace lines left out.
    skipped: usize,
    /// Outcomes that were errors.
    rejected: usize,
    /// Mean size of the state passed in and out, over the one-message calls.
    state_bytes: usize,
    /// Where host output first differs from native output with the same batching
    /// (empty: they agree on every outcome and state).
    differences: Vec<String>,
    /// Where native batched output first differs from native single (the rule
    /// crate's own behaviour, not the host's).
    batching_changes: Option<String>,
    /// ns/message for each of [`MODES`].
    modes: [Stat; 4],
    /// Compile of the component, no cache.
    compile: Duration,
    /// Loading the compiled component from the on-disk cache.
    cache_load: Duration,
    /// Linker + instantiate + `describe` + validation, first time.
    instantiate_cold: Duration,
    /// The same, median of a few more.
    instantiate_warm: Duration,
    /// ns per call with no messages and a state of about `state_bytes`: [host, native].
    empty_call_state: [Stat; 2],
    /// ns per call with no messages and no state: [host, native].
    empty_call_no_state: [Stat; 2],
}

impl PluginResult {
    /// Host / native, one message per call.
    fn ratio_single(&self) -> f64 {
        self.modes[0].median / self.modes[2].median
    }

    /// Host / native, batches of [`BATCH`].
    fn ratio_batch(&self) -> f64 {
        self.modes[1].median / self.modes[3].median
    }

    /// The plugin's entry of `plugin_overhead.json`.
    fn to_json(&self, reps: usize) -> serde_json::Value {
        let [hs, hb, ns, nb] = self.modes;
        json!({
            "messages": self.messages,
            "devices": self.devices,
            "repetitions": reps,
            "batch": BATCH,
            "host_single_ns": hs.median,
            "host_single_min_ns": hs.min,
            "host_single_max_ns": hs.max,
            "host_batch64_ns": hb.median,
            "host_batch64_min_ns": hb.min,
            "host_batch64_max_ns": hb.max,
            "native_single_ns": ns.median,
            "native_single_min_ns": ns.min,
            "native_single_max_ns": ns.max,
            "native_batch64_ns": nb.median,
            "native_batch64_min_ns": nb.min,
            "native_batch64_max_ns": nb.max,
            "ratio_single": self.ratio_single(),
            "ratio_batch64": self.ratio_batch(),
            "compile_ms": ms(self.compile),
            "cache_load_ms": ms(self.cache_load),
            "instantiate_describe_cold_ms": ms(self.instantiate_cold),
            "instantiate_describe_warm_ms": ms(self.instantiate_warm),
            "host_empty_call_ns": self.empty_call_state[0].median,
            "native_empty_call_ns": self.empty_call_state[1].median,
            "host_empty_call_no_state_ns": self.empty_call_no_state[0].median,
            "native_empty_call_no_state_ns": self.empty_call_no_state[1].median,
            "state_bytes_mean": self.state_bytes,
            "payload_bytes_avg": self.payload_bytes_avg,
            "rejected": self.rejected,
            "skipped_lines": self.skipped,
            "outputs_identical": self.differences.is_empty(),
            "batching_changes_output": self.batching_changes.is_some(),
        })
    }
}

/// Loads, checks and times one plugin.
fn bench_plugin(subject: &Subject, opts: &Options, cache_dir: &Path) -> Result<PluginResult> {
    let stream = build_stream(subject.equipment_type)?;

    // Load times.
    let path = Path::new(subject.wasm);
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let sha256 = hex::encode(Sha256::digest(&bytes));
    let engine = PluginEngine::new(None)?;
    let t = Instant::now();
    let component = engine.compile(path, &bytes)?;
    let compile = t.elapsed();
    let t = Instant::now();
    let mut host =
        WasmPlugin::new(engine.engine(), path, sha256.clone(), &component, Limits::default())?;
    let instantiate_cold = t.elapsed();
    let mut warm = Vec::new();
    for _ in 0..WARM_INSTANTIATIONS {
        let t = Instant::now();
        let p =
            WasmPlugin::new(engine.engine(), path, sha256.clone(), &component, Limits::default())?;
        warm.push(t.elapsed().as_secs_f64());
        drop(black_box(p));
    }
    let instantiate_warm = Duration::from_secs_f64(Stat::of(&mut warm).median);
    let cached = PluginEngine::new(Some(cache_dir.to_owned()))?;
    // The first run compiles and fills the cache; the timed one loads from it.
    drop(cached.compile(path, &bytes)?);
    let t = Instant::now();
    let reloaded = cached.compile(path, &bytes)?;
    let cache_load = t.elapsed();
    drop(reloaded);

    let mut native = (subject.native)();
    if host.equipment_type() != native.equipment_type() {
        bail!("host says `{}`, native `{}`", host.equipment_type(), native.equipment_type());
    }

    // Same answers both ways, else the comparison is meaningless.
    let native_single = Outputs::collect(native.as_mut(), &stream, 1)?;
    let native_batch = Outputs::collect(native.as_mut(), &stream, BATCH)?;
    let host_single = Outputs::collect(&mut host, &stream, 1)?;
    let host_batch = Outputs::collect(&mut host, &stream, BATCH)?;
    let mut differences = Vec::new();
    if let Some(d) = host_single.first_difference(&native_single) {
        differences.push(format!("host×1 vs native×1: {d}"));
    }
    if let Some(d) = host_batch.first_difference(&native_batch) {
        differences.push(format!("host×{BATCH} vs native×{BATCH}: {d}"));
    }
    let batching_changes = native_batch.first_difference(&native_single);
    // The state a call decodes and encodes, on average over the single-message calls,
    // and one of about that size for the fixed-cost figure.
    let calls = native_single.call_states.len().max(1);
    let state_bytes = native_single.call_states.iter().map(Vec::len).sum::<usize>() / calls;
    let typical =
        native_single.call_states.iter().min_by_key(|s| s.len().abs_diff(state_bytes)).cloned();
    let rejected = native_single.rejected();
    // Not kept around while timing.
    drop((native_single, native_batch, host_single, host_batch));

    // Whole passes, the four modes interleaved so drift hits them alike.
    let reps = opts.repetitions();
    let mut samples: [Vec<f64>; 4] = Default::default();
    for round in 0..opts.warmup() + reps {
        for (i, (_, on_host, batch)) in MODES.iter().enumerate() {
            let plugin: &mut dyn Evaluate = if *on_host { &mut host } else { native.as_mut() };
            let t = thread_cpu();
            black_box(run_pass(plugin, &stream, *batch)?);
            let elapsed = thread_cpu().saturating_sub(t);
            if round >= opts.warmup() {
                samples[i].push(elapsed.as_nanos() as f64 / stream.messages as f64);
            }
        }
    }
    let modes = samples.map(|mut s| Stat::of(&mut s));

    // The fixed cost of a call: no messages, with a typical state and with none.
    let device = &stream.devices[0].device;
    let typical = typical.as_deref();
    let empty_call_state = empty_calls(&mut host, native.as_mut(), device, typical, opts)?;
    let empty_call_no_state = empty_calls(&mut host, native.as_mut(), device, None, opts)?;

    if host.stats().failures > 0 {
        bail!("the host reported {} failed calls", host.stats().failures);
    }
    Ok(PluginResult {
        equipment_type: subject.equipment_type,
        messages: stream.messages,
        devices: stream.devices.len(),
        payload_bytes_avg: stream.payload_bytes as f64 / stream.messages as f64,
        skipped: stream.skipped,
        rejected,
        state_bytes,
        differences,
        batching_changes,
        modes,
        compile,
        cache_load,
        instantiate_cold,
        instantiate_warm,
        empty_call_state,
        empty_call_no_state,
    })
}

/// ns per `evaluate_batch` call with no messages: [host, native], interleaved.
fn empty_calls(
    host: &mut WasmPlugin,
    native: &mut dyn Evaluate,
    device: &wit::Device,
    state: Option<&[u8]>,
    opts: &Options,
) -> Result<[Stat; 2]> {
    let mut samples: [Vec<f64>; 2] = Default::default();
    for round in 0..opts.warmup() + opts.repetitions() {
        for (i, plugin) in [host as &mut dyn Evaluate, native].into_iter().enumerate() {
            let t = thread_cpu();
            for _ in 0..EMPTY_CALLS {
                black_box(plugin.evaluate_batch(device, &[], state, 0)?);
            }
            let elapsed = thread_cpu().saturating_sub(t);
            if round >= opts.warmup() {
                samples[i].push(elapsed.as_nanos() as f64 / EMPTY_CALLS as f64);
            }
        }
    }
    Ok(samples.map(|mut s| Stat::of(&mut s)))
}

/// `--profile MODE`: loops one mode over the stream for a while (10 s, 3 s with
/// `--quick`) so that `perf record` sees mostly that. The host runs on an engine
/// configured like [`PluginEngine`]'s plus a perf map (`/tmp/perf-PID.map`), so the
/// guest's functions have names in `perf report`.
fn profile(subject: &Subject, mode: usize, opts: &Options) -> Result<()> {
    let (name, on_host, batch) = MODES[mode];
    let stream = build_stream(subject.equipment_type)?;
    let mut plugin: Box<dyn Evaluate> = if on_host {
        let mut config = tend_agent::plugins::engine::config();
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        // No epoch ticker: the deadline is never reached.
        let engine = wasmtime::Engine::new(&config)?;
        let path = Path::new(subject.wasm);
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let component = wasmtime::component::Component::new(&engine, &bytes)?;
        let sha256 = hex::encode(Sha256::digest(&bytes));
        Box::new(WasmPlugin::new(&engine, path, sha256, &component, Limits::default())?)
    } else {
        (subject.native)()
    };
    let budget = Duration::from_secs(if opts.quick { 3 } else { 10 });
    let (start, mut passes) = (Instant::now(), 0u32);
    while start.elapsed() < budget {
        black_box(run_pass(plugin.as_mut(), &stream, batch)?);
        passes += 1;
    }
    let per_message = start.elapsed().as_nanos() as f64 / (passes as f64 * stream.messages as f64);
    println!(
        "{} {name}: {passes} passes of {} messages, {} ns/message (pid {})",
        subject.equipment_type,
        stream.messages,
        ns(per_message),
        std::process::id()
    );
    Ok(())
}

/// The tables, into `out`.
fn print_report(out: &mut String, results: &[PluginResult], reps: usize, warmup: usize) {
    out.push('\n');
    _ = writeln!(
        out,
        "evaluate_batch, CPU ns per message (calling thread): median [min–max] of {reps} \
         passes over the stream ({warmup} warm-up passes; modes interleaved)"
    );
    out.push('\n');
    let w = 24;
    _ = write!(out, "{:<20} {:>6}", "plugin", "msgs");
    for (name, _, _) in MODES {
        _ = write!(out, " {name:>w$}");
    }
    _ = writeln!(out, " {:>8} {:>8}", "host/nat", "host/nat");
    _ = write!(out, "{:<20} {:>6}", "", "");
    for _ in MODES {
        _ = write!(out, " {:>w$}", "");
    }
    _ = writeln!(out, " {:>8} {:>8}", "×1", "×64");
    for r in results {
        _ = write!(out, "{:<20} {:>6}", r.equipment_type, r.messages);
        for s in &r.modes {
            _ = write!(out, " {}", s.cell(w));
        }
        _ = writeln!(out, " {:>8.2} {:>8.2}", r.ratio_single(), r.ratio_batch());
    }

    out.push('\n');
    _ = writeln!(
        out,
        "one call with no messages (the fixed cost of a call), ns host / native, with a state \
         of the mean size and with none; state B: mean state per one-message call; payload B: \
         mean payload"
    );
    _ = writeln!(
        out,
        "{:<20} {:>8} {:>9} {:>11} {:>22} {:>22}",
        "plugin", "state B", "payload B", "rejected", "with state", "no state"
    );
    for r in results {
        _ = writeln!(
            out,
            "{:<20} {:>8} {:>9.0} {:>11} {:>22} {:>22}",
            r.equipment_type,
            r.state_bytes,
            r.payload_bytes_avg,
            format!("{}/{}", r.rejected, r.messages),
            format!("{} / {}", ns(r.empty_call_state[0].median), ns(r.empty_call_state[1].median)),
            format!(
                "{} / {}",
                ns(r.empty_call_no_state[0].median),
                ns(r.empty_call_no_state[1].median)
            ),
        );
    }

    out.push('\n');
    _ = writeln!(out, "loading, ms");
    _ = writeln!(
        out,
        "{:<20} {:>10} {:>12} {:>22} {:>22}",
        "plugin", "compile", "cache load", "instantiate+describe", "(warm, median of 5)"
    );
    for r in results {
        _ = writeln!(
            out,
            "{:<20} {:>10.1} {:>12.1} {:>22.2} {:>22.2}",
            r.equipment_type,
            ms(r.compile),
            ms(r.cache_load),
            ms(r.instantiate_cold),
            ms(r.instantiate_warm),
        );
    }

    out.push('\n');
    for r in results {
        match &r.batching_changes {
            None => {
                _ = writeln!(
                    out,
                    "{}: host and native outputs {}; single and batched agree",
                    r.equipment_type,
                    if r.differences.is_empty() { "identical" } else { "DIFFER" }
                )
            }
            Some(d) => {
                _ = writeln!(
                    out,
                    "{}: host and native outputs {}; but batching ×{BATCH} changes the rule crate's \
                 own output (e.g. an f64 of the state not surviving the JSON round trip between \
                 calls exactly): {d}",
                    r.equipment_type,
                    if r.differences.is_empty() { "identical" } else { "DIFFER" }
                )
            }
        }
    }
    for r in results.iter().filter(|r| !r.differences.is_empty() || r.skipped > 0) {
        out.push('\n');
        for d in &r.differences {
            _ = writeln!(out, "WARNING: {}: outputs differ: {d}", r.equipment_type);
        }
        if r.skipped > 0 {
            _ = writeln!(
                out,
                "note: {}: {} trace lines could not be decoded",
                r.equipment_type, r.skipped
            );
        }
    }
}
