//! The operations register rendered by a real browser: the HTML of a generated
//! quarter at a nine-device site goes through Debian's headless Chromium, which must
//! show both SVG charts and the tables in its DOM and paint a non-trivial screenshot.
//!
//! Set `TEND_REPORT_OUT=/some/dir` to keep `register.html`, `register.md` and
//! `register.png` there for a person to look at.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use jiff::civil::date;
use tend_agent::store::archive::{
    ArchiveEntry, ArchiveEvent, DeviceArchive, DeviceFacts, OpenFault, PlanStatus, SiteArchive,
    SlaTimes, WarrantyLine,
};
use tend_report::{self as report, Period};

const CHROMIUM: &str = "/usr/bin/chromium";
const MIN: i64 = 60_000;
const H: i64 = 60 * MIN;
const D: i64 = 24 * H;

fn ms(rfc3339: &str) -> i64 {
    rfc3339.parse::<Timestamp>().unwrap().as_millisecond()
}

/// A small deterministic generator (64-bit LCG), so the archive is the same every run.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: i64) -> i64 {
        i64::try_from(self.next() % u64::try_from(n).unwrap()).unwrap()
    }
}

/// Fault codes per type with their level (telemetry.md) and whether they
/// interrupt service (escalate to level 1 after 10 minutes).
fn codes(ty: &str) -> &'static [(&'static str, &'static str, u8, bool)] {
    match ty {
        "solar-water-heater" => &[
            ("overheat", "Tank overheating", 2, false),
            ("pump_failure", "Circulation pump failure", 2, false),
            ("sensor_fault", "Temperature sensor fault", 3, false),
            ("heater_failure", "Backup heater failure", 3, false),
        ],
        "door-controller" => &[
            ("lock_fault", "Lock fault", 2, false),
            ("battery_low", "Backup battery low", 3, false),
            ("reader_suspect", "Card reader suspect", 4, false),
            ("door_held_open", "Door held open", 3, false),
        ],
        _ => &[
            ("amp_protect", "Amplifier in protection", 2, true),
            ("speaker_line_drift", "Speaker line drift", 4, false),
            ("lamp_end_of_life", "Projector lamp end of life", 3, false),
            ("display_offline", "Display offline", 2, true),
        ],
    }
}

/// Default SLA (maintenance.md section 2): respond minutes, resolve hours.
fn sla(level: u8, t: i64) -> SlaTimes {
    let (respond, resolve) = match level {
        1 => (10, 24),
        2 => (10, 48),
        3 => (30, 120),
        _ => (30, 720),
    };
    SlaTimes {
        respond_by_ms: t + respond * MIN,
        onsite_by_ms: t + 4 * H,
        resolve_by_ms: t + resolve * H,
    }
}

