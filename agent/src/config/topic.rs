//! Broker addresses and the topic template.

use std::fmt;

/// A broker address: `mqtt://host:port` or `mqtts://host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttUrl {
    /// `mqtts://`: connect with TLS.
    pub tls: bool,
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// TCP port (default 1883, or 8883 with TLS).
    pub port: u16,
}

impl MqttUrl {
    /// Parses `mqtt://host[:port]` / `mqtts://host[:port]`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let shown = redact_url(s);
        let bad =
            |why: &str| format!("`{shown}` is not a broker address like mqtt://host:1883: {why}");
        let t = s.trim();
        let (tls, rest) = if let Some(r) = t.strip_prefix("mqtt://") {
            (false, r)
        } else if let Some(r) = t.strip_prefix("mqtts://") {
            (true, r)
        } else {
            return Err(bad("it must start with mqtt:// or mqtts://"));
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains('@') {
            return Err(bad(
                "put credentials in mqtt.username and mqtt.password_file, not in the url",
            ));
        }
        if rest.contains(['/', '?', '#']) {
            return Err(bad("a broker address has no path or query"));
        }
        let default_port = if tls { 8883 } else { 1883 };
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(|| bad("unclosed `[`"))?;
            match after {
                "" => (host, None),
                p => (host, Some(p.strip_prefix(':').ok_or_else(|| bad("expected :port"))?)),
            }
        } else {
            match rest.split_once(':') {
                Some((h, p)) if !p.contains(':') => (h, Some(p)),
                Some(_) => return Err(bad("write an IPv6 address in brackets: [::1]:1883")),
                None => (rest, None),
            }
        };
        if host.is_empty() {
            return Err(bad("the host is missing"));
        }
        if !host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | ':')) {
            return Err(bad("the host has characters a host name cannot have"));
        }
        let port = match port {
            None => default_port,
            Some(p) => match p.parse::<u16>() {
                Ok(p) if p > 0 => p,
                _ => return Err(bad("the port must be a number 1..65535")),
            },
        };
        Ok(Self { tls, host: host.to_owned(), port })
    }
}

impl fmt::Display for MqttUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "mqtts" } else { "mqtt" };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)
        }
    }
}

/// `s` with anything that may be credentials replaced by `***`, for messages and
/// `Debug`: everything between the scheme (or the start) and the last `@`
/// (`mqtt://***@host:1883`). Errs on the side of hiding: a password may itself hold
/// `/`, `?` or `#`, so the last `@` counts wherever it is.
pub(crate) fn redact_url(s: &str) -> String {
    let start = s.find("://").map_or(0, |i| i + 3);
    match s.rfind('@') {
        Some(at) if at >= start => {
            format!("{}***{}", s.get(..start).unwrap_or(""), s.get(at..).unwrap_or(""))
        }
        _ => s.to_owned(),
    }
}

/// Checks a topic layout such as `tend/{site}/{device_id}/{kind}`: `{device_id}` and
/// `{kind}` once each, `{site}` at most once, each placeholder a whole topic level, no
/// wildcards, no empty levels. (`crate::ingest` turns it into a matcher.)
pub(crate) fn check_topic(s: &str) -> Result<String, String> {
    let bad = |why: &str| format!("topic template `{s}`: {why}");
    if s.is_empty() {
        return Err(bad("empty"));
    }
    if s.contains(['+', '#']) {
        return Err(bad("no MQTT wildcards (+, #): the agent builds its own filter"));
    }
    let (mut site, mut device, mut kind) = (0, 0, 0);
    for level in s.split('/') {
        match level {
            "" => return Err(bad("empty topic level (leading, trailing or double /)")),
            "{site}" => site += 1,
            "{device_id}" => device += 1,
            "{kind}" => kind += 1,
            l if l.contains(['{', '}']) => {
                return Err(bad(
                    "placeholders are {site}, {device_id} and {kind}, each a whole level",
                ));
            }
            _ => {}
        }
    }
    if device != 1 || kind != 1 {
        return Err(bad("it must contain {device_id} and {kind} once each"));
    }
    if site > 1 {
        return Err(bad("{site} may appear once"));
    }
    Ok(s.to_owned())
}

