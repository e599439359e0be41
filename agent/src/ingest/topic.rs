//! Topic templates such as `tend/{site}/{device_id}/{kind}`.

/// The `{kind}` segment of a topic: what a device published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// Periodic readings.
    Telemetry,
    /// Something happened (a door forced, a button pressed).
    Event,
    /// `online` / `offline` (retained, and the broker's last will).
    Status,
}

impl MessageKind {
    /// The topic segment for the kind.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Telemetry => "telemetry",
            MessageKind::Event => "event",
            MessageKind::Status => "status",
        }
    }

    /// The kind a topic segment names, if any.
    pub fn parse(segment: &str) -> Option<Self> {
        match segment {
            "telemetry" => Some(MessageKind::Telemetry),
            "event" => Some(MessageKind::Event),
            "status" => Some(MessageKind::Status),
            _ => None,
        }
    }
}

/// A topic template, parsed once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicTemplate {
    segments: Vec<Segment>,
    site: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Site,
    DeviceId,
    Kind,
}

/// A topic that matched the template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParsedTopic<'a> {
    /// The `{device_id}` segment (validated).
    pub device_id: &'a str,
    /// The `{kind}` segment.
    pub kind: MessageKind,
}

/// Why a template or a topic was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    /// The template itself is unusable.
    #[error("topic template `{template}`: {reason}")]
    Template {
        /// The template.
        template: String,
        /// Why.
        reason: String,
    },
    /// The topic does not have the template's shape.
    #[error("topic does not match the template")]
    Shape,
    /// The `{site}` segment names another site.
    #[error("topic is for site `{0}`, not this site")]
    OtherSite(String),
    /// The device id breaks `[A-Za-z0-9_.-]{{1,64}}`.
    #[error("device id is not [A-Za-z0-9_.-]{{1,64}}")]
    BadDeviceId,
    /// The kind segment is not telemetry, event or status.
    #[error("`{0}` is not telemetry, event or status")]
    BadKind(String),
}

impl TopicTemplate {
    /// Parses a template for `site`; it must contain `{device_id}` and `{kind}` once each.
    pub fn new(template: &str, site: &str) -> Result<Self, TopicError> {
        let err = |reason: &str| TopicError::Template {
            template: template.to_owned(),
            reason: reason.to_owned(),
        };
        let mut segments = Vec::new();
        for s in template.split('/') {
            segments.push(match s {
                "{site}" => Segment::Site,
                "{device_id}" => Segment::DeviceId,
                "{kind}" => Segment::Kind,
                _ if s.contains(['{', '}', '+', '#']) => {
                    return Err(err(
                        "a segment is either literal or one of {site}, {device_id}, {kind}",
                    ));
                }
                _ => Segment::Literal(s.to_owned()),
            });
        }
        let count = |seg: &Segment| segments.iter().filter(|s| *s == seg).count();
        if count(&Segment::DeviceId) != 1 || count(&Segment::Kind) != 1 {
            return Err(err("needs {device_id} and {kind} exactly once"));
        }
        Ok(Self { segments, site: site.to_owned() })
    }

    /// The MQTT subscription filter (`tend/huaihai-138/+/+`).
    pub fn subscription(&self) -> String {
        let parts: Vec<&str> = self
            .segments
            .iter()
            .map(|s| match s {
                Segment::Literal(l) => l.as_str(),
                Segment::Site => self.site.as_str(),
                Segment::DeviceId | Segment::Kind => "+",
            })
            .collect();
        parts.join("/")
    }

    /// The topic a device publishes `kind` messages on.
    pub fn topic_for(&self, device_id: &str, kind: MessageKind) -> String {
        let parts: Vec<&str> = self
            .segments
            .iter()
            .map(|s| match s {
                Segment::Literal(l) => l.as_str(),
                Segment::Site => self.site.as_str(),
                Segment::DeviceId => device_id,
                Segment::Kind => kind.as_str(),
            })
            .collect();
        parts.join("/")
    }

