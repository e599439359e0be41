//! Per-device settings from the site inventory (threshold overrides).

use serde_json::{Map, Value};

use crate::types::EvalError;

/// A device's settings object.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Settings {
    values: Map<String, Value>,
}

impl Settings {
    /// Parses the settings JSON text (empty text means no settings).
    pub fn parse(text: &str) -> Result<Self, EvalError> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(values)) => Ok(Self { values }),
            Ok(_) => Err(EvalError::BadSettings("settings must be a table".into())),
            Err(e) => Err(EvalError::BadSettings(format!("settings are not JSON: {e}"))),
        }
    }

    /// A numeric setting, or `default` when absent; a non-number is an error naming the key.
    pub fn f64_or(&self, key: &str, default: f64) -> Result<f64, EvalError> {
        match self.values.get(key) {
            None => Ok(default),
            Some(v) => v.as_f64().filter(|x| x.is_finite()).ok_or_else(|| {
                EvalError::BadSettings(format!("setting `{key}` must be a number, got {v}"))
            }),
        }
    }

    /// A boolean setting, or `default` when absent.
    pub fn bool_or(&self, key: &str, default: bool) -> Result<bool, EvalError> {
        match self.values.get(key) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(v) => Err(EvalError::BadSettings(format!(
                "setting `{key}` must be true or false, got {v}"
            ))),
        }
    }

    /// A string setting, if present.
    pub fn str(&self, key: &str) -> Result<Option<&str>, EvalError> {
        match self.values.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(v) => {
                Err(EvalError::BadSettings(format!("setting `{key}` must be a string, got {v}")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let s = Settings::parse(r#"{"overheat_c": 90, "fire_door": true}"#).unwrap();
        assert_eq!(s.f64_or("overheat_c", 95.0), Ok(90.0));
        assert_eq!(s.f64_or("other", 1.0), Ok(1.0));
        assert_eq!(s.bool_or("fire_door", false), Ok(true));
        assert!(s.f64_or("fire_door", 1.0).is_err());
        assert_eq!(Settings::parse("").unwrap(), Settings::default());
        assert!(Settings::parse("[]").is_err());
    }
}
