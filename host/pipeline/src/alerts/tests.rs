//! Rules as tenants write them: what a good one becomes, and what each mistake is told.

use serde_json::json;

use super::rule::{DEFAULT_RENOTIFY_MS, parse};
use super::text;
use super::*;
use hub_core::Severity;

const M: i64 = 60_000;

#[test]
fn a_threshold_rule_reads_with_its_defaults() {
    let rule = parse(&json!({
        "name": "  Error rate per model ", "severity": "critical",
        "condition": {"kind": "threshold", "metric": "error_rate", "op": ">=", "value": 0.05,
                      "window": "10m", "for": "2m", "group_by": ["model", "app"],
                      "filters": {"environment": "prod"}, "min_requests": 20},
        "labels": {"team": "search"}, "targets": ["webhook"], "renotify": "1h",
        "description": "{{metric}} of {{group}} is {{value}}"
    }))
    .unwrap();
    assert_eq!(rule.name, "Error rate per model");
    assert_eq!(rule.severity, Severity::Critical);
    assert_eq!(
        rule.condition,
        Condition::Threshold {
            metric: "error_rate".into(),
            op: Op::AtLeast,
            value: 0.05,
            window_ms: 10 * M,
            for_ms: 2 * M,
            group_by: vec!["model".into(), "app".into()],
            filters: vec![("environment".into(), "prod".into())],
            min_requests: 20,
        }
    );
    assert_eq!(rule.labels["team"], "search");
    assert_eq!(rule.targets, ["webhook"]);
    assert_eq!(rule.renotify_ms, 60 * M);

    let plain = parse(&json!({"name": "cost", "condition":
        {"kind": "threshold", "metric": "cost_usd", "value": 100}}))
    .unwrap();
    assert_eq!(plain.severity, Severity::Warning);
    assert_eq!(plain.renotify_ms, DEFAULT_RENOTIFY_MS);
    let Condition::Threshold {
        op,
        window_ms,
        for_ms,
        ..
    } = plain.condition
    else {
        panic!("a threshold")
    };
    assert_eq!((op, window_ms, for_ms), (Op::Above, 5 * M, 0));
    let never = parse(&json!({"name": "n", "renotify": "never", "condition":
        {"kind": "threshold", "metric": "requests", "op": "<", "value": 1}}))
    .unwrap();
    assert_eq!(never.renotify_ms, 0);
}

#[test]
fn an_anomaly_rule_reads_with_its_defaults() {
    let rule = parse(&json!({"name": "spikes", "condition": {"kind": "anomaly",
        "detector": "robust-level", "filters": {"model": "gpt-4o"}}}))
    .unwrap();
    assert_eq!(
        rule.condition,
        Condition::Anomaly {
            detector: Some("robust-level".into()),
            min_severity: Severity::Warning,
            filters: vec![("model".into(), "gpt-4o".into())],
        }
    );
    let any = parse(
        &json!({"name": "all", "condition": {"kind": "anomaly", "min_severity": "critical"}}),
    )
    .unwrap();
    assert!(matches!(
        any.condition,
        Condition::Anomaly {
            detector: None,
            min_severity: Severity::Critical,
            ..
        }
    ));
}

