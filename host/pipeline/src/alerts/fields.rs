//! Reading a rule's JSON fields, each error with the JSON pointer of the field (`/condition/window`).

use hub_core::Severity;
use hub_core::time::parse_duration_ms;
use hub_plugins::SERIES_DIMENSIONS;
use serde_json::{Map, Value};

/// Filters a condition takes at most.
pub const MAX_FILTERS: usize = 10;

/// Why a rule cannot be used, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    /// A JSON pointer into the rule (`/condition/window`).
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for RuleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

pub(super) type Checked<T> = Result<T, RuleError>;

pub(super) fn err<T>(path: &str, message: impl Into<String>) -> Checked<T> {
    Err(RuleError {
        path: path.to_string(),
        message: message.into(),
    })
}

pub(super) fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

pub(super) fn object<'a>(v: &'a Value, path: &str) -> Checked<&'a Map<String, Value>> {
    v.as_object().map_or_else(
        || err(path, format!("must be an object, got {}", kind_of(v))),
        Ok,
    )
}

pub(super) fn only(obj: &Map<String, Value>, base: &str, allowed: &[&str]) -> Checked<()> {
    match obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => err(
            &format!("{base}/{k}"),
            format!("is not a field here; allowed: {}", allowed.join(", ")),
        ),
        None => Ok(()),
    }
}

pub(super) fn text<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    base: &str,
) -> Checked<Option<&'a str>> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(v) => err(
            &format!("{base}/{key}"),
            format!("must be a string, got {}", kind_of(v)),
        ),
    }
}

pub(super) fn duration(
    obj: &Map<String, Value>,
    key: &str,
    base: &str,
    range: (i64, i64),
) -> Checked<Option<i64>> {
    let path = format!("{base}/{key}");
    let Some(s) = text(obj, key, base)? else {
        return Ok(None);
    };
    let ms = parse_duration_ms(s).or_else(|e| err(&path, e))?;
    if ms < range.0 || ms > range.1 {
        return err(
            &path,
            format!(
                "{s} is outside {} to {}",
                hub_core::time::format_duration_ms(range.0),
                hub_core::time::format_duration_ms(range.1)
            ),
        );
    }
    Ok(Some(ms))
}

pub(super) fn dimension(name: &str) -> Result<(), String> {
    if SERIES_DIMENSIONS.contains(&name) {
        Ok(())
    } else {
        Err(format!(
            "unknown dimension `{name}`; allowed: {}",
            SERIES_DIMENSIONS.join(", ")
        ))
    }
}

/// `{"model": "gpt-4o"}`: dimension values the condition is limited to.
pub(super) fn filters(obj: &Map<String, Value>, base: &str) -> Checked<Vec<(String, String)>> {
    let path = format!("{base}/filters");
    let Some(v) = obj.get("filters").filter(|v| !v.is_null()) else {
        return Ok(Vec::new());
    };
    let map = object(v, &path)?;
    if map.len() > MAX_FILTERS {
        return err(
            &path,
            format!("has {} filters; at most {MAX_FILTERS}", map.len()),
        );
    }
    let mut out = Vec::new();
    for (k, v) in map {
        let at = format!("{path}/{k}");
        dimension(k).or_else(|m| err(&at, m))?;
        match v {
            Value::String(s) if !s.is_empty() && s.len() <= 256 => out.push((k.clone(), s.clone())),
            Value::String(_) => return err(&at, "must be 1 to 256 characters"),
            other => return err(&at, format!("must be a string, got {}", kind_of(other))),
        }
    }
    Ok(out)
}

/// A finite number in `range`, or the default when absent.
pub(super) fn number_in(
    obj: &Map<String, Value>,
    key: &str,
    range: (f64, f64),
    default: Option<f64>,
) -> Checked<f64> {
    let path = format!("/condition/{key}");
    match obj.get(key) {
        None | Some(Value::Null) => default.map_or_else(|| err(&path, "is required"), Ok),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(v) if v.is_finite() && v >= range.0 && v <= range.1 => Ok(v),
            _ => err(
                &path,
                format!("must be a number from {} to {}", range.0, range.1),
            ),
        },
        Some(other) => err(&path, format!("must be a number, got {}", kind_of(other))),
    }
}

/// The severities a rule and an anomaly condition take (the envelope's debug and error are not).
pub const SEVERITIES: [&str; 3] = ["info", "warning", "critical"];

/// A severity field: one of [`SEVERITIES`], or with `any_level` any of the envelope's.
pub(super) fn severity_field(
    obj: &Map<String, Value>,
    key: &str,
    base: &str,
    any_level: bool,
) -> Checked<Option<Severity>> {
    let Some(s) = text(obj, key, base)? else {
        return Ok(None);
    };
    let (parsed, allowed) = if any_level {
        (
            Severity::parse(s),
            "debug, info, warning, error, critical".to_string(),
        )
    } else {
        (
            SEVERITIES
                .contains(&s)
                .then(|| Severity::parse(s))
                .flatten(),
            SEVERITIES.join(", "),
        )
    };
    parsed.map(Some).map_or_else(
        || {
            err(
                &format!("{base}/{key}"),
                format!("unknown severity `{s}`; allowed: {allowed}"),
            )
        },
        Ok,
    )
}
