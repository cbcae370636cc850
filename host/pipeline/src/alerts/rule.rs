//! An alert rule as a tenant writes it (JSON), checked as a whole: every error names its JSON
//! pointer (`/condition/metric`), so the API's 400 says what to change and where.
//!
//! ```json
//! {"name": "Error rate per model", "severity": "critical",
//!  "condition": {"kind": "threshold", "metric": "error_rate", "op": ">", "value": 0.05,
//!                "window": "5m", "for": "2m", "group_by": ["model"],
//!                "filters": {"environment": "prod"}, "min_requests": 20},
//!  "labels": {"team": "search"}, "targets": ["webhook"], "renotify": "4h",
//!  "description": "{{metric}} of {{group}} is {{value}} (above {{threshold}})"}
//! ```
//!
//! An `anomaly` condition fires on the anomalies a detector (or any) stored at or above a
//! severity: `{"kind": "anomaly", "detector": "robust-level", "min_severity": "warning",
//! "filters": {"model": "gpt-4o"}}`; a `budget` condition on the month's spend reaching a share
//! of a budget: `{"kind": "budget", "budget_usd": 1000, "percent": 80, "basis": "projected",
//! "group_by": "app"}`; an `event` condition on events of an envelope kind: `{"kind": "event",
//! "event_kind": "security.threat", "min_severity": "error", "window": "5m"}`.

use std::collections::BTreeMap;

use hub_core::Severity;
use hub_core::time::{DAY_MS, MINUTE_MS};
use hub_plugins::SERIES_METRICS;
use serde_json::{Map, Value};

pub use super::fields::RuleError;
use super::fields::{
    Checked, dimension, duration, err, filters, kind_of, number_in, object, only, text,
};

/// The severities a rule and an anomaly condition take (the envelope's debug and error are not).
pub const SEVERITIES: [&str; 3] = ["info", "warning", "critical"];

/// A severity field: one of [`SEVERITIES`], or with `any_level` any of the envelope's.
fn severity_field(
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

/// A single dimension's name (a budget's or an event rule's `group_by`).
fn one_dimension(obj: &Map<String, Value>, key: &str) -> Checked<Option<String>> {
    let Some(d) = text(obj, key, "/condition")? else {
        return Ok(None);
    };
    dimension(d).or_else(|m| err(&format!("/condition/{key}"), m))?;
    Ok(Some(d.to_string()))
}

/// How a threshold compares the metric with its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Above,
    AtLeast,
    Below,
    AtMost,
}

impl Op {
    pub const NAMES: [&'static str; 4] = [">", ">=", "<", "<="];

    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Op::Above => value > threshold,
            Op::AtLeast => value >= threshold,
            Op::Below => value < threshold,
            Op::AtMost => value <= threshold,
        }
    }

    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }
}

/// What makes a rule fire.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// A metric over the trailing `window_ms`, per group of `group_by`, compared with `value`,
    /// true for `for_ms` before the alert fires.
    Threshold {
        metric: String,
        op: Op,
        value: f64,
        window_ms: i64,
        for_ms: i64,
        group_by: Vec<String>,
        filters: Vec<(String, String)>,
        /// Groups with fewer requests in the window are not judged (1 error in 2 calls is not
        /// an error rate).
        min_requests: u64,
    },
    /// Any anomaly of `detector` (any detector when `None`) at or above `min_severity` whose
    /// series has these dimension values; one alert per series and metric.
    Anomaly {
        detector: Option<String>,
        min_severity: Severity,
        filters: Vec<(String, String)>,
    },
    /// At least `min_count` events of an envelope kind (`security.threat`,
    /// `governance.policy_violation`, `cost.budget_alert`) at or above `min_severity` (any when
    /// `None`) in the trailing `window_ms`, of the tenant or per value of one dimension.
    Event {
        event_kind: String,
        min_severity: Option<Severity>,
        window_ms: i64,
        min_count: u64,
        group_by: Option<String>,
    },
    /// The month's spend (`projected`: the month-end projection, else what is spent so far),
    /// of the tenant or of each group of one dimension, reaching `percent` of `budget_usd`.
    Budget {
        /// The budget (0 when it comes `from` an integration).
        budget_usd: f64,
        percent: f64,
        projected: bool,
        group_by: Option<String>,
        /// The budget is the newest limit an integration brought in for this id (a `cost.budget`
        /// event of its, `payload.data.budget_limit_usd`), not a fixed amount.
        from: Option<BudgetFrom>,
    },
}