/// Checks a central service base URL (`http://` or `https://`, a host, an optional
/// path) and returns it without a trailing `/`.
pub(crate) fn parse_http_url(s: &str) -> Result<String, String> {
    let shown = redact_url(s);
    let bad =
        |why: &str| format!("`{shown}` is not a base URL like https://tickets.example.com: {why}");
    let t = s.trim();
    let rest = t
        .strip_prefix("http://")
        .or_else(|| t.strip_prefix("https://"))
        .ok_or_else(|| bad("it must start with http:// or https://"))?;
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() {
        return Err(bad("the host is missing"));
    }
    if t.contains('@') {
        return Err(bad("put the credentials in central.token_file, not in the url"));
    }
    if t.contains(['?', '#']) || t.contains(char::is_whitespace) {
        return Err(bad("a base URL has no query, fragment or spaces"));
    }
    if let Some((_, port)) = authority.rsplit_once(':').filter(|_| !authority.ends_with(']'))
        && port.parse::<u16>().map_or(true, |p| p == 0)
    {
        return Err(bad("the port must be a number 1..65535"));
    }
    Ok(t.trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_redacted() {
        for (url, shown) in [
            ("mqtt://u:pw@h:1883", "mqtt://***@h:1883"),
            ("mqtt://u:p/w?#@h", "mqtt://***@h"),
            ("u:pw@h:1883", "***@h:1883"),
            ("https://u@h/x@y", "https://***@y"),
            ("mqtt://h:1883", "mqtt://h:1883"),
            ("https://h/a", "https://h/a"),
            ("", ""),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
        for url in ["mqtt://u:pw@h", "tcp://u:pw@h", "u:pw@h:1883"] {
            let e = MqttUrl::parse(url).err().unwrap_or_default();
            assert!(e.contains("***@h") && !e.contains("pw"), "{e}");
        }
        for url in ["https://u:pw@h", "ftp://u:pw@h", "https://h/u:pw@x", "http://u:pw@"] {
            let e = parse_http_url(url).err().unwrap_or_default();
            assert!(e.contains("***@") && !e.contains("pw"), "{e}");
        }
    }

    #[test]
    fn mqtt_urls() {
        let u = MqttUrl::parse("mqtts://broker.example.com:8884").ok();
        assert_eq!(u, Some(MqttUrl { tls: true, host: "broker.example.com".into(), port: 8884 }));
        assert_eq!(MqttUrl::parse("mqtt://10.0.0.5").map(|u| u.port), Ok(1883));
        assert_eq!(MqttUrl::parse("mqtts://h/").map(|u| u.port), Ok(8883));
        assert_eq!(
            MqttUrl::parse("mqtt://[::1]:1884").map(|u| u.to_string()).ok(),
            Some("mqtt://[::1]:1884".into())
        );
        for bad in [
            "tcp://h:1883",
            "mqtt://",
            "mqtt://h:0",
            "mqtt://h:99999",
            "mqtt://u:p@h",
            "mqtt://h/x",
            "h:1883",
            "mqtt://::1:1883",
        ] {
            assert!(MqttUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn topic_templates() {
        assert!(check_topic("tend/{site}/{device_id}/{kind}").is_ok());
        assert!(check_topic("bms/{kind}/{device_id}").is_ok());
        for bad in [
            "",
            "tend/{site}/{device_id}",
            "tend/+/{device_id}/{kind}",
            "a/{device_id}-x/{kind}",
            "/{device_id}/{kind}",
            "{device_id}/{kind}/{kind}",
            "{device_id}/{kind}/{other}",
            "{site}/{site}/{device_id}/{kind}",
        ] {
            assert!(check_topic(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn http_urls() {
        assert_eq!(
            parse_http_url("https://t.example.com/svc/"),
            Ok("https://t.example.com/svc".into())
        );
        assert_eq!(parse_http_url("http://127.0.0.1:8080"), Ok("http://127.0.0.1:8080".into()));
        for bad in ["ftp://x", "https://", "http://h:x", "http://u:p@h", "http://h/?a=1"] {
            assert!(parse_http_url(bad).is_err(), "{bad}");
        }
    }
}