#[test]
fn every_mistake_names_its_field() {
    let threshold = |extra: serde_json::Value| {
        let mut c = json!({"kind": "threshold", "metric": "requests", "value": 1});
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        json!({"name": "r", "condition": c})
    };
    let cases = [
        (json!([]), "", "must be an object, got an array"),
        (json!({"condition": {}}), "/name", "is required"),
        (
            json!({"name": " ", "condition": {}}),
            "/name",
            "must be 1 to 120 characters",
        ),
        (json!({"name": "r"}), "/condition", "is required"),
        (
            json!({"name": "r", "condition": {"kind": "both"}}),
            "/condition/kind",
            "unknown kind `both`",
        ),
        (
            json!({"name": "r", "colour": "red", "condition": {}}),
            "/colour",
            "is not a field here",
        ),
        (
            json!({"name": "r", "severity": "high", "condition": {}}),
            "/severity",
            "unknown severity `high`",
        ),
        (
            threshold(json!({"metric": "tokens"})),
            "/condition/metric",
            "unknown metric `tokens`; allowed: requests,",
        ),
        (
            threshold(json!({"op": "=="})),
            "/condition/op",
            "unknown operator `==`",
        ),
        (
            threshold(json!({"value": "5"})),
            "/condition/value",
            "must be a number, got a string",
        ),
        (
            threshold(json!({"window": "5x"})),
            "/condition/window",
            "unknown unit",
        ),
        (
            threshold(json!({"window": "30s"})),
            "/condition/window",
            "30s is outside 1m to 7d",
        ),
        (
            threshold(json!({"window": "90s"})),
            "/condition/window",
            "must be whole minutes",
        ),
        (
            threshold(json!({"for": "2d"})),
            "/condition/for",
            "outside 0s to 1d",
        ),
        (
            threshold(json!({"group_by": ["model", "region"]})),
            "/condition/group_by/1",
            "unknown dimension `region`",
        ),
        (
            threshold(json!({"group_by": ["model", "model"]})),
            "/condition/group_by/1",
            "`model` is named twice",
        ),
        (
            threshold(json!({"group_by": "model"})),
            "/condition/group_by",
            "must be an array",
        ),
        (
            threshold(json!({"filters": {"modle": "x"}})),
            "/condition/filters/modle",
            "unknown dimension `modle`",
        ),
        (
            threshold(json!({"filters": {"model": 4}})),
            "/condition/filters/model",
            "must be a string, got a number",
        ),
        (
            threshold(json!({"min_requests": -1})),
            "/condition/min_requests",
            "whole number",
        ),
        (
            threshold(json!({"detector": "x"})),
            "/condition/detector",
            "is not a field here",
        ),
        (
            json!({"name": "r", "condition": {"kind": "anomaly", "min_severity": "bad"}}),
            "/condition/min_severity",
            "unknown severity `bad`",
        ),
        (
            json!({"name": "r", "condition": {"kind": "anomaly", "metric": "requests"}}),
            "/condition/metric",
            "is not a field here",
        ),
    ];
    let budget = |extra: serde_json::Value| {
        let mut c = json!({"kind": "budget", "budget_usd": 1000});
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        json!({"name": "r", "condition": c})
    };
    let event = |extra: serde_json::Value| {
        let mut c = json!({"kind": "event", "event_kind": "security.threat"});
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        json!({"name": "r", "condition": c})
    };
    let cases = cases.into_iter().chain([
        (
            json!({"name": "r", "condition": {"kind": "event"}}),
            "/condition/event_kind",
            "is required",
        ),
        (
            event(json!({"event_kind": "security threat"})),
            "/condition/event_kind",
            "an event kind is",
        ),
        (
            event(json!({"min_severity": "high"})),
            "/condition/min_severity",
            "unknown severity `high`",
        ),
        (
            event(json!({"min_count": 0})),
            "/condition/min_count",
            "from 1 to 1000",
        ),
        (
            event(json!({"min_count": 1.5})),
            "/condition/min_count",
            "whole number",
        ),
        (
            event(json!({"group_by": ["model"]})),
            "/condition/group_by",
            "must be a string",
        ),
        (
            event(json!({"metric": "requests"})),
            "/condition/metric",
            "is not a field here",
        ),
    ]);
    let cases = cases.into_iter().chain([
        (
            json!({"name": "r", "condition": {"kind": "budget"}}),
            "/condition/budget_usd",
            "is required",
        ),
        (
            budget(json!({"budget_usd": 0})),
            "/condition/budget_usd",
            "must be a number from 0.01",
        ),
        (
            budget(json!({"budget_from": {"integration": "costops", "budget_id": "m"}})),
            "/condition/budget_usd",
            "not both",
        ),
        (
            json!({"name": "r", "condition": {"kind": "budget", "budget_from": {"integration": "costops"}}}),
            "/condition/budget_from/budget_id",
            "is required",
        ),
        (
            json!({"name": "r", "condition": {"kind": "budget", "budget_from": {"integration": "costops", "budget_id": "m", "x": 1}}}),
            "/condition/budget_from/x",
            "is not a field here",
        ),
        (
            budget(json!({"percent": "80"})),
            "/condition/percent",
            "must be a number, got a string",
        ),
        (
            budget(json!({"percent": 0})),
            "/condition/percent",
            "from 1 to 1000",
        ),
        (
            budget(json!({"basis": "monthly"})),
            "/condition/basis",
            "unknown basis `monthly`",
        ),
        (
            budget(json!({"group_by": "region"})),
            "/condition/group_by",
            "unknown dimension `region`",
        ),
        (
            budget(json!({"window": "5m"})),
            "/condition/window",
            "is not a field here",
        ),
    ]);
    for (rule, path, message) in cases {
        let e = parse(&rule).expect_err(&rule.to_string());
        assert_eq!(e.path, path, "{rule}: {e}");
        assert!(e.message.contains(message), "{rule}: {e}");
    }
    let base = |extra: serde_json::Value| {
        let mut r = json!({"name": "r", "condition": {"kind": "anomaly"}});
        for (k, v) in extra.as_object().unwrap() {
            r[k] = v.clone();
        }
        parse(&r).unwrap_err()
    };
    assert_eq!(base(json!({"labels": {"Team": "x"}})).path, "/labels/Team");
    assert_eq!(base(json!({"labels": {"team": 1}})).path, "/labels/team");
    assert_eq!(base(json!({"targets": ["a", "a"]})).path, "/targets/1");
    assert_eq!(base(json!({"targets": "a"})).path, "/targets");
    assert_eq!(base(json!({"renotify": "10s"})).path, "/renotify");
    assert_eq!(
        base(json!({"description": "x".repeat(1_001)})).path,
        "/description"
    );
    // The metric's value must be finite; JSON has no NaN, but a huge exponent parses as ∞.
    let inf: serde_json::Value = serde_json::from_str(
        r#"{"name": "r", "condition": {"kind": "threshold", "metric": "requests", "value": 1e400}}"#,
    )
    .unwrap_or(json!({"name": "r", "condition": {"kind": "threshold", "metric": "requests", "value": null}}));
    assert_eq!(parse(&inf).unwrap_err().path, "/condition/value");
}

