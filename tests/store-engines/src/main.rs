//! Store-engine benchmark: fjall (LSM) vs redb (copy-on-write B-tree) on tend's own write pattern.
//!
//! Each "group commit" writes, in ONE atomic batch (fjall: a cross-keyspace write batch; redb:
//! one write transaction over 3 tables): N changed device records (overwrites of `dev-NNNNN`
//! among 10,000 pre-loaded devices, ~300-byte binary values), outbox appends (big-endian u64
//! key -> ~800-byte JSON; N/100, at least 1 for N >= 10), archive appends (device id, 0, BE u64
//! seq -> ~150 bytes; N/50) and the deletion of the outbox entries of the previous commit (as
//! the dispatcher removes delivered ones); then makes it durable (fjall: journal `SyncData`;
//! redb: `Durability::Immediate`). A "replay" row per engine commits N = 1000 without sync.
//!
//! Measured per (engine, mode, N): commits/s and records/s (over the summed commit latency),
//! p50/p99 commit latency (build + commit + sync), bytes on disk (directory walk after close:
//! apparent and allocated sizes) vs logical bytes (live keys + values), bytes written to storage
//! per byte inserted (`/proc/self/io` write_bytes, incl. background flushes and compactions) and
//! the child process's peak RSS (VmHWM). Every cell
//! runs in its own child process (the binary re-executes itself with `--engine E --n N`),
//! after opening a fresh store and loading + scanning 10,000 devices (also timed: "load" rows).
//!
//! Run: `cargo run --release -p tend-store-engines -- [--secs S]` (default 5 s per cell).
//! Stores live in a temp dir under `target/bench/` (not tmpfs: fsync cost matters); results
//! are printed as Markdown and written to `target/bench/store-engines.json`.

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};
use rand::{Rng, RngCore, SeedableRng, rngs::StdRng};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const DEVICES: usize = 10_000;
const CACHE: usize = 8 << 20;
const FJALL_MEMTABLE: u64 = 4 << 20;
const FJALL_JOURNAL: u64 = 64 << 20;
const SETTINGS: &str = "fjall: cache_size 8 MiB, max_journaling_size 64 MiB (the minimum), \
manual_journal_persist, max_memtable_size 4 MiB per keyspace (x3), default worker threads \
(min(cores, 4)), default compression (lz4 on last level); max_write_buffer_size is not set: it is \
hidden/deprecated and unused in fjall 3.1. redb: cache_size 8 MiB, default 1-phase commit, \
no quick-repair.";

/// Command-line options (the parent runs every cell; a child runs one).
#[derive(Parser)]
#[command(about = "Compare fjall and redb on tend's group-commit write pattern")]
struct Args {
    /// Seconds of commits per cell.
    #[arg(long, default_value_t = 5.0)]
    secs: f64,
    /// Child mode: run one cell with this engine.
    #[arg(long)]
    engine: Option<Engine>,
    /// Child mode: device records per commit (0 = load and scan only).
    #[arg(long, default_value_t = 0)]
    n: usize,
    /// Child mode: commit without sync (replay).
    #[arg(long)]
    replay: bool,
    /// Directory for the temporary stores (default: target/bench).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Engines to compare (parent mode).
    #[arg(long, value_delimiter = ',', default_values = ["fjall", "redb"])]
    engines: Vec<Engine>,
    /// Records per commit to measure (parent mode).
    #[arg(long, value_delimiter = ',', default_values_t = [1, 10, 100, 1000])]
    ns: Vec<usize>,
}

/// The engines under test.
#[derive(Clone, Copy, Debug, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Engine {
    /// fjall 3.1 (LSM tree, journal + memtables).
    Fjall,
    /// redb 5.0 (copy-on-write B-tree).
    Redb,
}

/// One measured cell, printed by a child as a JSON line.
#[derive(Debug, Serialize, Deserialize)]
struct Cell {
    engine: Engine,
    mode: String,
    n: usize,
    commits: usize,
    commits_per_s: f64,
    records_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    load_ms: f64,
    scan_ms: f64,
    disk_bytes: u64,
    disk_alloc_bytes: u64,
    logical_bytes: u64,
    inserted_bytes: u64,
    write_bytes: u64,
    peak_rss_bytes: u64,
}

