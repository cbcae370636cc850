//! Alert rules and the alerts they raise: names unique per tenant, an alert's life as one row,
//! its history paged, and nothing of one tenant's seen by another.

use hub_core::Severity;
use hub_storage::{AlertFilter, AlertRecord};

use super::*;

fn alert(model: &str, state: &str, since_ms: i64) -> AlertRecord {
    AlertRecord {
        id: 0,
        rule_id: 0,
        group: vec![("model".into(), model.into())],
        state: state.into(),
        severity: Severity::Critical,
        value: 0.2,
        summary: format!("error_rate of model={model} is 0.2"),
        since_ms,
        fired_at_ms: (state != "pending").then_some(since_ms),
        resolved_at_ms: (state == "resolved").then_some(since_ms + MINUTE_MS),
        notified_at_ms: None,
    }
}

pub async fn alert_rules_and_their_alerts_keep_their_history(s: Arc<dyn Storage>) {
    let (acme, other) = (tenant(&s, "acme").await, tenant(&s, "other").await);
    let a = s.alerts();
    let rule = a
        .create_rule(
            acme,
            "errors",
            r#"{"name":"errors"}"#,
            true,
            "ann@acme",
            NOW,
        )
        .await
        .unwrap();
    assert_eq!((rule.name.as_str(), rule.enabled), ("errors", true));
    assert!(matches!(
        a.create_rule(acme, "errors", "{}", true, "ann@acme", NOW)
            .await,
        Err(StorageError::Conflict(_))
    ));
    // Another tenant may use the name, and sees nothing of acme's.
    let theirs = a
        .create_rule(other, "errors", "{}", false, "bob@other", NOW)
        .await
        .unwrap();
    assert!(a.rule(other, rule.id).await.unwrap().is_none());
    assert!(!a.delete_rule(other, rule.id).await.unwrap());
    assert!(
        a.update_rule(other, rule.id, "x", "{}", true, "bob", NOW)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(a.tenants_with_rules().await.unwrap(), [acme]);

    // pending → firing is one row; resolved, then holding again, a second.
    let r = rule.id;
    a.save_alerts(acme, r, &[alert("gpt-4o", "pending", NOW)], &[])
        .await
        .unwrap();
    let open = a.open_alerts(acme, r).await.unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].rule_id, r);
    a.save_alerts(acme, r, &[alert("gpt-4o", "firing", NOW)], &[])
        .await
        .unwrap();
    let firing = a.open_alerts(acme, r).await.unwrap();
    assert_eq!(
        (firing[0].id, firing[0].state.as_str()),
        (open[0].id, "firing")
    );
    assert_eq!(firing[0].fired_at_ms, Some(NOW));
    a.save_alerts(acme, r, &[alert("gpt-4o", "resolved", NOW)], &[])
        .await
        .unwrap();
    assert!(a.open_alerts(acme, r).await.unwrap().is_empty());
    let later = NOW + 10 * MINUTE_MS;
    a.save_alerts(
        acme,
        r,
        &[
            alert("gpt-4o", "pending", later),
            alert("claude", "pending", later),
        ],
        &[],
    )
    .await
    .unwrap();
    // A pending alert that stopped holding is forgotten, not resolved.
    a.save_alerts(acme, r, &[], &[vec![("model".into(), "claude".into())]])
        .await
        .unwrap();
    let all = |state: Option<&str>| AlertFilter {
        state: state.map(String::from),
        ..Default::default()
    };
    let (page, next) = a.list_alerts(acme, &all(None), None, 1).await.unwrap();
    assert_eq!(
        (page[0].state.as_str(), page[0].since_ms),
        ("pending", later)
    );
    let (rest, end) = a.list_alerts(acme, &all(None), next, 10).await.unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].state, "resolved");
    assert_eq!(rest[0].group, [("model".to_string(), "gpt-4o".to_string())]);
    assert!(end.is_none());
    let (open, _) = a
        .list_alerts(acme, &all(Some("open")), None, 10)
        .await
        .unwrap();
    assert_eq!(open.len(), 1);
    assert!(
        a.list_alerts(other, &all(None), None, 10)
            .await
            .unwrap()
            .0
            .is_empty()
    );

    // A changed rule's open alerts end with it: the pending one goes, a firing one resolves.
    a.save_alerts(acme, r, &[alert("mistral", "firing", later)], &[])
        .await
        .unwrap();
    let changed = a
        .update_rule(acme, r, "error rate", "{}", true, "ann@acme", later)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (changed.name.as_str(), changed.updated_at_ms),
        ("error rate", later)
    );
    assert!(a.open_alerts(acme, r).await.unwrap().is_empty());
    let (history, _) = a
        .list_alerts(acme, &all(Some("resolved")), None, 10)
        .await
        .unwrap();
    assert_eq!(history.len(), 2);

    // Retention forgets resolved alerts only; deleting the rule forgets the rest.
    assert_eq!(
        a.forget_resolved_before(acme, NOW + 5 * MINUTE_MS)
            .await
            .unwrap(),
        1
    );
    // The rest goes with the raw events' retention: mistral resolved at `later`.
    let policy = RetentionPolicy {
        raw_ms: Some(DAY_MS),
        ..Default::default()
    };
    let report = s
        .enforce_retention(&policy, later + DAY_MS + 1)
        .await
        .unwrap();
    assert_eq!(report.alerts_deleted, 1, "{report:?}");
    let (left, _) = a.list_alerts(acme, &all(None), None, 10).await.unwrap();
    assert!(left.iter().all(|x| x.state != "resolved"), "{left:?}");
    assert!(a.delete_rule(acme, r).await.unwrap());
    assert!(
        a.list_alerts(acme, &all(None), None, 10)
            .await
            .unwrap()
            .0
            .is_empty()
    );
    assert_eq!(a.rules(acme).await.unwrap().len(), 0);
    assert_eq!(a.rules(other).await.unwrap()[0].id, theirs.id);
}
