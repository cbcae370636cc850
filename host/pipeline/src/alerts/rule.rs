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
use serde_json::Value;

use super::conditions::condition;
pub use super::conditions::{BudgetFrom, Condition, MAX_FOR_MS, MAX_GROUP_BY, MAX_WINDOW_MS, Op};
use super::fields::{Checked, duration, err, kind_of, object, only, severity_field, text};
pub use super::fields::{RuleError, SEVERITIES};

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
    let condition = condition(cond)?;
    if let Condition::Composite { rules, .. } = &condition
        && let Some(i) = rules.iter().position(|r| *r == name)
    {
        return err(
            &format!("/condition/rules/{i}"),
            "a rule cannot be part of itself",
        );
    }
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

/// Checks what a composite rule named `name` and the tenant's other rules say of each other:
/// a composite names only rules that exist and are not composites, and a rule a composite names
/// cannot become one (so composites never nest or loop). `others` are the tenant's other rules
/// (by name; a rule whose JSON no longer reads as `None`).
pub fn check_composition(
    name: &str,
    condition: &Condition,
    others: &[(String, Option<Rule>)],
) -> Checked<()> {
    let Condition::Composite { rules, .. } = condition else {
        return Ok(());
    };
    if let Some((other, _)) = others.iter().find(|(_, r)| {
        r.as_ref().is_some_and(|r| {
            matches!(&r.condition, Condition::Composite { rules, .. } if rules.iter().any(|n| n == name))
        })
    }) {
        return err(
            "/condition/kind",
            format!("the composite `{other}` names this rule: a rule a composite names cannot be one"),
        );
    }
    for (i, wanted) in rules.iter().enumerate() {
        let at = format!("/condition/rules/{i}");
        match others.iter().find(|(n, _)| n == wanted) {
            None => return err(&at, format!("the tenant has no rule named `{wanted}`")),
            Some((_, Some(r))) if matches!(r.condition, Condition::Composite { .. }) => {
                return err(
                    &at,
                    format!("`{wanted}` is a composite: composites do not nest"),
                );
            }
            Some(_) => {}
        }
    }
    Ok(())
}