/// A budget kept in another system and brought in by an integration's sync (`costops`).
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetFrom {
    pub integration: String,
    pub budget_id: String,
}

impl Condition {
    /// The kind as a rule names it (`condition.kind`).
    pub fn kind(&self) -> &'static str {
        match self {
            Condition::Threshold { .. } => "threshold",
            Condition::Anomaly { .. } => "anomaly",
            Condition::Event { .. } => "event",
            Condition::Budget { .. } => "budget",
        }
    }
}

/// A checked rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub name: String,
    pub severity: Severity,
    pub condition: Condition,
    pub labels: BTreeMap<String, String>,
    /// Installed integrations to notify, by name.
    pub targets: Vec<String>,
    /// How often a firing alert is notified again (0: never).
    pub renotify_ms: i64,
    /// What a person reads; `{{metric}}`, `{{group}}`, `{{value}}`, `{{threshold}}` filled in.
    pub description: Option<String>,
}

pub const MAX_NAME: usize = 120;
pub const MAX_DESCRIPTION: usize = 1_000;
pub const MAX_LABELS: usize = 20;
pub const MAX_TARGETS: usize = 10;
pub const MAX_GROUP_BY: usize = 3;
/// The longest window a threshold looks back over, and the longest it must hold.
pub const MAX_WINDOW_MS: i64 = 7 * DAY_MS;
pub const MAX_FOR_MS: i64 = DAY_MS;
pub const DEFAULT_RENOTIFY_MS: i64 = 4 * 60 * MINUTE_MS;

const RULE_KEYS: [&str; 7] = [
    "name",
    "severity",
    "condition",
    "labels",
    "targets",
    "renotify",
    "description",
];
const THRESHOLD_KEYS: [&str; 9] = [
    "kind",
    "metric",
    "op",
    "value",
    "window",
    "for",
    "group_by",
    "filters",
    "min_requests",
];
const ANOMALY_KEYS: [&str; 4] = ["kind", "detector", "min_severity", "filters"];
const BUDGET_KEYS: [&str; 6] = [
    "kind",
    "budget_usd",
    "budget_from",
    "percent",
    "basis",
    "group_by",
];
const EVENT_KEYS: [&str; 6] = [
    "kind",
    "event_kind",
    "min_severity",
    "window",
    "min_count",
    "group_by",
];

fn threshold(obj: &Map<String, Value>) -> Checked<Condition> {
    let base = "/condition";
    only(obj, base, &THRESHOLD_KEYS)?;
    let metric = match text(obj, "metric", base)? {
        Some(m) if SERIES_METRICS.contains(&m) => m.to_string(),
        Some(m) => {
            return err(
                "/condition/metric",
                format!(
                    "unknown metric `{m}`; allowed: {}",
                    SERIES_METRICS.join(", ")
                ),
            );
        }
        None => return err("/condition/metric", "is required"),
    };
    let op = match text(obj, "op", base)? {
        Some(o) => match Op::NAMES.iter().position(|n| *n == o) {
            Some(i) => [Op::Above, Op::AtLeast, Op::Below, Op::AtMost][i],
            None => {
                return err(
                    "/condition/op",
                    format!("unknown operator `{o}`; allowed: {}", Op::NAMES.join(" ")),
                );
            }
        },
        None => Op::Above,
    };
    let value = match obj.get("value") {
        Some(Value::Number(n)) => n.as_f64().filter(|v| v.is_finite()),
        Some(other) => {
            return err(
                "/condition/value",
                format!("must be a number, got {}", kind_of(other)),
            );
        }
        None => return err("/condition/value", "is required"),
    }
    .map_or_else(|| err("/condition/value", "must be a finite number"), Ok)?;
    let window_ms =
        duration(obj, "window", base, (MINUTE_MS, MAX_WINDOW_MS))?.unwrap_or(5 * MINUTE_MS);
    if window_ms % MINUTE_MS != 0 {
        return err(
            "/condition/window",
            "must be whole minutes (the rollups' finest step)",
        );
    }
    let for_ms = duration(obj, "for", base, (0, MAX_FOR_MS))?.unwrap_or(0);
    let group_by = match obj.get("group_by").filter(|v| !v.is_null()) {
        None => Vec::new(),
        Some(Value::Array(items)) => {
            let mut out: Vec<String> = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let at = format!("/condition/group_by/{i}");
                let Value::String(d) = item else {
                    return err(&at, format!("must be a string, got {}", kind_of(item)));
                };
                dimension(d).or_else(|m| err(&at, m))?;
                if out.contains(d) {
                    return err(&at, format!("`{d}` is named twice"));
                }
                out.push(d.clone());
            }
            if out.len() > MAX_GROUP_BY {
                return err(
                    "/condition/group_by",
                    format!("names {} dimensions; at most {MAX_GROUP_BY}", out.len()),
                );
            }
            out
        }
        Some(other) => {
            return err(
                "/condition/group_by",
                format!("must be an array of dimensions, got {}", kind_of(other)),
            );
        }
    };
    let min_requests = match obj.get("min_requests") {
        None | Some(Value::Null) => 0,
        Some(v) => v.as_u64().map_or_else(
            || {
                err(
                    "/condition/min_requests",
                    "must be a whole number, 0 or more",
                )
            },
            Ok,
        )?,
    };
    Ok(Condition::Threshold {
        metric,
        op,
        value,
        window_ms,
        for_ms,
        group_by,
        filters: filters(obj, base)?,
        min_requests,
    })
}