#[test]
fn a_summary_says_what_holds_where() {
    let rule = parse(&json!({"name": "errors", "condition": {"kind": "threshold",
        "metric": "error_rate", "value": 0.05, "group_by": ["model"]}}))
    .unwrap();
    let group = vec![("model".to_string(), "gpt-4o".to_string())];
    assert_eq!(
        text::summary(&rule, &group, 0.083333),
        "error_rate of model=gpt-4o is 0.08333 (> 0.05 over 5m)"
    );
    assert_eq!(
        text::summary(&rule, &[], 2.0),
        "error_rate of all traffic is 2 (> 0.05 over 5m)"
    );
    let described = parse(&json!({"name": "spend", "description":
        "{{rule}}: {{metric}} for {{group}} reached {{value}} ({{threshold}})",
        "condition": {"kind": "threshold", "metric": "cost_usd", "op": ">=", "value": 100, "window": "1h"}}))
    .unwrap();
    assert_eq!(
        text::summary(&described, &[], 1234.5678),
        "spend: cost_usd for all traffic reached 1234.6 (>= 100 over 1h)"
    );
    let anomaly = parse(&json!({"name": "a", "condition": {"kind": "anomaly"}})).unwrap();
    let key = vec![
        ("metric".to_string(), "requests".to_string()),
        ("model".to_string(), "gpt-4o".to_string()),
    ];
    assert_eq!(
        text::summary(&anomaly, &key, 240.0),
        "unusual requests of model=gpt-4o: 240"
    );
}

#[test]
fn a_budget_rule_reads_with_its_defaults_and_says_its_share() {
    let rule =
        parse(&json!({"name": "spend", "condition": {"kind": "budget", "budget_usd": 1000}}))
            .unwrap();
    assert_eq!(
        rule.condition,
        Condition::Budget {
            budget_usd: 1000.0,
            percent: 100.0,
            projected: true,
            group_by: None,
            from: None,
        }
    );
    // The budget of another system: exactly one of the two.
    let kept = parse(
        &json!({"name": "care", "condition": {"kind": "budget", "percent": 90,
        "budget_from": {"integration": "costops", "budget_id": "monthly-care"}}}),
    )
    .unwrap();
    assert_eq!(
        text::summary(&kept, &[], 9_100.0),
        "projected month-end spend of all traffic is $9100.00 (at least 90% of the budget `monthly-care` in costops)"
    );
    let spent = parse(&json!({"name": "spend", "condition": {"kind": "budget",
        "budget_usd": 500, "percent": 80, "basis": "spent", "group_by": "app"}}))
    .unwrap();
    let app = vec![("app".to_string(), "search".to_string())];
    assert_eq!(
        text::summary(&spent, &app, 412.5),
        "spend so far this month of app=search is $412.50 (at least 80% of the $500 budget)"
    );
    assert_eq!(
        text::summary(&rule, &[], 1234.0),
        "projected month-end spend of all traffic is $1234.00 (at least 100% of the $1000 budget)"
    );
}

