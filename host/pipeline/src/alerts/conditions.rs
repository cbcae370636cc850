//! What makes an alert rule fire, one kind each, and reading a rule's `condition` object: a
//! `threshold` on a metric, an `anomaly` a detector stored, a `budget` of the month's spend, an
//! `event` of an envelope kind, and a `composite` of other rules (AND/OR of their firing:
//! `{"kind": "composite", "op": "and", "rules": ["Error rate per model", "Cost spike"]}`). Every
//! error names its JSON pointer.

use hub_core::Severity;
use hub_core::time::{DAY_MS, MINUTE_MS};
use hub_plugins::SERIES_METRICS;
use serde_json::{Map, Value};

use super::fields::{
    Checked, dimension, duration, err, filters, kind_of, number_in, object, only, severity_field,
    text,
};

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
    /// Other rules of the tenant, by name: firing when all of them (`all`) or any of them has a
    /// firing alert after this minute's evaluation (a rule disabled or removed since counts as
    /// not firing). Its value is how many of them fire.
    Composite { all: bool, rules: Vec<String> },
}

/// How a composite joins the rules it names.
pub const MAX_COMPOSED: usize = 10;

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
            Condition::Composite { .. } => "composite",
        }
    }
}

pub const MAX_GROUP_BY: usize = 3;
/// The longest window a threshold looks back over, and the longest it must hold.
pub const MAX_WINDOW_MS: i64 = 7 * DAY_MS;
pub const MAX_FOR_MS: i64 = DAY_MS;
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

/// Reads a rule's `condition` object by its kind.
pub(super) fn condition(cond: &Map<String, Value>) -> Checked<Condition> {
    Ok(match text(cond, "kind", "/condition")? {
        Some("threshold") => threshold(cond)?,
        Some("anomaly") => anomaly(cond)?,
        Some("budget") => budget(cond)?,
        Some("event") => event(cond)?,
        Some("composite") => composite(cond)?,
        Some(k) => {
            return err(
                "/condition/kind",
                format!(
                    "unknown kind `{k}`; allowed: threshold, anomaly, budget, event, composite"
                ),
            );
        }
        None => {
            return err(
                "/condition/kind",
                "is required (threshold, anomaly, budget, event or composite)",
            );
        }
    })
}

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

/// A single dimension's name (a budget's or an event rule's `group_by`).
fn one_dimension(obj: &Map<String, Value>, key: &str) -> Checked<Option<String>> {
    let Some(d) = text(obj, key, "/condition")? else {
        return Ok(None);
    };
    dimension(d).or_else(|m| err(&format!("/condition/{key}"), m))?;
    Ok(Some(d.to_string()))
}

fn composite(obj: &Map<String, Value>) -> Checked<Condition> {
    let base = "/condition";
    only(obj, base, &["kind", "op", "rules"])?;
    let all = match text(obj, "op", base)? {
        None | Some("and") => true,
        Some("or") => false,
        Some(o) => {
            return err(
                "/condition/op",
                format!("unknown `{o}`; allowed: and (all of the rules fire), or (any fires)"),
            );
        }
    };
    let Some(Value::Array(items)) = obj.get("rules") else {
        return err(
            "/condition/rules",
            "is required: the names of 2 to 10 other rules of this tenant",
        );
    };
    if !(2..=MAX_COMPOSED).contains(&items.len()) {
        return err(
            "/condition/rules",
            format!("names {} rules; 2 to {MAX_COMPOSED}", items.len()),
        );
    }
    let mut rules: Vec<String> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = format!("/condition/rules/{i}");
        match item {
            Value::String(n) if !n.trim().is_empty() => {
                if rules.iter().any(|r| r == n.trim()) {
                    return err(&at, format!("`{n}` is named twice"));
                }
                rules.push(n.trim().to_string());
            }
            other => {
                return err(
                    &at,
                    format!("must be a rule's name, got {}", kind_of(other)),
                );
            }
        }
    }
    Ok(Condition::Composite { all, rules })
}
