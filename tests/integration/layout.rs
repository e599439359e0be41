//! The shape of the code: the agent crate depends on none of the other products, and no
//! crate has an import cycle between its modules (files).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use tend_tests::plugins::REPO_ROOT;

/// Module path (`["plugins", "host"]`) -> the file that defines it.
type Modules = BTreeMap<Vec<String>, PathBuf>;

fn modules(src: &Path) -> Modules {
    fn walk(dir: &Path, src: &Path, out: &mut Modules) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, src, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(src).unwrap().with_extension("");
                let mut module: Vec<String> =
                    rel.iter().map(|s| s.to_string_lossy().into_owned()).collect();
                if matches!(module.last().map(String::as_str), Some("mod" | "lib" | "main")) {
                    module.pop();
                }
                out.insert(module, path);
            }
        }
    }
    let mut out = Modules::new();
    walk(src, src, &mut out);
    out
}

/// `a::b::c` paths following `crate::` or `super::` in non-test code.
fn paths(text: &str) -> Vec<(bool, Vec<String>)> {
    let code = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    };
    let mut out = Vec::new();
    for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
        for (root, is_crate) in [("crate::", true), ("super::", false)] {
            let mut rest = line;
            while let Some(i) = rest.find(root) {
                let before = rest[..i].chars().last();
                rest = &rest[i + root.len()..];
                if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                    continue;
                }
                let mut segments = Vec::new();
                for piece in rest.split("::") {
                    let ident: String = piece
                        .chars()
                        .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                        .collect();
                    if ident.is_empty() {
                        break;
                    }
                    let whole = ident.len() == piece.len();
                    segments.push(ident);
                    if !whole {
                        break;
                    }
                }
                out.push((is_crate, segments));
            }
        }
    }
    out
}

/// Edges between files of one crate (a file using another's items), ancestors excluded.
fn edges(src: &Path) -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let modules = modules(src);
    let mut graph: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for (module, file) in &modules {
        if module.last().is_some_and(|m| m == "tests") {
            continue;
        }
        let text = std::fs::read_to_string(file).unwrap();
        for (is_crate, segments) in paths(&text) {
            let mut full: Vec<String> = if is_crate {
                Vec::new()
            } else {
                module[..module.len().saturating_sub(1)].to_vec()
            };
            full.extend(segments);
            let target =
                (1..=full.len()).rev().map(|k| &full[..k]).find(|k| modules.contains_key(*k));
            if let Some(target) = target
                && !module.starts_with(target)
            {
                graph.entry(module.clone()).or_default().insert(target.to_vec());
            }
        }
    }
    graph
}

fn reaches(
    graph: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
    from: &[String],
    to: &[String],
) -> bool {
    let mut seen = BTreeSet::new();
    let mut stack = vec![from.to_vec()];
    while let Some(m) = stack.pop() {
        for next in graph.get(&m).into_iter().flatten() {
            if next.as_slice() == to {
                return true;
            }
            if seen.insert(next.clone()) {
                stack.push(next.clone());
            }
        }
    }
    false
}

#[test]
fn no_crate_has_an_import_cycle_between_its_files() {
    let root = Path::new(REPO_ROOT);
    let mut cycles = Vec::new();
    for krate in ["agent", "wire", "central", "simulate", "report", "cli"] {
        let graph = edges(&root.join(krate).join("src"));
        assert!(
            !graph.is_empty() || krate != "agent",
            "{krate}: no edges found: the scan is broken"
        );
        // Files, then top-level modules (a capability using another's files).
        let mut top: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
        for (from, targets) in &graph {
            for to in targets {
                let (a, b) = (from[..1.min(from.len())].to_vec(), to[..1.min(to.len())].to_vec());
                if a != b && !a.is_empty() && !b.is_empty() {
                    top.entry(a).or_default().insert(b);
                }
            }
        }
        for g in [&graph, &top] {
            for (from, targets) in g {
                for to in targets {
                    if reaches(g, to, from) {
                        cycles.push(format!("{krate}: {} -> {}", from.join("::"), to.join("::")));
                    }
                }
            }
        }
    }
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

#[test]
fn the_scan_finds_a_cycle_when_there_is_one() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::create_dir_all(src.join("plugins")).unwrap();
    std::fs::write(src.join("lib.rs"), "pub mod plugins;\n").unwrap();
    std::fs::write(src.join("plugins/mod.rs"), "mod host;\nmod native;\n").unwrap();
    std::fs::write(src.join("plugins/host.rs"), "use super::native::outcome;\n").unwrap();
    std::fs::write(src.join("plugins/native.rs"), "use crate::plugins::host::Declared;\n").unwrap();
    let graph = edges(src);
    let host = vec!["plugins".to_owned(), "host".to_owned()];
    let native = vec!["plugins".to_owned(), "native".to_owned()];
    assert!(reaches(&graph, &host, &native) && reaches(&graph, &native, &host), "{graph:?}");
}

#[test]
fn the_agent_crate_depends_on_no_other_product() {
    let manifest = std::fs::read_to_string(Path::new(REPO_ROOT).join("agent/Cargo.toml")).unwrap();
    let manifest: toml::Table = manifest.parse().unwrap();
    let deps = manifest["dependencies"].as_table().unwrap();
    for product in ["tend-central", "tend-simulate", "tend-report", "tend"] {
        assert!(!deps.contains_key(product), "the agent crate depends on {product}");
    }
    assert!(deps.contains_key("tend-wire"), "the agent uses the shared wire model");
}