/// Nine devices, a quarter (2026-Q3, Asia/Shanghai) of faults, downtime,
/// inspections and warranty, generated 2026-10-02 09:00 local.
fn generated_site() -> SiteArchive {
    let start = ms("2026-07-01T00:00:00+08:00");
    let end = ms("2026-10-01T00:00:00+08:00");
    let generated = ms("2026-10-02T09:00:00+08:00");
    let mut rng = Lcg(20260701);
    let types = ["solar-water-heater", "door-controller", "av-system"];
    let locations = ["Roof, block A", "Fire exit B2", "Auditorium <main hall> & foyer"];
    let mut devices = Vec::new();
    for n in 0..9 {
        let ty = types[n % 3];
        let id = format!("{}-{}", &ty[..ty.find('-').unwrap_or(ty.len())], n / 3 + 1);
        // Commissioned a year ago give or take: 1-year lines end around Q4 2026.
        let commissioned =
            date(2025, 9, 1).checked_add(jiff::Span::new().days(rng.below(120))).unwrap();
        let mut history = Vec::new();
        let mut open_faults = Vec::new();
        let mut t = start + rng.below(5 * D);
        let mut k = 0;
        while t < end {
            let (code, title, level, interrupts) =
                codes(ty)[usize::try_from(rng.below(4)).unwrap()];
            let ticket = format!("{id}-f{k}");
            k += 1;
            let occurrence = if n == 4 && code == "lock_fault" { 4 } else { 1 };
            history.push(ArchiveEntry {
                at_ms: t,
                event: ArchiveEvent::FaultOpened {
                    ticket_id: ticket.clone(),
                    code: code.into(),
                    title: title.into(),
                    severity: level,
                    coverage: if n % 4 == 3 { "contract" } else { "warranty" }.into(),
                    occurrence,
                    replacement_recommended: occurrence == 4,
                    sla: Some(sla(level, t)),
                },
            });
            let mut final_level = level;
            if interrupts {
                final_level = 1;
                history.push(ArchiveEntry {
                    at_ms: t + 10 * MIN,
                    event: ArchiveEvent::FaultEscalated {
                        ticket_id: ticket.clone(),
                        code: code.into(),
                        severity: 1,
                    },
                });
                history.push(ArchiveEntry {
                    at_ms: t + 10 * MIN,
                    event: ArchiveEvent::DowntimeStarted { code: code.into() },
                });
            }
            // Most are seen acknowledged within minutes; some late, some never.
            let ack = match rng.below(10) {
                0 => None,
                1 | 2 => Some(t + 15 * MIN + rng.below(60) * MIN),
                _ => Some(t + 2 * MIN + rng.below(7) * MIN),
            };
            if let Some(a) = ack {
                history.push(ArchiveEntry {
                    at_ms: a,
                    event: ArchiveEvent::TicketAcknowledged { ticket_id: ticket.clone() },
                });
            }
            let fix = t + H + rng.below(if final_level == 1 { 30 } else { 80 }) * H;
            if interrupts {
                let up = fix.min(t + 6 * H);
                history.push(ArchiveEntry {
                    at_ms: up,
                    event: ArchiveEvent::DowntimeEnded { duration_ms: up - t - 10 * MIN },
                });
            }
            if fix < generated && rng.below(8) != 0 {
                history.push(ArchiveEntry {
                    at_ms: fix,
                    event: ArchiveEvent::FaultRecovered {
                        ticket_id: ticket.clone(),
                        code: code.into(),
                    },
                });
                history.push(ArchiveEntry {
                    at_ms: fix + 30 * MIN,
                    event: ArchiveEvent::TicketClosed {
                        ticket_id: ticket.clone(),
                        resolution: Some("repaired".into()),
                    },
                });
            } else {
                open_faults.push(OpenFault {
                    code: code.into(),
                    ticket_id: ticket.clone(),
                    severity: final_level,
                    opened_ms: t,
                    phase: "active".into(),
                });
            }
            t += 2 * D + rng.below(if n % 3 == 2 { 12 } else { 20 }) * D;
        }
        // Inspections: the semiannual one completed in August; the door's yearly
        // certification overdue since mid-September.
        let due = ms("2026-08-14T00:00:00+08:00") + i64::try_from(n).unwrap() * D;
        let insp = format!("{id}-i1");
        history.push(ArchiveEntry {
            at_ms: due - 7 * D,
            event: ArchiveEvent::InspectionOpened {
                ticket_id: insp.clone(),
                plan: "semiannual".into(),
                title: "Semiannual maintenance".into(),
                due_ms: due,
                trigger: "calendar".into(),
            },
        });
        let done = due - D + rng.below(3) * D;
        history.push(ArchiveEntry {
            at_ms: done,
            event: ArchiveEvent::InspectionCompleted {
                plan: "semiannual".into(),
                ticket_id: Some(insp),
                source: "central".into(),
                note: None,
                meters: BTreeMap::new(),
            },
        });
        let mut inspections = vec![PlanStatus {
            plan: "semiannual".into(),
            title: "Semiannual maintenance".into(),
            every: Some("6m".into()),
            meter: None,
            next_due_ms: Some(done + 182 * D),
            open: None,
            overdue: false,
            last_completed_ms: Some(done),
        }];
        if ty == "door-controller" && n == 1 {
            let due = ms("2026-09-15T00:00:00+08:00");
            history.push(ArchiveEntry {
                at_ms: due,
                event: ArchiveEvent::InspectionOverdue {
                    ticket_id: format!("{id}-i2"),
                    plan: "fire_cert".into(),
                    due_ms: due,
                },
            });
            inspections.push(PlanStatus {
                plan: "fire_cert".into(),
                title: "Yearly fire door certification".into(),
                every: Some("1y".into()),
                meter: None,
                next_due_ms: Some(due),
                open: Some((format!("{id}-i2"), due)),
                overdue: true,
                last_completed_ms: None,
            });
        }
        if ty == "av-system" {
            inspections.push(PlanStatus {
                plan: "quarterly".into(),
                title: "Quarterly AV check".into(),
                every: Some("3m".into()),
                meter: None,
                next_due_ms: Some(ms("2026-10-20T00:00:00+08:00")),
                open: None,
                overdue: false,
                last_completed_ms: None,
            });
        }
        history.sort_by_key(|e| e.at_ms);
        let year = |months: i64| {
            commissioned.checked_add(jiff::Span::new().months(months)).unwrap().yesterday().unwrap()
        };
        let warranty = match ty {
            "solar-water-heater" => vec![
                WarrantyLine {
                    component: "main_unit".into(),
                    base_until: year(36),
                    until: year(36),
                },
                WarrantyLine {
                    component: "pipes".into(),
                    base_until: year(12),
                    until: year(12).checked_add(jiff::Span::new().days(2)).unwrap(),
                },
            ],
            _ => {
                vec![WarrantyLine { component: "*".into(), base_until: year(24), until: year(24) }]
            }
        };
        devices.push(DeviceArchive {
            device: DeviceFacts {
                id: id.clone(),
                equipment_type: ty.into(),
                model: ["SWH-300", "DC-200F", "AVC-8"][n % 3].into(),
                serial: format!("SN{:05}", 1000 + n),
                location: locations[n % 3].into(),
                purpose: None,
                manufactured: None,
                commissioned,
                contract_until: (n == 3).then(|| date(2026, 11, 30)),
            },
            last_seen_ms: Some(generated - rng.below(600) * 1000),
            offline_since_ms: (n == 8).then(|| generated - 3 * H),
            open_faults,
            meters: BTreeMap::new(),
            downtime_days: 0,
            warranty,
            inspections,
            history,
            maintenance: None,
        });
    }
    SiteArchive {
        site: "Harbour Plaza".into(),
        timezone: "Asia/Shanghai".into(),
        generated_ms: generated,
        devices,
        site_history: Vec::new(),
    }
}

