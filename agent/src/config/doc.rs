//! The TOML layer: syntax errors with line:col, deserialisation that keeps going after
//! an error (so every bad key is reported, not only the first), and key paths that
//! point back into the file.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::error::Problem;

/// A parsed document, keeping the spans of its keys and values.
pub(crate) type Doc<'i> = Spanned<DeTable<'i>>;

/// Parses TOML text; every syntax error becomes a problem keyed `line L:C`.
pub(crate) fn parse<'i>(text: &'i str, file: &Path) -> Result<Doc<'i>, Vec<Problem>> {
    let (doc, errors) = DeTable::parse_recoverable(text);
    if errors.is_empty() {
        return Ok(doc);
    }
    Err(errors
        .iter()
        .map(|e| {
            let key = match e.span() {
                Some(span) => {
                    let (line, col) = line_col(text, span.start);
                    format!("line {line}:{col}")
                }
                None => String::new(),
            };
            Problem::new(file, key, format!("TOML syntax: {}", one_line(e.message())))
        })
        .collect())
}

/// Deserialises `T` from the document. On an error the offending key is reported,
/// removed, and deserialisation is tried again, so one pass reports every unknown key
/// and every badly typed value (removed keys take their defaults). Returns `None` when
/// an error cannot be tied to a key.
pub(crate) fn deserialize<T: DeserializeOwned>(
    doc: &Doc<'_>,
    text: &str,
    file: &Path,
    problems: &mut Vec<Problem>,
) -> Option<T> {
    let mut doc = doc.clone();
    // Each round removes one key, so the number of keys bounds the rounds; the cap is
    // only a guard against a deserialiser that keeps failing without a span.
    for _ in 0..10_000 {
        match T::deserialize(toml::de::Deserializer::from(doc.clone())) {
            Ok(value) => return Some(value),
            Err(e) => {
                let message = tidy_serde_message(e.message());
                let Some(path) = e.span().and_then(|s| find(doc.get_ref(), s.start)) else {
                    problems.push(Problem::new(file, "", message));
                    return None;
                };
                let pos = e.span().map_or(0, |s| s.start);
                let (line, _) = line_col(text, pos);
                problems.push(Problem::new(
                    file,
                    render(&path),
                    format!("{message} (line {line})"),
                ));
                if !remove(doc.get_mut(), &path) {
                    return None;
                }
            }
        }
    }
    None
}

/// One step of a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    /// A table key.
    Key(String),
    /// An array index.
    Index(usize),
}

/// Renders a path as people read it: `device[3].warranty.main_unit`.
pub(crate) fn render(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(&quote_key(k));
            }
            Seg::Index(i) => {
                let _ = write!(out, "[{i}]");
            }
        }
    }
    out
}

/// `prefix.name`, quoting `name` when it is not a bare TOML key.
pub(crate) fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() { quote_key(name) } else { format!("{prefix}.{}", quote_key(name)) }
}

/// A key as written in TOML: bare when possible, else a basic string.
pub(crate) fn quote_key(k: &str) -> String {
    let bare =
        !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        k.to_owned()
    } else {
        let mut s = String::from("\"");
        for c in k.chars() {
            match c {
                '"' => s.push_str("\\\""),
                '\\' => s.push_str("\\\\"),
                c => s.push(c),
            }
        }
        s.push('"');
        s
    }
}

/// Parses a rendered key path back into steps (the inverse of [`render`]).
fn parse_path(key: &str) -> Option<Vec<Seg>> {
    let mut segs = Vec::new();
    let mut chars = key.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            '.' => {
                chars.next();
            }
            '[' => {
                chars.next();
                let mut digits = String::new();
                for d in chars.by_ref() {
                    if d == ']' {
                        break;
                    }
                    digits.push(d);
                }
                segs.push(Seg::Index(digits.parse().ok()?));
            }
            '"' => {
                chars.next();
                let mut k = String::new();
                while let Some(d) = chars.next() {
                    match d {
                        '"' => break,
                        '\\' => k.push(chars.next()?),
                        d => k.push(d),
                    }
                }
                segs.push(Seg::Key(k));
            }
            _ => {
                let mut k = String::new();
                while let Some(&d) = chars.peek() {
                    if d == '.' || d == '[' {
                        break;
                    }
                    k.push(d);
                    chars.next();
                }
                segs.push(Seg::Key(k));
            }
        }
    }
    Some(segs)
}

/// The deepest key (or array element) whose key or value contains byte `pos`.
fn find(table: &DeTable<'_>, pos: usize) -> Option<Vec<Seg>> {
    for (k, v) in table.iter() {
        let key = Seg::Key(k.get_ref().to_string());
        // The key itself first: an `[[array]]` element's span covers its header key.
        if k.span().contains(&pos) {
            return Some(vec![key]);
        }
        if let Some(mut inner) = find_in_value(v.get_ref(), pos) {
            inner.insert(0, key);
            return Some(inner);
        }
        if v.span().contains(&pos) {
            return Some(vec![key]);
        }
    }
    None
}

fn find_in_value(v: &DeValue<'_>, pos: usize) -> Option<Vec<Seg>> {
    match v {
        DeValue::Table(t) => find(t, pos),
        DeValue::Array(a) => a.iter().enumerate().find_map(|(i, item)| {
            let mut inner = match find_in_value(item.get_ref(), pos) {
                Some(inner) => inner,
                None if item.span().contains(&pos) => Vec::new(),
                None => return None,
            };
            inner.insert(0, Seg::Index(i));
            Some(inner)
        }),
        _ => None,
    }
}