/// One group commit's operations.
#[derive(Default)]
struct Batch {
    devices: Vec<(Vec<u8>, Vec<u8>)>,
    outbox: Vec<(u64, Vec<u8>)>,
    archive: Vec<(Vec<u8>, Vec<u8>)>,
    outbox_deletes: Vec<u64>,
}

/// The store operations the benchmark needs.
trait Store {
    /// Writes the batch atomically; `durable` = synced to disk before returning.
    fn commit(&mut self, b: Batch, durable: bool) -> Result<()>;
    /// Reads every device; returns (count, key + value bytes).
    fn scan(&self) -> Result<(usize, u64)>;
    /// Persists everything and closes the store.
    fn close(self: Box<Self>) -> Result<()>;
}

/// fjall: one database, three keyspaces.
struct Fjall {
    db: fjall::Database,
    dev: fjall::Keyspace,
    outbox: fjall::Keyspace,
    archive: fjall::Keyspace,
}

impl Fjall {
    fn open(path: &Path) -> Result<Self> {
        let db = fjall::Database::builder(path)
            .cache_size(CACHE as u64)
            .max_journaling_size(FJALL_JOURNAL)
            .manual_journal_persist(true)
            .open()?;
        let opts = || fjall::KeyspaceCreateOptions::default().max_memtable_size(FJALL_MEMTABLE);
        Ok(Self {
            dev: db.keyspace("devices", opts)?,
            outbox: db.keyspace("outbox", opts)?,
            archive: db.keyspace("archive", opts)?,
            db,
        })
    }
}

impl Store for Fjall {
    fn commit(&mut self, b: Batch, durable: bool) -> Result<()> {
        let mode = durable.then_some(fjall::PersistMode::SyncData);
        let mut w = self.db.batch().durability(mode);
        for (k, v) in b.devices {
            w.insert(&self.dev, k, v);
        }
        for (s, v) in b.outbox {
            w.insert(&self.outbox, s.to_be_bytes().to_vec(), v);
        }
        for (k, v) in b.archive {
            w.insert(&self.archive, k, v);
        }
        for s in b.outbox_deletes {
            w.remove(&self.outbox, s.to_be_bytes().to_vec());
        }
        Ok(w.commit()?)
    }
    fn scan(&self) -> Result<(usize, u64)> {
        let kv = self.dev.iter().map(|g| g.into_inner().map(|(k, v)| (k.len() + v.len()) as u64));
        let sizes = kv.collect::<Result<Vec<_>, _>>()?;
        Ok((sizes.len(), sizes.iter().sum()))
    }
    fn close(self: Box<Self>) -> Result<()> {
        self.db.persist(fjall::PersistMode::SyncAll)?;
        Ok(())
    }
}

type Table = redb::TableDefinition<'static, &'static [u8], &'static [u8]>;
const DEV: Table = Table::new("devices");
const OUTBOX: Table = Table::new("outbox");
const ARCHIVE: Table = Table::new("archive");

/// redb: one file, three tables.
struct Redb(redb::Database);

impl Store for Redb {
    fn commit(&mut self, b: Batch, durable: bool) -> Result<()> {
        let mut tx = self.0.begin_write()?;
        let d = if durable { redb::Durability::Immediate } else { redb::Durability::None };
        tx.set_durability(d)?;
        {
            let mut t = tx.open_table(DEV)?;
            for (k, v) in &b.devices {
                t.insert(k.as_slice(), v.as_slice())?;
            }
            let mut t = tx.open_table(OUTBOX)?;
            for (s, v) in &b.outbox {
                t.insert(&s.to_be_bytes()[..], v.as_slice())?;
            }
            for s in &b.outbox_deletes {
                t.remove(&s.to_be_bytes()[..])?;
            }
            let mut t = tx.open_table(ARCHIVE)?;
            for (k, v) in &b.archive {
                t.insert(k.as_slice(), v.as_slice())?;
            }
        }
        Ok(tx.commit()?)
    }
    fn scan(&self) -> Result<(usize, u64)> {
        use redb::{ReadableDatabase, ReadableTable};
        let table = self.0.begin_read()?.open_table(DEV)?;
        let kv = table.iter()?.map(|r| r.map(|(k, v)| k.value().len() + v.value().len()));
        let sizes = kv.collect::<Result<Vec<_>, _>>()?;
        Ok((sizes.len(), sizes.iter().sum::<usize>() as u64))
    }
    fn close(self: Box<Self>) -> Result<()> {
        // Makes earlier non-durable (replay) commits durable, like the agent would at the end.
        self.0.begin_write()?.commit()?;
        Ok(self.0.close()?)
    }
}

