//! Which series a detector or forecaster watches: metrics, grouping, step, history, how many
//! series and how often it runs (and, for a forecaster, how far ahead and at what level).
//!
//! A manifest gives the defaults under `[series]` (kebab-case keys, as the rest of `plugin.toml`);
//! a tenant overrides any of them but `level` (the level of the bounds the plugin returns: its
//! author's statement) under `"series"` in its configuration of the install
//! (snake_case, as the rest of the JSON). Both are read by [`SeriesSettings::resolve`], so the
//! rules are the same and every error names its field: `series.group-by[1]` in a manifest,
//! `/series/group_by/1` in a configuration.
//!
//! ```toml
//! [series]
//! metrics = ["requests", "error_rate"]
//! group-by = ["model"]
//! step = "1m"          # 1m, 5m, 1h or 1d
//! history = "1d"       # Nm, Nh or Nd: how far back each series reaches
//! max-series = 100     # the largest series by volume, at most
//! every = "1m"         # how often it runs (a detector: each new step by default)
//! horizon = 48         # forecasters: points ahead
//! level = 0.95         # forecasters: the level of the lower/upper bounds they return
//! ```

use serde::Serialize;
use serde_json::{Map, Value};

/// The metrics a series can follow (as the WIT's `series.metric` lists them).
pub const METRICS: [&str; 9] = [
    "requests",
    "errors",
    "error_rate",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
];

/// The dimensions a series can be grouped by, besides `tag.<name>`.
pub const DIMENSIONS: [&str; 6] = [
    "model",
    "provider",
    "app",
    "environment",
    "operation",
    "source_module",
];

/// The steps a series can have, with their length in milliseconds.
pub const STEPS: [(&str, i64); 4] = [
    ("1m", 60_000),
    ("5m", 300_000),
    ("1h", 3_600_000),
    ("1d", 86_400_000),
];

/// Points in one series at most (two weeks of minutes).
pub const MAX_POINTS: i64 = 20_160;
/// Points a forecast may reach ahead at most.
pub const MAX_HORIZON: u32 = 1_000;
/// Dimensions a series may be grouped by at once.
pub const MAX_GROUP_BY: usize = 3;

const MINUTE_MS: i64 = 60_000;

/// What a detector or forecaster is given, resolved from its manifest and its tenant's override.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeriesSettings {
    /// Names from [`METRICS`], each once.
    pub metrics: Vec<String>,
    /// Names from [`DIMENSIONS`] or `tag.<name>`, each once, at most [`MAX_GROUP_BY`].
    pub group_by: Vec<String>,
    pub step_ms: i64,
    /// A whole number of steps, at most [`MAX_POINTS`].
    pub history_ms: i64,
    /// Series per run at most: the largest by volume are kept.
    pub max_series: u32,
    /// How often the plugin runs: a whole number of minutes.
    pub every_ms: i64,
    /// Forecasters: points ahead (0 for detectors).
    pub horizon: u32,
    /// Forecasters: the level of the bounds they return, in (0, 1) (0 for detectors).
    pub level: f64,
}

/// A setting that cannot be used: where (a manifest path or a JSON pointer) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesError {
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for SeriesError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Where settings come from, for the paths errors name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// `plugin.toml`'s `[series]`: `series.group-by[1]`.
    Manifest,
    /// A tenant's configuration: `/series/group_by/1`.
    Config,
}

impl Origin {
    fn path(self, key: &str, index: Option<usize>) -> String {
        match (self, index) {
            (Origin::Manifest, None) => format!("series.{}", key.replace('_', "-")),
            (Origin::Manifest, Some(i)) => format!("series.{}[{i}]", key.replace('_', "-")),
            (Origin::Config, None) => format!("/series/{key}"),
            (Origin::Config, Some(i)) => format!("/series/{key}/{i}"),
        }
    }
}

const KEYS: [&str; 8] = [
    "metrics",
    "group_by",
    "step",
    "history",
    "max_series",
    "every",
    "horizon",
    "level",
];

impl SeriesSettings {
    /// The host's defaults for a kind (`forecaster` or anything else for a detector): the total
    /// request count per minute over a day for a detector; per hour over four weeks, 48 hours
    /// ahead at 95%, for a forecaster.
    pub fn defaults(forecaster: bool) -> SeriesSettings {
        if forecaster {
            SeriesSettings {
                metrics: vec!["requests".into()],
                group_by: Vec::new(),
                step_ms: 3_600_000,
                history_ms: 28 * 86_400_000,
                max_series: 100,
                every_ms: 3_600_000,
                horizon: 48,
                level: 0.95,
            }
        } else {
            SeriesSettings {
                metrics: vec!["requests".into()],
                group_by: Vec::new(),
                step_ms: 60_000,
                history_ms: 86_400_000,
                max_series: 100,
                every_ms: 60_000,
                horizon: 0,
                level: 0.0,
            }
        }
    }