/// Removes the last key of `path` (a bad array element takes its whole array with it).
fn remove(table: &mut DeTable<'_>, path: &[Seg]) -> bool {
    let Some(last_key) = path.iter().rposition(|s| matches!(s, Seg::Key(_))) else {
        return false;
    };
    let (to_parent, rest) = path.split_at(last_key);
    let Some(Seg::Key(name)) = rest.first() else { return false };
    let mut current = table;
    let mut steps = to_parent.iter().peekable();
    while let Some(step) = steps.next() {
        let Seg::Key(k) = step else { return false };
        let Some(mut value) = current.get_mut(k.as_str()).map(Spanned::get_mut) else {
            return false;
        };
        while let Some(Seg::Index(i)) = steps.peek() {
            let DeValue::Array(a) = value else { return false };
            let Some(item) = a.get_mut(*i) else { return false };
            value = item.get_mut();
            steps.next();
        }
        let DeValue::Table(t) = value else { return false };
        current = t;
    }
    current.remove(name.as_str()).is_some()
}

/// Byte position of a key path in the document: the key of a table entry, the start of
/// an array element.
pub(crate) fn locate(table: &DeTable<'_>, key: &str) -> Option<usize> {
    let path = parse_path(key)?;
    let mut pos = None;
    let mut value: Option<&DeValue<'_>> = None;
    let mut current = table;
    for seg in &path {
        match seg {
            Seg::Key(k) => {
                if let Some(DeValue::Table(t)) = value {
                    current = t;
                } else if value.is_some() {
                    return None;
                }
                let (key, v) = current.get_key_value(k.as_str())?;
                pos = Some(key.span().start);
                value = Some(v.get_ref());
            }
            Seg::Index(i) => {
                let Some(DeValue::Array(a)) = value else { return None };
                let item = a.get(*i)?;
                pos = Some(item.span().start);
                value = Some(item.get_ref());
            }
        }
    }
    pos
}

/// 1-based line and column (in characters) of byte `pos`.
pub(crate) fn line_col(text: &str, pos: usize) -> (usize, usize) {
    let pos = pos.min(text.len());
    let before = text.get(..pos).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

fn one_line(s: &str) -> String {
    s.trim().replace('\n', "; ")
}

/// Serde's wording in TOML's terms: keys, tables, arrays; no internal type names.
fn tidy_serde_message(s: &str) -> String {
    let mut s = one_line(s);
    if let Some(rest) = s.strip_prefix("unknown field") {
        s = format!("unknown key{rest}");
    }
    const STRUCT: &str = "expected struct ";
    if let Some(at) = s.find(STRUCT) {
        let name = at + STRUCT.len();
        let end = s.get(name..).and_then(|t| t.find(|c: char| !c.is_alphanumeric()));
        s.replace_range(at..end.map_or(s.len(), |e| name + e), "expected a table");
    }
    s.replace("expected a map", "expected a table")
        .replace("invalid type: map", "invalid type: table")
        .replace("invalid type: sequence", "invalid type: array")
        .replace("expected a sequence", "expected an array")
}

/// Collects the problems of one file and points them at lines of it.
pub(crate) struct Reporter<'a> {
    /// The file the problems are in.
    pub file: PathBuf,
    text: &'a str,
    doc: Option<&'a DeTable<'a>>,
    /// Keys whose values came from an environment variable: key -> variable.
    from_env: BTreeMap<String, &'static str>,
    /// What has been found so far.
    pub problems: Vec<Problem>,
}

impl<'a> Reporter<'a> {
    /// A reporter for `file`, whose parsed text is `doc` (for line numbers).
    pub fn new(file: &Path, text: &'a str, doc: Option<&'a DeTable<'a>>) -> Self {
        Self { file: file.to_owned(), text, doc, from_env: BTreeMap::new(), problems: Vec::new() }
    }

    /// Marks `key` as set by environment variable `var`.
    pub fn set_from_env(&mut self, key: &str, var: &'static str) {
        self.from_env.insert(key.to_owned(), var);
    }

    /// The variable that set `key`, if one did.
    pub fn env_var(&self, key: &str) -> Option<&'static str> {
        self.from_env.get(key).copied()
    }

    /// Records a problem at `key`, naming the variable or the line it came from.
    /// One problem per key: a key already reported (say, a value of the wrong type
    /// that was then treated as missing) is not reported again.
    pub fn push(&mut self, key: &str, message: impl Into<String>) {
        if self.problems.iter().any(|p| p.key == key) {
            return;
        }
        let mut message = message.into();
        if let Some(var) = self.env_var(key) {
            let _ = write!(message, " (set by {var})");
        } else if let Some(pos) = self.doc.and_then(|d| locate(d, key)) {
            let (line, _) = line_col(self.text, pos);
            let _ = write!(message, " (line {line})");
        }
        self.problems.push(Problem::new(&self.file, key, message));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_round_trip() {
        let p = vec![
            Seg::Key("inspections".into()),
            Seg::Key("devices".into()),
            Seg::Key("a.b".into()),
            Seg::Key("x".into()),
        ];
        assert_eq!(render(&p), r#"inspections.devices."a.b".x"#);
        assert_eq!(parse_path(&render(&p)), Some(p));
        let q = vec![Seg::Key("device".into()), Seg::Index(3), Seg::Key("id".into())];
        assert_eq!(render(&q), "device[3].id");
        assert_eq!(parse_path("device[3].id"), Some(q));
    }

    #[test]
    fn line_and_column() {
        let text = "a = 1\nbb = 2\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 6), (2, 1));
        assert_eq!(line_col(text, 11), (2, 6));
    }
}