/// Generates tend-like batches and tracks the live logical size.
struct Workload {
    rng: StdRng,
    dev_sizes: Vec<u64>,
    outbox_live: VecDeque<(u64, u64)>,
    next_outbox: u64,
    next_archive: u64,
    archive_bytes: u64,
    inserted: u64,
}

fn dev_key(i: usize) -> Vec<u8> {
    format!("dev-{i:05}").into_bytes()
}

impl Workload {
    fn new() -> Self {
        let rng = StdRng::seed_from_u64(42);
        let (outbox_live, dev_sizes) = (VecDeque::new(), vec![0; DEVICES]);
        Self {
            rng,
            dev_sizes,
            outbox_live,
            next_outbox: 1,
            next_archive: 1,
            archive_bytes: 0,
            inserted: 0,
        }
    }

    /// A postcard-like record: short length-prefixed strings, varint-ish and float fields.
    fn device_value(&mut self, i: usize) -> Vec<u8> {
        const WORDS: [&str; 8] =
            ["online", "ok", "idle", "heating", "temp_c", "open", "closed", "fault"];
        let len = self.rng.random_range(280..=320);
        let mut v = Vec::with_capacity(len + 16);
        let id = format!("dev-{i:05}");
        v.push(id.len() as u8);
        v.extend_from_slice(id.as_bytes());
        while v.len() < len {
            let w = WORDS[self.rng.random_range(0..WORDS.len())];
            v.push(w.len() as u8);
            v.extend_from_slice(w.as_bytes());
            let mut f = [0u8; 6];
            self.rng.fill_bytes(&mut f);
            v.extend_from_slice(&f);
        }
        v.truncate(len);
        v
    }

    fn set_device(&mut self, b: &mut Batch, i: usize) {
        let (k, v) = (dev_key(i), self.device_value(i));
        self.dev_sizes[i] = (k.len() + v.len()) as u64;
        b.devices.push((k, v));
    }

    /// The initial 10,000 devices, in batches of 1,000.
    fn load_batches(&mut self) -> Vec<Batch> {
        (0..DEVICES / 1000)
            .map(|c| {
                let mut b = Batch::default();
                (c * 1000..(c + 1) * 1000).for_each(|i| self.set_device(&mut b, i));
                b
            })
            .collect()
    }