    /// `self` with what `over` sets (an object of [`KEYS`]), checked as a whole. `max_series`
    /// is the most series the operator allows per install. A detector's `every` follows its
    /// `step` unless set, and a forecaster's is at least its step.
    pub fn resolve(
        &self,
        over: &Value,
        forecaster: bool,
        origin: Origin,
        max_series: u32,
    ) -> Result<SeriesSettings, SeriesError> {
        let err = |key: &str, index: Option<usize>, message: String| SeriesError {
            path: origin.path(key, index),
            message,
        };
        let empty = Map::new();
        let obj = match over {
            Value::Null => &empty,
            Value::Object(o) => o,
            other => {
                return Err(SeriesError {
                    path: match origin {
                        Origin::Manifest => "series".into(),
                        Origin::Config => "/series".into(),
                    },
                    message: format!("must be an object, got {}", kind_of(other)),
                });
            }
        };
        for k in obj.keys() {
            if k == "level" && forecaster && origin == Origin::Config {
                return Err(err(
                    k,
                    None,
                    format!(
                        "is the forecaster's own: its bounds are at the level its plugin.toml states ({})",
                        self.level
                    ),
                ));
            }
            if !KEYS.contains(&k.as_str())
                || (!forecaster && matches!(k.as_str(), "horizon" | "level"))
            {
                let allowed: Vec<String> = KEYS
                    .iter()
                    .filter(|k| forecaster || !matches!(**k, "horizon" | "level"))
                    .map(|k| match origin {
                        Origin::Manifest => k.replace('_', "-"),
                        Origin::Config => (*k).to_string(),
                    })
                    .collect();
                return Err(err(
                    k,
                    None,
                    format!("is not a series setting; allowed: {}", allowed.join(", ")),
                ));
            }
        }
        let mut s = self.clone();
        if let Some(v) = obj.get("metrics") {
            s.metrics = names(v, "metrics", &|m| {
                if METRICS.contains(&m) {
                    Ok(())
                } else {
                    Err(format!(
                        "unknown metric `{m}`; allowed: {}",
                        METRICS.join(", ")
                    ))
                }
            })
            .map_err(|(i, m)| err("metrics", i, m))?;
            if s.metrics.is_empty() {
                return Err(err("metrics", None, "must name at least one metric".into()));
            }
        }
        if let Some(v) = obj.get("group_by") {
            s.group_by = names(v, "group_by", &|d| {
                if DIMENSIONS.contains(&d) {
                    return Ok(());
                }
                match d.strip_prefix("tag.") {
                    Some(t) if valid_tag(t) => Ok(()),
                    Some(_) => Err(format!(
                        "`{d}`: a tag name is 1 to 64 of a-z, 0-9, `_`, `-` and `.`"
                    )),
                    None => Err(format!(
                        "unknown dimension `{d}`; allowed: {}, or tag.<name>",
                        DIMENSIONS.join(", ")
                    )),
                }
            })
            .map_err(|(i, m)| err("group_by", i, m))?;
            if s.group_by.len() > MAX_GROUP_BY {
                return Err(err(
                    "group_by",
                    None,
                    format!(
                        "names {} dimensions; at most {MAX_GROUP_BY}",
                        s.group_by.len()
                    ),
                ));
            }
            if s.group_by.iter().filter(|d| d.starts_with("tag.")).count() > 1 {
                return Err(err("group_by", None, "may name one tag at most".into()));
            }
        }
        let step_set = obj.contains_key("step");
        if let Some(v) = obj.get("step") {
            let t = v.as_str().ok_or_else(|| {
                err(
                    "step",
                    None,
                    format!("must be a text such as \"5m\", got {}", kind_of(v)),
                )
            })?;
            s.step_ms = STEPS
                .iter()
                .find(|(n, _)| *n == t)
                .map(|(_, ms)| *ms)
                .ok_or_else(|| {
                    err(
                        "step",
                        None,
                        format!(
                            "`{t}` is not a step; allowed: {}",
                            STEPS.map(|(n, _)| n).join(", ")
                        ),
                    )
                })?;
        }
        if let Some(v) = obj.get("history") {
            s.history_ms = duration(v).map_err(|m| err("history", None, m))?;
        } else if step_set {
            // The default history, in points, follows a new step (a day of minutes becomes a
            // day of 5-minute steps, not 288 days of days).
            s.history_ms = (self.history_ms / self.step_ms).max(2) * s.step_ms;
            s.history_ms = s.history_ms.min(MAX_POINTS * s.step_ms);
        }
        if s.history_ms % s.step_ms != 0 || s.history_ms < 2 * s.step_ms {
            return Err(err(
                "history",
                None,
                format!(
                    "must be at least two steps and a whole number of steps ({})",
                    step_name(s.step_ms)
                ),
            ));
        }
        if s.history_ms / s.step_ms > MAX_POINTS {
            return Err(err(
                "history",
                None,
                format!(
                    "is {} steps of {}; at most {MAX_POINTS}",
                    s.history_ms / s.step_ms,
                    step_name(s.step_ms)
                ),
            ));
        }
        if let Some(v) = obj.get("max_series") {
            s.max_series = v
                .as_u64()
                .filter(|n| *n >= 1)
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| {
                    err(
                        "max_series",
                        None,
                        format!("must be a whole number from 1, got {v}"),
                    )
                })?;
        }
        if s.max_series > max_series {
            return Err(err(
                "max_series",
                None,
                format!(
                    "is {}; this hub allows at most {max_series} series per plugin",
                    s.max_series
                ),
            ));
        }
        if let Some(v) = obj.get("every") {
            s.every_ms = duration(v).map_err(|m| err("every", None, m))?;
        } else if step_set && !forecaster {
            s.every_ms = s.step_ms;
        } else if forecaster {
            s.every_ms = s.every_ms.max(s.step_ms);
        }
        if let Some(v) = obj.get("horizon") {
            s.horizon = v
                .as_u64()
                .filter(|n| (1..=u64::from(MAX_HORIZON)).contains(n))
                .map(|n| n as u32)
                .ok_or_else(|| {
                    err(
                        "horizon",
                        None,
                        format!("must be a whole number from 1 to {MAX_HORIZON}, got {v}"),
                    )
                })?;
        }
        if let Some(v) = obj.get("level") {
            s.level = v.as_f64().filter(|l| *l > 0.0 && *l < 1.0).ok_or_else(|| {
                err(
                    "level",
                    None,
                    format!("must be a number between 0 and 1 (0.95), got {v}"),
                )
            })?;
        }
        Ok(s)
    }

    /// The settings as a tenant writes them under `"series"` (what `resolve` reads back).
    pub fn to_config(&self) -> Value {
        let mut v = serde_json::json!({
            "metrics": self.metrics,
            "group_by": self.group_by,
            "step": step_name(self.step_ms),
            "history": duration_name(self.history_ms),
            "max_series": self.max_series,
            "every": duration_name(self.every_ms),
        });
        if self.horizon > 0 {
            v["horizon"] = self.horizon.into();
        }
        v
    }
}

