//! JSON payload access that tells a *missing* field from one that is *not a number*.

use serde_json::{Map, Value};

use crate::types::EvalError;

/// A field read from a payload.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Field<T> {
    /// Present with the expected type.
    Value(T),
    /// Absent (or JSON `null`).
    Missing,
    /// Present with the wrong type (a string where a number belongs, NaN ...).
    Invalid,
}

impl<T> Field<T> {
    /// The value, if present and valid.
    pub fn ok(self) -> Option<T> {
        match self {
            Field::Value(v) => Some(v),
            _ => None,
        }
    }

    /// True when present and valid.
    pub fn is_value(&self) -> bool {
        matches!(self, Field::Value(_))
    }
}

/// A decoded JSON object payload.
#[derive(Debug, Clone, PartialEq)]
pub struct Payload {
    fields: Map<String, Value>,
}

impl Payload {
    /// Parses payload bytes; anything but a JSON object is [`EvalError::BadPayload`].
    pub fn parse(bytes: &[u8]) -> Result<Self, EvalError> {
        match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Object(fields)) => Ok(Self { fields }),
            Ok(other) => Err(EvalError::BadPayload(format!(
                "expected a JSON object, got {}",
                kind_of(&other)
            ))),
            Err(e) => Err(EvalError::BadPayload(format!("not JSON: {e}"))),
        }
    }

    /// The raw value of a field.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.fields.get(name).filter(|v| !v.is_null())
    }

    /// A finite number.
    pub fn f64(&self, name: &str) -> Field<f64> {
        match self.get(name) {
            None => Field::Missing,
            Some(v) => match v.as_f64() {
                Some(x) if x.is_finite() => Field::Value(x),
                _ => Field::Invalid,
            },
        }
    }

    /// A boolean (`true`/`false`; 0/1 are accepted as vendors commonly send them).
    pub fn bool(&self, name: &str) -> Field<bool> {
        match self.get(name) {
            None => Field::Missing,
            Some(Value::Bool(b)) => Field::Value(*b),
            Some(v) => match v.as_i64() {
                Some(0) => Field::Value(false),
                Some(1) => Field::Value(true),
                _ => Field::Invalid,
            },
        }
    }

    /// An integer (a float with no fractional part is accepted).
    pub fn i64(&self, name: &str) -> Field<i64> {
        match self.get(name) {
            None => Field::Missing,
            Some(v) => match (v.as_i64(), v.as_f64()) {
                (Some(i), _) => Field::Value(i),
                (None, Some(f)) if f.is_finite() && f.fract() == 0.0 && f.abs() < 9.0e15 => {
                    Field::Value(f as i64)
                }
                _ => Field::Invalid,
            },
        }
    }

    /// A string.
    pub fn str(&self, name: &str) -> Field<&str> {
        match self.get(name) {
            None => Field::Missing,
            Some(Value::String(s)) => Field::Value(s.as_str()),
            Some(_) => Field::Invalid,
        }
    }

    /// An array.
    pub fn array(&self, name: &str) -> Field<&[Value]> {
        match self.get(name) {
            None => Field::Missing,
            Some(Value::Array(a)) => Field::Value(a.as_slice()),
            Some(_) => Field::Invalid,
        }
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_missing_from_invalid() {
        let p = Payload::parse(br#"{"a": 1.5, "b": "x", "c": null, "d": true, "e": 1}"#).unwrap();
        assert_eq!(p.f64("a"), Field::Value(1.5));
        assert_eq!(p.f64("b"), Field::Invalid);
        assert_eq!(p.f64("c"), Field::Missing);
        assert_eq!(p.f64("zz"), Field::Missing);
        assert_eq!(p.bool("d"), Field::Value(true));
        assert_eq!(p.bool("e"), Field::Value(true));
        assert_eq!(p.bool("a"), Field::Invalid);
        assert_eq!(p.i64("a"), Field::Invalid);
        assert_eq!(p.i64("e"), Field::Value(1));
    }

    #[test]
    fn rejects_non_objects() {
        assert!(matches!(Payload::parse(b"[1]"), Err(EvalError::BadPayload(_))));
        assert!(matches!(Payload::parse(b"{"), Err(EvalError::BadPayload(_))));
        assert!(matches!(Payload::parse(b"\"offline\""), Err(EvalError::BadPayload(_))));
    }
}