/// Runs Chromium headless with fresh state; returns stdout. Bounded in time.
fn chromium(profile: &Path, args: &[&str]) -> String {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: install Debian's chromium (scripts/setup.sh does)"
    );
    let mut child = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-quic",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read stdout on a thread so a large DOM cannot block the browser on a full pipe.
    let mut out = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut out, &mut s).unwrap();
        s
    });
    let mut err = child.stderr.take().unwrap();
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut err, &mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("chromium {args:?} did not finish within 120 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = reader.join().unwrap();
    let stderr = err_reader.join().unwrap();
    assert!(status.success(), "chromium {args:?} failed: {status}\n{stderr}");
    stdout
}

#[test]
fn register_html_renders_in_headless_chromium() {
    let archive = generated_site();
    let register = report::build(&archive, &Period::parse("2026-Q3").unwrap()).unwrap();
    let html = register.to_html();
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("register.html");
    std::fs::write(&page, &html).unwrap();
    let url = format!("file://{}", page.display());

    // The generated quarter has what the page must show.
    assert_eq!(register.devices.len(), 9);
    assert!(register.summary.faults >= 20, "{}", register.summary_line());
    assert!(register.summary.critical > 0 && register.summary.inspections_overdue == 1);
    assert!(
        !register.warranty.is_empty()
            && !register.repeats.is_empty()
            && !register.downtime.is_empty()
    );

    let dom = chromium(&dir.path().join("profile-dom"), &["--dump-dom", &url]);
    for id in [
        "chart-faults-per-week",
        "chart-sla",
        "devices",
        "levels",
        "faults",
        "downtime",
        "inspections",
        "warranty",
        "repeats",
    ] {
        assert!(dom.contains(&format!("id=\"{id}\"")), "#{id} missing from the rendered DOM");
    }
    assert_eq!(dom.matches("<svg").count(), 2);
    // The parser kept the page's structure: no row or cell moved or invented.
    for tag in ["<tr>", "<td", "<th", "<table", "<rect", "<text"] {
        assert_eq!(
            dom.matches(tag).count(),
            html.matches(tag).count(),
            "{tag} count changed in the DOM"
        );
    }
    // One bar segment per (week, level) with faults, as the model counted them.
    let segments = register.weeks.iter().flat_map(|w| w.by_level).filter(|&c| c > 0).count();
    assert!(segments > 0);
    assert_eq!(dom.matches("class=\"bar level-").count(), segments);
    for d in &register.devices {
        assert!(dom.contains(&format!("<td>{}</td>", d.id)), "device {} not in the table", d.id);
    }
    assert!(dom.contains(&register.summary_line()), "summary line missing");
    // The location's markup stayed text.
    assert!(dom.contains("Auditorium &lt;main hall&gt; &amp; foyer"));
    assert!(!dom.contains("<main hall"));

    let png = dir.path().join("register.png");
    chromium(
        &dir.path().join("profile-shot"),
        &[&format!("--screenshot={}", png.display()), "--window-size=1280,1800", &url],
    );
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    assert_eq!(&bytes[12..16], b"IHDR");
    let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    assert_eq!((width, height), (1280, 1800));
    // A blank 1280x1800 page compresses to a few KB; charts and tables do not.
    assert!(bytes.len() > 60_000, "screenshot is only {} bytes: blank page?", bytes.len());

    if let Some(out) = std::env::var_os("TEND_REPORT_OUT") {
        let out = PathBuf::from(out);
        std::fs::create_dir_all(&out).unwrap();
        std::fs::copy(&page, out.join("register.html")).unwrap();
        std::fs::copy(&png, out.join("register.png")).unwrap();
        std::fs::write(out.join("register.md"), register.to_markdown()).unwrap();
    }
}