/// A list of distinct names, each checked by `check`; an error names the entry (or the list).
fn names(
    v: &Value,
    key: &str,
    check: &dyn Fn(&str) -> Result<(), String>,
) -> Result<Vec<String>, (Option<usize>, String)> {
    let items = v
        .as_array()
        .ok_or_else(|| (None, format!("must be a list of names, got {}", kind_of(v))))?;
    let mut out: Vec<String> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let name = item
            .as_str()
            .ok_or_else(|| (Some(i), format!("must be a text, got {}", kind_of(item))))?;
        check(name).map_err(|m| (Some(i), m))?;
        if out.iter().any(|n| n == name) {
            return Err((Some(i), format!("`{name}` is named twice in {key}")));
        }
        out.push(name.to_string());
    }
    Ok(out)
}

/// `30m`, `6h`, `14d`: a whole number of minutes, hours or days, at least one minute.
fn duration(v: &Value) -> Result<i64, String> {
    let t = v
        .as_str()
        .ok_or_else(|| format!("must be a duration such as \"6h\", got {}", kind_of(v)))?;
    let bad = || {
        format!(
            "`{t}` is not a duration: write a whole number of minutes, hours or days (30m, 6h, 14d)"
        )
    };
    let (n, unit) = t.split_at(t.len().saturating_sub(1));
    let n: i64 = n.parse().map_err(|_| bad())?;
    let ms = match unit {
        "m" => MINUTE_MS,
        "h" => 60 * MINUTE_MS,
        "d" => 1_440 * MINUTE_MS,
        _ => return Err(bad()),
    };
    if !(1..=100_000).contains(&n) {
        return Err(bad());
    }
    Ok(n * ms)
}

fn duration_name(ms: i64) -> String {
    if ms % 86_400_000 == 0 {
        format!("{}d", ms / 86_400_000)
    } else if ms % 3_600_000 == 0 {
        format!("{}h", ms / 3_600_000)
    } else {
        format!("{}m", ms / MINUTE_MS)
    }
}