fn anomaly(obj: &Map<String, Value>) -> Checked<Condition> {
    let base = "/condition";
    only(obj, base, &ANOMALY_KEYS)?;
    let detector = match text(obj, "detector", base)? {
        Some(d) if d.is_empty() || d.len() > 64 => {
            return err(
                "/condition/detector",
                "must be a plugin name (1 to 64 characters)",
            );
        }
        d => d.map(String::from),
    };
    let min_severity =
        severity_field(obj, "min_severity", base, false)?.unwrap_or(Severity::Warning);
    Ok(Condition::Anomaly {
        detector,
        min_severity,
        filters: filters(obj, base)?,
    })
}

fn budget(obj: &Map<String, Value>) -> Checked<Condition> {
    let base = "/condition";
    only(obj, base, &BUDGET_KEYS)?;
    let from = match obj.get("budget_from") {
        None => None,
        Some(v) => {
            let base = "/condition/budget_from";
            let o = object(v, base)?;
            only(o, base, &["integration", "budget_id"])?;
            let integration = match text(o, "integration", base)? {
                Some(n) if !n.is_empty() && n.len() <= 64 => n.to_string(),
                _ => {
                    return err(
                        &format!("{base}/integration"),
                        "is required (the integration's name)",
                    );
                }
            };
            let budget_id = match text(o, "budget_id", base)? {
                Some(id) if !id.is_empty() && id.len() <= 200 => id.to_string(),
                _ => {
                    return err(
                        &format!("{base}/budget_id"),
                        "is required (1 to 200 characters)",
                    );
                }
            };
            Some(BudgetFrom {
                integration,
                budget_id,
            })
        }
    };
    let budget_usd = match (&from, obj.contains_key("budget_usd")) {
        (Some(_), true) => {
            return err(
                "/condition/budget_usd",
                "give budget_usd or budget_from, not both",
            );
        }
        (Some(_), false) => 0.0,
        (None, _) => number_in(obj, "budget_usd", (0.01, 1e12), None)?,
    };
    let percent = number_in(obj, "percent", (1.0, 1_000.0), Some(100.0))?;
    let projected = match text(obj, "basis", base)? {
        None | Some("projected") => true,
        Some("spent") => false,
        Some(b) => {
            return err(
                "/condition/basis",
                format!(
                    "unknown basis `{b}`; allowed: projected (the month-end projection), spent (so far)"
                ),
            );
        }
    };
    let group_by = one_dimension(obj, "group_by")?;
    Ok(Condition::Budget {
        budget_usd,
        percent,
        projected,
        group_by,
        from,
    })
}

fn event(obj: &Map<String, Value>) -> Checked<Condition> {
    let base = "/condition";
    only(obj, base, &EVENT_KEYS)?;
    let event_kind = match text(obj, "event_kind", base)? {
        Some(k)
            if !k.is_empty()
                && k.len() <= 128
                && k.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')) =>
        {
            k.to_string()
        }
        Some(_) => {
            return err(
                "/condition/event_kind",
                "an event kind is 1 to 128 of letters, digits, `.`, `_` and `-` (security.threat)",
            );
        }
        None => return err("/condition/event_kind", "is required (security.threat, …)"),
    };
    let min_severity = severity_field(obj, "min_severity", base, true)?;
    let window_ms =
        duration(obj, "window", base, (MINUTE_MS, MAX_WINDOW_MS))?.unwrap_or(5 * MINUTE_MS);
    let min_count = number_in(obj, "min_count", (1.0, 1_000.0), Some(1.0))?;
    if min_count.fract() != 0.0 {
        return err(
            "/condition/min_count",
            "must be a whole number from 1 to 1000",
        );
    }
    let group_by = one_dimension(obj, "group_by")?;
    Ok(Condition::Event {
        event_kind,
        min_severity,
        window_ms,
        min_count: min_count as u64,
        group_by,
    })
}

