//! Alert rules through the router: a rule written, read, changed and deleted; every mistake a
//! 400 naming its JSON pointer; names unique per tenant; another tenant's rule a 404; each
//! change in the audit log.

use axum::http::{Method, StatusCode};
use hub_core::Role;
use serde_json::json;

use crate::common::people::{hub, message};

#[tokio::test]
async fn alert_rules_are_checked_kept_per_tenant_and_audited() {
    let hub = hub().await;
    hub.user("ann@acme.test", "acme", Role::Analyst, false)
        .await;
    hub.user("boss@acme.test", "acme", Role::Admin, false).await;
    hub.user("eve@other.test", "other", Role::Owner, false)
        .await;
    let (ann, boss, eve) = (
        hub.token("ann@acme.test").await,
        hub.token("boss@acme.test").await,
        hub.token("eve@other.test").await,
    );
    let rule = json!({"name": "Error rate per model", "severity": "critical",
        "condition": {"kind": "threshold", "metric": "error_rate", "op": ">", "value": 0.05,
                      "window": "5m", "for": "2m", "group_by": ["model"], "min_requests": 20},
        "labels": {"team": "search"}});
    let r = hub
        .call(Method::POST, "/v1/alerts/rules", &ann, Some(rule.clone()))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let id = r.body["id"].as_i64().unwrap();
    assert_eq!(r.body["enabled"], true);
    assert_eq!(r.body["updated_by"], "user:ann@acme.test");
    assert_eq!(r.body["rule"]["condition"]["metric"], "error_rate");

    // Each mistake names where it is.
    let bad = [
        (json!({"name": "x"}), "/condition"),
        (
            json!({"name": "x", "condition": {"kind": "threshold", "metric": "tokens", "value": 1}}),
            "/condition/metric",
        ),
        (
            json!({"name": "x", "condition": {"kind": "threshold", "metric": "requests", "value": 1, "group_by": ["region"]}}),
            "/condition/group_by/0",
        ),
        (
            json!({"name": "x", "enabled": "yes", "condition": {"kind": "anomaly"}}),
            "/enabled",
        ),
        // What a rule names must be installed for the tenant.
        (
            json!({"name": "x", "condition": {"kind": "anomaly", "detector": "robust-level"}}),
            "/condition/detector",
        ),
        (
            json!({"name": "x", "targets": ["webhook"], "condition": {"kind": "anomaly"}}),
            "/targets/0",
        ),
        (rule.clone(), "/name"),
    ];
    for (body, path) in bad {
        let r = hub
            .call(Method::POST, "/v1/alerts/rules", &ann, Some(body.clone()))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.body);
        assert_eq!(r.body["error"]["parameter"], path, "{body}: {}", r.body);
    }
    let r = hub.call(Method::POST, "/v1/alerts/rules", &ann, None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);

    // Another tenant neither sees nor touches it; the name is theirs to use too.
    let uri = format!("/v1/alerts/rules/{id}");
    for (method, body) in [
        (Method::GET, None),
        (Method::PUT, Some(rule.clone())),
        (Method::DELETE, None),
    ] {
        let r = hub.call(method.clone(), &uri, &eve, body).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{method}: {}", r.body);
    }
    let r = hub.call(Method::GET, "/v1/alerts/rules", &eve, None).await;
    assert_eq!(r.body["rules"], json!([]));
    let r = hub
        .call(Method::POST, "/v1/alerts/rules", &eve, Some(rule.clone()))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);

    // Changed (and disabled) by another of acme's people; then deleted.
    let mut changed = rule.clone();
    changed["enabled"] = json!(false);
    changed["condition"]["value"] = json!(0.1);
    let r = hub.call(Method::PUT, &uri, &boss, Some(changed)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        (r.body["enabled"].as_bool(), r.body["updated_by"].as_str()),
        (Some(false), Some("user:boss@acme.test"))
    );
    assert_eq!(r.body["rule"]["condition"]["value"], 0.1);
    let r = hub.call(Method::GET, "/v1/alerts/rules", &ann, None).await;
    assert_eq!(r.body["rules"].as_array().unwrap().len(), 1);
    let r = hub
        .call(Method::GET, "/v1/alerts?state=open", &ann, None)
        .await;
    assert_eq!(r.body["alerts"], json!([]), "{}", r.body);
    let r = hub
        .call(Method::GET, "/v1/alerts?state=burning", &ann, None)
        .await;
    assert_eq!(r.body["error"]["parameter"], "state", "{}", r.body);
    assert!(message(&r).contains("open, pending, firing or resolved"));
    let r = hub
        .call(Method::GET, "/v1/alerts?limit=501", &ann, None)
        .await;
    assert_eq!(r.body["error"]["parameter"], "limit", "{}", r.body);
    // The delivery log: nothing sent yet; its filters checked like the list's.
    let r = hub
        .call(
            Method::GET,
            "/v1/alerts/deliveries?state=failed",
            &ann,
            None,
        )
        .await;
    assert_eq!(r.body["deliveries"], json!([]), "{}", r.body);
    for (query, parameter, says) in [
        (
            "state=lost",
            "state",
            "queued, delivered, failed or silenced",
        ),
        ("alert=abc", "alert", "is not an alert id"),
        ("limit=0", "limit", "1 to 500"),
    ] {
        let r = hub
            .call(
                Method::GET,
                &format!("/v1/alerts/deliveries?{query}"),
                &ann,
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(r.body["error"]["parameter"], parameter, "{}", r.body);
        assert!(message(&r).contains(says), "{}", r.body);
    }
    let r = hub.call(Method::DELETE, &uri, &ann, None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        hub.call(Method::GET, &uri, &ann, None).await.status,
        StatusCode::NOT_FOUND
    );

    let r = hub
        .call(
            Method::GET,
            "/v1/audit?action=alert_rule.change",
            &boss,
            None,
        )
        .await;
    let entries = r.body["records"]
        .as_array()
        .unwrap_or_else(|| panic!("{}", r.body));
    assert_eq!(entries.len(), 1, "{}", r.body);
    assert_eq!(entries[0]["actor"], "user:boss@acme.test");
    let r = hub.call(Method::GET, "/v1/audit", &boss, None).await;
    let actions: Vec<&str> = r.body["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .filter(|a| a.starts_with("alert_rule."))
        .collect();
    assert_eq!(
        actions,
        [
            "alert_rule.delete",
            "alert_rule.change",
            "alert_rule.create"
        ]
    );
}

#[tokio::test]
async fn a_tenant_keeps_at_most_a_thousand_rules_of_at_most_16_kib() {
    let hub = hub().await;
    hub.user("ann@acme.test", "acme", Role::Analyst, false)
        .await;
    let ann = hub.token("ann@acme.test").await;
    let rule = |name: &str| json!({"name": name, "condition": {"kind": "anomaly"}});
    let mut big = rule("big");
    big["description"] = json!("x".repeat(17 * 1024));
    let r = hub
        .call(Method::POST, "/v1/alerts/rules", &ann, Some(big))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(message(&r).contains("at most 16384"), "{}", r.body);
    let acme = hub
        .storage
        .tenants()
        .tenant_by_name("acme")
        .await
        .unwrap()
        .unwrap()
        .id;
    for i in 0..1_000 {
        hub.storage
            .alerts()
            .create_rule(
                acme,
                &format!("r{i}"),
                &rule("r").to_string(),
                true,
                "test",
                0,
            )
            .await
            .unwrap();
    }
    let r = hub
        .call(
            Method::POST,
            "/v1/alerts/rules",
            &ann,
            Some(rule("one more")),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(message(&r).contains("1000 alert rules"), "{}", r.body);
}

#[tokio::test]
async fn silences_are_checked_kept_per_tenant_expired_and_audited() {
    let hub = hub().await;
    hub.user("ann@acme.test", "acme", Role::Analyst, false)
        .await;
    hub.user("vic@acme.test", "acme", Role::Viewer, false).await;
    hub.user("boss@acme.test", "acme", Role::Admin, false).await;
    hub.user("eve@other.test", "other", Role::Owner, false)
        .await;
    let (ann, vic, eve) = (
        hub.token("ann@acme.test").await,
        hub.token("vic@acme.test").await,
        hub.token("eve@other.test").await,
    );
    let good = json!({"matchers": [{"name": "model", "value": "gpt-4o"},
        {"name": "rule", "value": "noisy", "op": "!="}], "duration": "2h",
        "comment": "rolling out the new prompt"});
    // Every mistake names its field.
    let mut bad = Vec::new();
    for (change, pointer) in [
        (json!({"matchers": []}), "/matchers"),
        (
            json!({"matchers": [{"name": "model", "value": "x", "op": "=~"}]}),
            "/matchers/0/op",
        ),
        (json!({"comment": " "}), "/comment"),
        (json!({"duration": "91d"}), "/ends_at"),
        (json!({"duration": "2x"}), "/duration"),
        (
            json!({"ends_at": "2020-01-01T00:00:00Z", "duration": null}),
            "/ends_at",
        ),
        (json!({"why": 1}), "/why"),
    ] {
        let mut body = good.clone();
        for (k, v) in change.as_object().unwrap() {
            if v.is_null() {
                body.as_object_mut().unwrap().remove(k);
            } else {
                body[k] = v.clone();
            }
        }
        bad.push((body, pointer));
    }
    let mut both = good.clone();
    both["ends_at"] = json!("now+1h");
    bad.push((both, "/ends_at"));
    for (body, pointer) in bad {
        let r = hub
            .call(Method::POST, "/v1/silences", &ann, Some(body.clone()))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.body);
        assert_eq!(r.body["error"]["parameter"], pointer, "{body}: {}", r.body);
    }
    let r = hub
        .call(Method::POST, "/v1/silences", &vic, Some(good.clone()))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    let r = hub
        .call(Method::POST, "/v1/silences", &ann, Some(good.clone()))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let id = r.body["id"].as_i64().unwrap();
    assert_eq!(r.body["created_by"], "user:ann@acme.test");
    assert_eq!(r.body["matchers"][1]["op"], "!=");
    let r = hub.call(Method::GET, "/v1/silences", &vic, None).await;
    assert_eq!(
        r.body["silences"].as_array().unwrap().len(),
        1,
        "{}",
        r.body
    );
    // Another tenant neither sees nor ends it.
    let r = hub.call(Method::GET, "/v1/silences", &eve, None).await;
    assert_eq!(r.body["silences"], json!([]));
    let uri = format!("/v1/silences/{id}");
    let r = hub.call(Method::DELETE, &uri, &eve, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // Ended early: listed among the ended, and a second end is a 404.
    let r = hub.call(Method::DELETE, &uri, &ann, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = hub.call(Method::GET, "/v1/silences", &ann, None).await;
    assert_eq!(r.body["silences"], json!([]));
    let r = hub
        .call(Method::GET, "/v1/silences?ended=true", &ann, None)
        .await;
    assert_eq!(
        r.body["silences"][0]["comment"],
        "rolling out the new prompt"
    );
    let r = hub.call(Method::DELETE, &uri, &ann, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = hub
        .call(Method::GET, "/v1/silences?ended=maybe", &ann, None)
        .await;
    assert_eq!(r.body["error"]["parameter"], "ended");
    assert!(message(&r).contains("true or false"), "{}", r.body);

    let boss = hub.token("boss@acme.test").await;
    let r = hub.call(Method::GET, "/v1/audit", &boss, None).await;
    let actions: Vec<&str> = r.body["records"]
        .as_array()
        .unwrap_or_else(|| panic!("{}", r.body))
        .iter()
        .filter_map(|e| e["action"].as_str())
        .filter(|a| a.starts_with("silence."))
        .collect();
    assert_eq!(actions, ["silence.expire", "silence.create"]);
}

#[tokio::test]
async fn an_open_alert_is_acknowledged_by_an_analyst_once_it_is_the_tenants() {
    let hub = hub().await;
    hub.user("ann@acme.test", "acme", Role::Analyst, false)
        .await;
    hub.user("vic@acme.test", "acme", Role::Viewer, false).await;
    hub.user("eve@other.test", "other", Role::Owner, false)
        .await;
    let (ann, vic, eve) = (
        hub.token("ann@acme.test").await,
        hub.token("vic@acme.test").await,
        hub.token("eve@other.test").await,
    );
    let acme = hub
        .storage
        .tenants()
        .tenant_by_name("acme")
        .await
        .unwrap()
        .unwrap()
        .id;
    let alerts = hub.storage.alerts();
    let rule = alerts
        .create_rule(acme, "errors", "{}", true, "test", 0)
        .await
        .unwrap();
    let firing = hub_storage::AlertRecord {
        id: 0,
        rule_id: rule.id,
        group: vec![("model".into(), "gpt-4o".into())],
        state: "firing".into(),
        severity: hub_core::Severity::Critical,
        value: 0.5,
        summary: "error_rate of model=gpt-4o is 0.5".into(),
        since_ms: 1_000,
        fired_at_ms: Some(1_000),
        resolved_at_ms: None,
        notified_at_ms: Some(1_000),
        acknowledged: None,
    };
    alerts
        .save_alerts(acme, rule.id, &[firing], &[], &[], 1_000)
        .await
        .unwrap();
    let id = alerts.open_alerts(acme, rule.id).await.unwrap()[0].id;
    let uri = format!("/v1/alerts/{id}/acknowledge");
    let body = json!({"comment": "rolling back the prompt"});
    assert_eq!(
        hub.call(Method::POST, &uri, &vic, Some(body.clone()))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        hub.call(Method::POST, &uri, &eve, Some(body.clone()))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let r = hub
        .call(Method::POST, &uri, &ann, Some(json!({"comment": 7})))
        .await;
    assert_eq!(r.body["error"]["parameter"], "/comment", "{}", r.body);
    let r = hub.call(Method::POST, &uri, &ann, Some(body)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["acknowledged"]["by"], "user:ann@acme.test");
    assert_eq!(r.body["acknowledged"]["comment"], "rolling back the prompt");
    let r = hub
        .call(Method::GET, "/v1/alerts?state=firing", &vic, None)
        .await;
    assert_eq!(
        r.body["alerts"][0]["acknowledged"]["by"],
        "user:ann@acme.test"
    );
    // Without a body: acknowledged again, without a comment.
    let r = hub.call(Method::POST, &uri, &ann, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["acknowledged"]["comment"], "");
    let r = hub
        .call(Method::POST, "/v1/alerts/abc/acknowledge", &ann, None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn composites_budgets_of_integrations_and_previews_are_checked() {
    let hub = hub().await;
    hub.user("ann@acme.test", "acme", Role::Analyst, false)
        .await;
    let ann = hub.token("ann@acme.test").await;
    let rule = json!({"name": "Error rate per model", "condition": {"kind": "threshold",
        "metric": "error_rate", "value": 0.05, "group_by": ["model"]}});
    let r = hub
        .call(Method::POST, "/v1/alerts/rules", &ann, Some(rule))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    // Composites name rules of the tenant that are not composites themselves.
    let composite = |rules: serde_json::Value| json!({"name": "both", "condition": {"kind": "composite", "rules": rules}});
    let r = hub
        .call(
            Method::POST,
            "/v1/alerts/rules",
            &ann,
            Some(composite(json!(["Error rate per model", "nope"]))),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert_eq!(
        r.body["error"]["parameter"], "/condition/rules/1",
        "{}",
        r.body
    );
    let r = hub
        .call(
            Method::POST,
            "/v1/alerts/rules",
            &ann,
            Some(json!({"name": "spend",
            "condition": {"kind": "budget", "budget_usd": 100}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let spend_id = r.body["id"].as_i64().unwrap();
    let r = hub
        .call(
            Method::POST,
            "/v1/alerts/rules",
            &ann,
            Some(composite(json!(["Error rate per model", "spend"]))),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    // A rule the composite names cannot become one.
    let r = hub
        .call(Method::PUT, &format!("/v1/alerts/rules/{spend_id}"), &ann,
            Some(json!({"name": "spend", "condition": {"kind": "composite", "rules": ["Error rate per model", "x"]}})))
        .await;
    assert_eq!(
        r.body["error"]["parameter"], "/condition/kind",
        "{}",
        r.body
    );
    // A budget from an integration the tenant has not installed.
    let r = hub
        .call(Method::POST, "/v1/alerts/rules", &ann, Some(json!({"name": "kept",
            "condition": {"kind": "budget", "budget_from": {"integration": "costops", "budget_id": "m"}}})))
        .await;
    assert_eq!(
        r.body["error"]["parameter"], "/condition/budget_from/integration",
        "{}",
        r.body
    );
    // A preview: checked as a create is, nothing saved.
    let r = hub
        .call(Method::POST, "/v1/alerts/rules/preview", &ann, Some(json!({"name": "p",
            "condition": {"kind": "threshold", "metric": "requests", "value": 1, "group_by": ["model"]}})))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        (r.body["supported"].as_bool(), r.body["fired"].as_u64()),
        (Some(true), Some(0)),
        "{}",
        r.body
    );
    assert_eq!(
        r.body["note"],
        "it would not have fired over the last 7 days"
    );
    let r = hub
        .call(
            Method::POST,
            "/v1/alerts/rules/preview",
            &ann,
            Some(json!({"name": "p",
            "condition": {"kind": "budget", "budget_usd": 1}})),
        )
        .await;
    assert_eq!(r.body["supported"], false, "{}", r.body);
    let r = hub
        .call(
            Method::POST,
            "/v1/alerts/rules/preview",
            &ann,
            Some(json!({"name": "p",
            "condition": {"kind": "threshold", "metric": "tokens", "value": 1}})),
        )
        .await;
    assert_eq!(
        r.body["error"]["parameter"], "/condition/metric",
        "{}",
        r.body
    );
}