    fn next(&mut self, n: usize) -> Batch {
        let mut b = Batch::default();
        let ids = rand::seq::index::sample(&mut self.rng, DEVICES, n).into_vec();
        for &i in &ids {
            self.set_device(&mut b, i);
        }
        // The dispatcher delivered (and deletes) the previous commit's outbox entries.
        b.outbox_deletes = self.outbox_live.drain(..).map(|(s, _)| s).collect();
        let outbox = if n >= 10 { (n / 100).max(1) } else { 0 };
        for j in 0..outbox {
            let seq = self.next_outbox;
            self.next_outbox += 1;
            let mut json = format!(
                r#"{{"seq":{seq},"kind":"device.changed","site":"site-0007","device":"dev-{:05}","at":"2026-05-01T12:00:00Z","points":["#,
                ids[j % ids.len()]
            );
            while json.len() < 780 {
                let (p, x) = (self.rng.random_range(0..64u32), self.rng.random::<f32>() * 100.0);
                json.push_str(&format!(r#"{{"point":"p{p}","value":{x:.3},"quality":"good"}},"#));
            }
            json.push_str(r#"{}]}"#);
            self.outbox_live.push_back((seq, 8 + json.len() as u64));
            b.outbox.push((seq, json.into_bytes()));
        }
        for &i in ids.iter().take(n / 50) {
            let mut k = dev_key(i);
            k.push(0);
            k.extend_from_slice(&self.next_archive.to_be_bytes());
            self.next_archive += 1;
            let mut v = vec![0u8; 150];
            self.rng.fill_bytes(&mut v[..100]);
            self.archive_bytes += (k.len() + v.len()) as u64;
            b.archive.push((k, v));
        }
        let kv = |v: &[(Vec<u8>, Vec<u8>)]| v.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
        let outbox: usize = b.outbox.iter().map(|(_, v)| 8 + v.len()).sum();
        self.inserted += (kv(&b.devices) + kv(&b.archive) + outbox) as u64;
        b
    }

    fn logical_bytes(&self) -> u64 {
        let outbox: u64 = self.outbox_live.iter().map(|(_, s)| s).sum();
        self.dev_sizes.iter().sum::<u64>() + outbox + self.archive_bytes
    }
}

/// (apparent, allocated) bytes of all files under `p`.
fn disk_usage(p: &Path) -> Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let mut total = (0, 0);
    for e in std::fs::read_dir(p)? {
        let e = e?;
        let md = e.metadata()?;
        let (a, b) =
            if md.is_dir() { disk_usage(&e.path())? } else { (md.len(), md.blocks() * 512) };
        total = (total.0 + a, total.1 + b);
    }
    Ok(total)
}

/// A numeric field of /proc/self/<file> (`status` values are kB, returned as bytes).
fn proc_field(file: &str, name: &str) -> Result<u64> {
    let s = std::fs::read_to_string(format!("/proc/self/{file}"))?;
    let line = s.lines().find(|l| l.starts_with(name)).context("no such /proc field")?;
    let v: u64 = line[name.len()..].split_whitespace().next().context("empty")?.parse()?;
    Ok(if file == "status" { v * 1024 } else { v })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Child mode: one fresh store, load + scan, then `secs` of group commits.
fn run_cell(engine: Engine, n: usize, replay: bool, secs: f64, dir: &Path) -> Result<Cell> {
    let tmp = tempfile::Builder::new().prefix("store-engines-").tempdir_in(dir)?;
    let mut w = Workload::new();
    let t = Instant::now();
    let mut store: Box<dyn Store> = match engine {
        Engine::Fjall => Box::new(Fjall::open(tmp.path())?),
        Engine::Redb => {
            let path = tmp.path().join("tend.redb");
            Box::new(Redb(redb::Database::builder().set_cache_size(CACHE).create(path)?))
        }
    };
    for b in w.load_batches() {
        store.commit(b, true)?;
    }
    let load_ms = ms(t.elapsed());
    let t = Instant::now();
    let (count, _) = store.scan()?;
    let scan_ms = ms(t.elapsed());
    if count != DEVICES {
        bail!("scan found {count} devices, expected {DEVICES}");
    }
    let io = || proc_field("io", "write_bytes:");
    let (io0, inserted0, mut lat) = (io()?, w.inserted, Vec::new());
    let start = Instant::now();
    while n > 0 && start.elapsed().as_secs_f64() < secs {
        let b = w.next(n);
        let t = Instant::now();
        store.commit(b, !replay)?;
        lat.push(t.elapsed());
    }
    store.close()?;
    let io1 = io()?;
    let (disk_bytes, disk_alloc_bytes) = disk_usage(tmp.path())?;
    lat.sort();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p).ceil() as usize).saturating_sub(1)).map_or(0.0, |d| ms(*d))
    };
    let busy: f64 = lat.iter().map(Duration::as_secs_f64).sum();
    let commits_per_s = if busy > 0.0 { lat.len() as f64 / busy } else { 0.0 };
    let mode = match (n, replay) {
        (0, _) => "load",
        (_, true) => "replay",
        _ => "sync",
    };
    Ok(Cell {
        engine,
        mode: mode.into(),
        n,
        commits: lat.len(),
        commits_per_s,
        records_per_s: commits_per_s * n as f64,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        max_ms: pct(1.0),
        load_ms,
        scan_ms,
        disk_bytes,
        disk_alloc_bytes,
        logical_bytes: w.logical_bytes(),
        inserted_bytes: w.inserted - inserted0,
        write_bytes: io1 - io0,
        peak_rss_bytes: proc_field("status", "VmHWM:")?,
    })
}