fn label_name(k: &str) -> bool {
    (1..=64).contains(&k.len())
        && k.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-' | '.'))
}

/// Checks a rule as the API receives it. Whether its targets and detector are installed is the
/// caller's to check (it knows the tenant's plugins).
pub fn parse(v: &Value) -> Checked<Rule> {
    let obj = object(v, "")?;
    only(obj, "", &RULE_KEYS)?;
    let name = match text(obj, "name", "")? {
        Some(n) if !n.trim().is_empty() && n.chars().count() <= MAX_NAME => n.trim().to_string(),
        Some(_) => return err("/name", format!("must be 1 to {MAX_NAME} characters")),
        None => return err("/name", "is required"),
    };
    let severity = severity_field(obj, "severity", "", false)?.unwrap_or(Severity::Warning);
    let Some(c) = obj.get("condition") else {
        return err("/condition", "is required");
    };
    let cond = object(c, "/condition")?;
    let condition = match text(cond, "kind", "/condition")? {
        Some("threshold") => threshold(cond)?,
        Some("anomaly") => anomaly(cond)?,
        Some("budget") => budget(cond)?,
        Some("event") => event(cond)?,
        Some(k) => {
            return err(
                "/condition/kind",
                format!("unknown kind `{k}`; allowed: threshold, anomaly, budget, event"),
            );
        }
        None => {
            return err(
                "/condition/kind",
                "is required (threshold, anomaly, budget or event)",
            );
        }
    };
    let mut labels = BTreeMap::new();
    if let Some(l) = obj.get("labels").filter(|v| !v.is_null()) {
        let map = object(l, "/labels")?;
        if map.len() > MAX_LABELS {
            return err(
                "/labels",
                format!("has {} labels; at most {MAX_LABELS}", map.len()),
            );
        }
        for (k, v) in map {
            let at = format!("/labels/{k}");
            if !label_name(k) {
                return err(&at, "a label name is 1 to 64 of a-z, 0-9, `_`, `-` and `.`");
            }
            match v {
                Value::String(s) if s.len() <= 256 => labels.insert(k.clone(), s.clone()),
                Value::String(_) => return err(&at, "must be at most 256 characters"),
                other => return err(&at, format!("must be a string, got {}", kind_of(other))),
            };
        }
    }
    let mut targets: Vec<String> = Vec::new();
    if let Some(t) = obj.get("targets").filter(|v| !v.is_null()) {
        let Value::Array(items) = t else {
            return err(
                "/targets",
                format!("must be an array of plugin names, got {}", kind_of(t)),
            );
        };
        if items.len() > MAX_TARGETS {
            return err(
                "/targets",
                format!("names {} targets; at most {MAX_TARGETS}", items.len()),
            );
        }
        for (i, item) in items.iter().enumerate() {
            let at = format!("/targets/{i}");
            match item {
                Value::String(s) if !s.is_empty() && s.len() <= 64 && !targets.contains(s) => {
                    targets.push(s.clone())
                }
                Value::String(s) if targets.contains(s) => {
                    return err(&at, format!("`{s}` is named twice"));
                }
                Value::String(_) => return err(&at, "must be a plugin name (1 to 64 characters)"),
                other => return err(&at, format!("must be a string, got {}", kind_of(other))),
            }
        }
    }
    let renotify_ms = match text(obj, "renotify", "")? {
        Some("never") => 0,
        _ => duration(obj, "renotify", "", (MINUTE_MS, 7 * DAY_MS))?.unwrap_or(DEFAULT_RENOTIFY_MS),
    };
    let description = match text(obj, "description", "")? {
        Some(d) if d.chars().count() > MAX_DESCRIPTION => {
            return err(
                "/description",
                format!("must be at most {MAX_DESCRIPTION} characters"),
            );
        }
        d => d.map(String::from),
    };
    Ok(Rule {
        name,
        severity,
        condition,
        labels,
        targets,
        renotify_ms,
        description,
    })
}