    /// Matches a topic against the template.
    pub fn parse<'a>(&self, topic: &'a str) -> Result<ParsedTopic<'a>, TopicError> {
        let mut device_id = None;
        let mut kind = None;
        let mut parts = topic.split('/');
        for seg in &self.segments {
            let part = parts.next().ok_or(TopicError::Shape)?;
            match seg {
                Segment::Literal(l) if l == part => {}
                Segment::Literal(_) => return Err(TopicError::Shape),
                Segment::Site if part == self.site => {}
                Segment::Site => return Err(TopicError::OtherSite(part.to_owned())),
                Segment::DeviceId => {
                    if !valid_device_id(part) {
                        return Err(TopicError::BadDeviceId);
                    }
                    device_id = Some(part);
                }
                Segment::Kind => {
                    kind = Some(
                        MessageKind::parse(part)
                            .ok_or_else(|| TopicError::BadKind(truncated(part)))?,
                    )
                }
            }
        }
        if parts.next().is_some() {
            return Err(TopicError::Shape);
        }
        match (device_id, kind) {
            (Some(device_id), Some(kind)) => Ok(ParsedTopic { device_id, kind }),
            _ => Err(TopicError::Shape),
        }
    }
}

/// `[A-Za-z0-9_.-]{1,64}` (telemetry.md).
pub fn valid_device_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Splits the last two segments of a topic, `.../{device_id}/{kind}`, whatever
/// comes before (traces for `tend plugin test` need no site or template).
pub fn split_device_kind(topic: &str) -> Option<(&str, MessageKind)> {
    let mut parts = topic.rsplit('/');
    let kind = MessageKind::parse(parts.next()?)?;
    let device = parts.next()?;
    valid_device_id(device).then_some((device, kind))
}

fn truncated(s: &str) -> String {
    s.chars().take(32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t() -> TopicTemplate {
        TopicTemplate::new("tend/{site}/{device_id}/{kind}", "huaihai-138").unwrap()
    }

    #[test]
    fn parses_the_default_layout() {
        let p = t().parse("tend/huaihai-138/swh-roof-01/telemetry").unwrap();
        assert_eq!(p.device_id, "swh-roof-01");
        assert_eq!(p.kind, MessageKind::Telemetry);
        assert_eq!(t().subscription(), "tend/huaihai-138/+/+");
        assert_eq!(t().topic_for("d.1", MessageKind::Status), "tend/huaihai-138/d.1/status");
    }

    #[test]
    fn rejects_what_breaks_the_rules() {
        assert_eq!(t().parse("tend/huaihai-138/bad id/telemetry"), Err(TopicError::BadDeviceId));
        assert_eq!(
            t().parse(&format!("tend/huaihai-138/{}/event", "x".repeat(65))),
            Err(TopicError::BadDeviceId)
        );
        assert_eq!(t().parse("tend/huaihai-138//event"), Err(TopicError::BadDeviceId));
        assert_eq!(t().parse("tend/other/d/event"), Err(TopicError::OtherSite("other".into())));
        assert_eq!(
            t().parse("tend/huaihai-138/d/reboot"),
            Err(TopicError::BadKind("reboot".into()))
        );
        assert_eq!(t().parse("tend/huaihai-138/d"), Err(TopicError::Shape));
        assert_eq!(t().parse("tend/huaihai-138/d/event/x"), Err(TopicError::Shape));
        assert_eq!(t().parse("x/huaihai-138/d/event"), Err(TopicError::Shape));
    }

    #[test]
    fn template_must_name_device_and_kind() {
        assert!(TopicTemplate::new("tend/{site}/{kind}", "s").is_err());
        assert!(TopicTemplate::new("tend/+/{device_id}/{kind}", "s").is_err());
        assert!(TopicTemplate::new("{device_id}/{kind}", "s").is_ok());
    }
}