/// Parent mode: re-executes this binary once per cell, so peak RSS is per engine and cell.
fn spawn(args: &Args, dir: &Path, engine: Engine, n: usize, replay: bool) -> Result<Cell> {
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.arg("--engine").arg(format!("{engine:?}").to_lowercase());
    cmd.args(["--n", &n.to_string(), "--secs", &args.secs.to_string()]).arg("--dir").arg(dir);
    if replay {
        cmd.arg("--replay");
    }
    let out = cmd.stderr(Stdio::inherit()).output()?;
    if !out.status.success() {
        bail!("child {engine:?} n={n} replay={replay} failed: {}", out.status);
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// A table column: header and cell formatter.
type Col = (&'static str, fn(&Cell) -> String);

/// Prints the cells as a Markdown table.
fn table<'a>(cols: &[Col], cells: impl Iterator<Item = &'a Cell>) {
    let heads: Vec<_> = cols.iter().map(|c| c.0).collect();
    let align = heads.iter().map(|h| if matches!(*h, "engine" | "mode") { "---" } else { "---:" });
    println!("| {} |\n|{}|", heads.join(" | "), align.collect::<Vec<_>>().join("|"));
    for c in cells {
        let row: Vec<_> = cols.iter().map(|col| col.1(c)).collect();
        println!("| {} |", row.join(" | "));
    }
}

fn mib(b: u64) -> String {
    format!("{:.1}", b as f64 / (1 << 20) as f64)
}

fn main() -> Result<()> {
    let args = Args::parse();
    let target = std::env::current_exe()?.parent().and_then(Path::parent).map(Path::to_path_buf);
    let bench = target.context("cannot locate target/")?.join("bench");
    let dir = args.dir.clone().unwrap_or_else(|| bench.clone());
    std::fs::create_dir_all(&dir)?;
    if let Some(engine) = args.engine {
        let cell = run_cell(engine, args.n, args.replay, args.secs, &dir)?;
        println!("{}", serde_json::to_string(&cell)?);
        return Ok(());
    }
    let mut cells = Vec::new();
    for &engine in &args.engines {
        cells.push(spawn(&args, &dir, engine, 0, false)?);
        for &n in &args.ns {
            cells.push(spawn(&args, &dir, engine, n, false)?);
        }
        cells.push(spawn(&args, &dir, engine, 1000, true)?);
    }
    println!("Settings: {SETTINGS}\n");
    let common: [Col; 4] = [
        ("disk MiB", |c| mib(c.disk_bytes)),
        ("disk alloc MiB", |c| mib(c.disk_alloc_bytes)),
        ("logical MiB", |c| mib(c.logical_bytes)),
        ("peak RSS MiB", |c| mib(c.peak_rss_bytes)),
    ];
    let commits: [Col; 7] = [
        ("engine", |c| format!("{:?}", c.engine)),
        ("mode", |c| c.mode.clone()),
        ("N", |c| c.n.to_string()),
        ("commits/s", |c| format!("{:.0}", c.commits_per_s)),
        ("records/s", |c| format!("{:.0}", c.records_per_s)),
        ("p50 ms", |c| format!("{:.2}", c.p50_ms)),
        ("p99 ms", |c| format!("{:.2}", c.p99_ms)),
    ];
    let amp: Col = ("written/inserted", |c| {
        format!("{:.1}", c.write_bytes as f64 / c.inserted_bytes.max(1) as f64)
    });
    table(&[&commits[..], &common[..], &[amp]].concat(), cells.iter().filter(|c| c.n > 0));
    println!();
    let load: [Col; 3] = [
        ("engine", |c| format!("{:?}", c.engine)),
        ("open + load 10k ms", |c| format!("{:.1}", c.load_ms)),
        ("scan 10k ms", |c| format!("{:.2}", c.scan_ms)),
    ];
    table(&[&load[..], &common[..]].concat(), cells.iter().filter(|c| c.n == 0));
    std::fs::create_dir_all(&bench)?;
    let json =
        serde_json::json!({ "secs_per_cell": args.secs, "settings": SETTINGS, "cells": cells });
    let path = bench.join("store-engines.json");
    std::fs::write(&path, serde_json::to_string_pretty(&json)?)?;
    println!("\nJSON: {}", path.display());
    Ok(())
}