#[test]
fn an_event_rule_reads_with_its_defaults() {
    let rule = parse(&json!({"name": "threats", "condition": {"kind": "event",
        "event_kind": "governance.policy_violation"}}))
    .unwrap();
    assert_eq!(
        rule.condition,
        Condition::Event {
            event_kind: "governance.policy_violation".into(),
            min_severity: None,
            window_ms: 5 * M,
            min_count: 1,
            group_by: None,
        }
    );
    assert_eq!(
        text::summary(&rule, &[], 3.0),
        "3 governance.policy_violation events from all traffic in the last 5m"
    );
}

fn g(model: &str) -> Vec<(String, String)> {
    vec![("model".into(), model.into())]
}

#[test]
fn a_threshold_holds_per_group_above_its_volume_floor() {
    let rule = parse(&json!({
        "name": "errors", "condition": {"kind": "threshold", "metric": "error_rate",
        "op": ">", "value": 0.05, "group_by": ["model"], "min_requests": 10}
    }))
    .unwrap();
    let agg = |requests: i64, errors: i64| hub_storage::Aggregate {
        requests,
        errors,
        ..Default::default()
    };
    let groups = [
        (g("busy-bad"), agg(100, 8)),
        (g("busy-good"), agg(100, 5)),
        (g("quiet-bad"), agg(2, 1)),
        (g("idle"), agg(0, 0)),
    ];
    assert_eq!(
        super::evaluate::holding(&rule, &groups),
        [(g("busy-bad"), 0.08)]
    );
}

#[test]
fn a_composite_names_other_rules_that_exist_and_do_not_nest() {
    let c = |rules: serde_json::Value| {
        parse(&json!({"name": "both", "condition": {"kind": "composite", "rules": rules}}))
    };
    let both = c(json!(["a", "b"])).unwrap();
    assert_eq!(
        both.condition,
        Condition::Composite {
            all: true,
            rules: vec!["a".into(), "b".into()]
        }
    );
    for (rules, path, needle) in [
        (json!(["a"]), "/condition/rules", "names 1 rules; 2 to 10"),
        (json!(["a", "a"]), "/condition/rules/1", "named twice"),
        (json!(["a", "both"]), "/condition/rules/1", "part of itself"),
        (
            json!(["a", 3]),
            "/condition/rules/1",
            "must be a rule's name",
        ),
    ] {
        let e = c(rules).unwrap_err();
        assert_eq!(e.path, path, "{e}");
        assert!(e.message.contains(needle), "{e}");
    }
    let e = parse(
        &json!({"name": "x", "condition": {"kind": "composite", "op": "xor", "rules": ["a", "b"]}}),
    )
    .unwrap_err();
    assert_eq!(e.path, "/condition/op");
    let threshold = parse(
        &json!({"name": "a", "condition": {"kind": "threshold", "metric": "requests", "value": 1}}),
    )
    .unwrap();
    let others = vec![
        ("a".to_string(), Some(threshold)),
        ("c".to_string(), Some(both.clone())),
    ];
    let e = super::rule::check_composition("both", &both.condition, &others).unwrap_err();
    assert_eq!(
        (e.path.as_str(), e.message.as_str()),
        ("/condition/rules/1", "the tenant has no rule named `b`")
    );
    let nest = c(json!(["a", "c"])).unwrap();
    let e = super::rule::check_composition("both", &nest.condition, &others).unwrap_err();
    assert!(e.message.contains("composites do not nest"), "{e}");
    // `a` is named by the composite `c`: it cannot become one.
    let a = parse(&json!({"name": "a", "condition": {"kind": "composite", "rules": ["x", "y"]}}))
        .unwrap();
    let others = vec![
        ("x".to_string(), None),
        ("y".to_string(), None),
        ("c".to_string(), Some(c(json!(["a", "x"])).unwrap())),
    ];
    let e = super::rule::check_composition("a", &a.condition, &others).unwrap_err();
    assert_eq!(e.path, "/condition/kind");
}
