//! What a person reads about an alert: a rule's description filled in, or a sentence of its own.

use super::rule::{Condition, Rule};

/// What a person reads about one group of a rule: the rule's description with `{{rule}}`,
/// `{{metric}}`, `{{group}}`, `{{value}}` and `{{threshold}}` filled in, or a sentence of its
/// own ("error_rate of model=gpt-4o is 0.083 (> 0.05 over 5m)").
pub fn summary(rule: &Rule, group: &[(String, String)], value: f64) -> String {
    let named: Vec<String> = group
        .iter()
        .filter(|(k, _)| {
            k.as_str() != "metric" || matches!(rule.condition, Condition::Threshold { .. })
        })
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let group_text = if named.is_empty() {
        "all traffic".to_string()
    } else {
        named.join(", ")
    };
    let (metric, threshold) = match &rule.condition {
        Condition::Threshold {
            metric,
            op,
            value: t,
            window_ms,
            ..
        } => (
            metric.clone(),
            format!(
                "{} {} over {}",
                op.name(),
                number(*t),
                hub_core::time::format_duration_ms(*window_ms)
            ),
        ),
        Condition::Anomaly { .. } => (
            group
                .iter()
                .find(|(k, _)| k.as_str() == "metric")
                .map(|(_, v)| v.clone())
                .unwrap_or_default(),
            String::new(),
        ),
        Condition::Event {
            event_kind,
            window_ms,
            ..
        } => (
            event_kind.clone(),
            format!(
                "in the last {}",
                hub_core::time::format_duration_ms(*window_ms)
            ),
        ),
        Condition::Composite { all, rules } => (
            "rules firing".to_string(),
            format!(
                "{} of {}",
                if *all { "all" } else { "any" },
                rules.join(", ")
            ),
        ),
        Condition::Budget {
            budget_usd,
            percent,
            from,
            ..
        } => (
            "cost_usd".to_string(),
            match from {
                Some(f) => format!(
                    "{}% of the budget `{}` in {}",
                    number(*percent),
                    f.budget_id,
                    f.integration
                ),
                None => format!(
                    "{}% of the ${} budget",
                    number(*percent),
                    number(*budget_usd)
                ),
            },
        ),
    };
    match (&rule.description, &rule.condition) {
        (Some(d), _) => d
            .replace("{{rule}}", &rule.name)
            .replace("{{metric}}", &metric)
            .replace("{{group}}", &group_text)
            .replace("{{value}}", &number(value))
            .replace("{{threshold}}", &threshold),
        (None, Condition::Threshold { .. }) => {
            format!(
                "{metric} of {group_text} is {} ({threshold})",
                number(value)
            )
        }
        (None, Condition::Anomaly { .. }) => {
            format!("unusual {metric} of {group_text}: {}", number(value))
        }
        (None, Condition::Event { min_severity, .. }) => {
            let at = min_severity.map_or(String::new(), |s| format!(" at {} or worse", s.as_str()));
            format!(
                "{} {metric} events{at} from {group_text} {threshold}",
                number(value)
            )
        }
        (None, Condition::Composite { rules, .. }) => {
            format!(
                "{} of {} rules fire ({threshold})",
                number(value),
                rules.len()
            )
        }
        (None, Condition::Budget { projected, .. }) => {
            let what = if *projected {
                "projected month-end spend"
            } else {
                "spend so far this month"
            };
            format!(
                "{what} of {group_text} is ${:.2} (at least {threshold})",
                value
            )
        }
    }
}

/// A value as a person reads it: whole numbers whole, others to four significant places.
fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else if v.abs() >= 1_000.0 {
        format!("{v:.1}")
    } else {
        let digits = (3 - v.abs().log10().floor() as i32).clamp(0, 12) as usize;
        let s = format!("{v:.digits$}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}