/// `1m`, `5m`, `1h` or `1d` for a step; any other length as a duration.
pub fn step_name(step_ms: i64) -> String {
    STEPS
        .iter()
        .find(|(_, ms)| *ms == step_ms)
        .map_or_else(|| duration_name(step_ms), |(n, _)| (*n).to_string())
}

fn valid_tag(t: &str) -> bool {
    (1..=64).contains(&t.len())
        && t.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-' | '.'))
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a text",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn detector(over: Value) -> Result<SeriesSettings, SeriesError> {
        SeriesSettings::defaults(false).resolve(&over, false, Origin::Config, 1_000)
    }

    #[test]
    fn a_detector_gets_a_day_of_minutes_and_runs_every_step() {
        let s = detector(Value::Null).unwrap();
        assert_eq!(
            (s.step_ms, s.history_ms, s.every_ms),
            (60_000, 86_400_000, 60_000)
        );
        let s = detector(json!({"step": "5m", "metrics": ["cost_usd", "requests"], "group_by": ["model", "tag.team"]})).unwrap();
        assert_eq!((s.step_ms, s.every_ms), (300_000, 300_000));
        assert_eq!(
            s.history_ms / s.step_ms,
            1_440,
            "the default history keeps its points"
        );
        assert_eq!(s.group_by, ["model", "tag.team"]);
        let back = SeriesSettings::defaults(false)
            .resolve(&s.to_config(), false, Origin::Config, 1_000)
            .unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn a_forecaster_has_a_horizon_and_a_level() {
        let f = SeriesSettings::defaults(true);
        let s = f
            .resolve(
                &json!({"step": "1d", "history": "90d", "horizon": 31}),
                true,
                Origin::Config,
                100,
            )
            .unwrap();
        assert_eq!(
            (s.step_ms, s.every_ms, s.horizon, s.level),
            (86_400_000, 86_400_000, 31, 0.95)
        );
        assert_eq!(
            f.resolve(&s.to_config(), true, Origin::Config, 100)
                .unwrap(),
            s
        );
        let e = f
            .resolve(&json!({"level": 0.8}), true, Origin::Config, 100)
            .unwrap_err();
        assert_eq!(e.path, "/series/level");
        assert!(e.message.contains("forecaster's own"), "{e}");
    }

    #[test]
    fn errors_name_the_field_in_either_form() {
        let cases = [
            (
                json!({"metrics": ["requests", "tokens"]}),
                "/series/metrics/1",
                "unknown metric `tokens`",
            ),
            (json!({"metrics": []}), "/series/metrics", "at least one"),
            (json!({"metrics": "requests"}), "/series/metrics", "a list"),
            (
                json!({"group_by": ["model", "region"]}),
                "/series/group_by/1",
                "unknown dimension `region`",
            ),
            (
                json!({"group_by": ["model", "model"]}),
                "/series/group_by/1",
                "twice",
            ),
            (
                json!({"group_by": ["tag.A B"]}),
                "/series/group_by/0",
                "tag name",
            ),
            (
                json!({"group_by": ["tag.a", "tag.b"]}),
                "/series/group_by",
                "one tag",
            ),
            (
                json!({"step": "2m"}),
                "/series/step",
                "allowed: 1m, 5m, 1h, 1d",
            ),
            (
                json!({"history": "90m", "step": "1h"}),
                "/series/history",
                "whole number of steps",
            ),
            (json!({"history": "30d"}), "/series/history", "43200 steps"),
            (
                json!({"history": "1 day"}),
                "/series/history",
                "not a duration",
            ),
            (
                json!({"max_series": 5000}),
                "/series/max_series",
                "at most 1000",
            ),
            (json!({"max_series": 0}), "/series/max_series", "from 1"),
            (
                json!({"horizon": 3}),
                "/series/horizon",
                "not a series setting",
            ),
            (json!({"window": 3}), "/series/window", "allowed: metrics"),
            (json!(["requests"]), "/series", "an object"),
        ];
        for (over, path, message) in cases {
            let e = detector(over.clone()).unwrap_err();
            assert_eq!(e.path, path, "{over}: {e}");
            assert!(e.message.contains(message), "{over}: {e}");
        }
        let e = SeriesSettings::defaults(true)
            .resolve(
                &json!({"group_by": ["model", "x"]}),
                true,
                Origin::Manifest,
                100,
            )
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "series.group-by[1]: unknown dimension `x`; allowed: model, provider, app, environment, operation, source_module, or tag.<name>"
        );
    }
}
