//! Alert rules and the alerts they raise: names unique per tenant, an alert's life as one row,
//! its history paged, and nothing of one tenant's seen by another.

use hub_core::Severity;
use hub_storage::{
    Acknowledgement, AfterAttempt, AlertFilter, AlertRecord, DeliveryAttempt, DeliveryFilter,
    NewDelivery, NewSilence,
};

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
        acknowledged: None,
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
    a.save_alerts(acme, r, &[alert("gpt-4o", "pending", NOW)], &[], &[], NOW)
        .await
        .unwrap();
    let open = a.open_alerts(acme, r).await.unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].rule_id, r);
    a.save_alerts(acme, r, &[alert("gpt-4o", "firing", NOW)], &[], &[], NOW)
        .await
        .unwrap();
    let firing = a.open_alerts(acme, r).await.unwrap();
    assert_eq!(
        (firing[0].id, firing[0].state.as_str()),
        (open[0].id, "firing")
    );
    assert_eq!(firing[0].fired_at_ms, Some(NOW));
    // Acknowledged by someone of the tenant: kept through the next evaluation's save.
    let ack = Acknowledgement {
        at_ms: NOW + 1,
        by: "user:ann@acme".into(),
        comment: "rolling back".into(),
    };
    assert!(
        a.acknowledge(other, firing[0].id, &ack)
            .await
            .unwrap()
            .is_none()
    );
    let acked = a
        .acknowledge(acme, firing[0].id, &ack)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(acked.acknowledged.as_ref(), Some(&ack));
    a.save_alerts(acme, r, &[alert("gpt-4o", "firing", NOW)], &[], &[], NOW)
        .await
        .unwrap();
    let kept = a.alert(acme, firing[0].id).await.unwrap().unwrap();
    assert_eq!(kept.acknowledged, Some(ack.clone()));
    assert!(a.alert(other, firing[0].id).await.unwrap().is_none());
    a.save_alerts(acme, r, &[alert("gpt-4o", "resolved", NOW)], &[], &[], NOW)
        .await
        .unwrap();
    assert!(a.open_alerts(acme, r).await.unwrap().is_empty());
    // A resolved alert is not acknowledged any more.
    assert!(
        a.acknowledge(acme, firing[0].id, &ack)
            .await
            .unwrap()
            .is_none()
    );
    let later = NOW + 10 * MINUTE_MS;
    a.save_alerts(
        acme,
        r,
        &[
            alert("gpt-4o", "pending", later),
            alert("claude", "pending", later),
        ],
        &[],
        &[],
        later,
    )
    .await
    .unwrap();
    // A pending alert that stopped holding is forgotten, not resolved.
    a.save_alerts(
        acme,
        r,
        &[],
        &[vec![("model".into(), "claude".into())]],
        &[],
        NOW,
    )
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
    a.save_alerts(acme, r, &[alert("mistral", "firing", later)], &[], &[], NOW)
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

fn to(target: &str, model: &str) -> NewDelivery {
    NewDelivery {
        group: vec![("model".into(), model.into())],
        target: target.into(),
        notice: "firing".into(),
        payload: format!(r#"{{"target":"{target}"}}"#),
        silenced: None,
    }
}

fn tried(id: i64, at_ms: i64, after: AfterAttempt, error: Option<&str>) -> DeliveryAttempt {
    DeliveryAttempt {
        delivery_id: id,
        at_ms,
        duration_ms: 12,
        outcome: after.outcome().into(),
        error: error.map(String::from),
    }
}

pub async fn alert_deliveries_are_queued_with_the_alert_taken_once_and_logged(s: Arc<dyn Storage>) {
    let (acme, other) = (tenant(&s, "acme").await, tenant(&s, "other").await);
    let (a, d) = (s.alerts(), s.deliveries());
    let r = a
        .create_rule(acme, "errors", "{}", true, "ann@acme", NOW)
        .await
        .unwrap()
        .id;
    // Queued with the alert of its group; a delivery for a group without an alert is not.
    a.save_alerts(
        acme,
        r,
        &[alert("gpt-4o", "firing", NOW)],
        &[],
        &[
            to("webhook", "gpt-4o"),
            to("pager", "gpt-4o"),
            to("webhook", "claude"),
            NewDelivery {
                silenced: Some("silenced by silence 1".into()),
                ..to("quiet", "gpt-4o")
            },
        ],
        NOW,
    )
    .await
    .unwrap();
    let alert_id = a.open_alerts(acme, r).await.unwrap()[0].id;
    assert_eq!(d.tenants_with_due(NOW).await.unwrap(), [acme]);
    assert!(
        d.tenants_with_due(NOW - 1).await.unwrap().is_empty(),
        "not due before"
    );

    // Taken once: a second claim inside the lease gets what is left, then nothing.
    let lease = MINUTE_MS;
    let first = d.claim_due(acme, NOW, lease, 1).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(
        (first[0].target.as_str(), first[0].alert_id),
        ("webhook", alert_id)
    );
    assert_eq!(first[0].payload, r#"{"target":"webhook"}"#);
    let second = d.claim_due(acme, NOW, lease, 10).await.unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].target, "pager");
    assert!(d.claim_due(acme, NOW, lease, 10).await.unwrap().is_empty());
    assert!(d.claim_due(other, NOW, lease, 10).await.unwrap().is_empty());
    assert!(
        d.tenants_with_due(NOW).await.unwrap().is_empty(),
        "all held"
    );
    // The silenced one was recorded, finished, and is never taken.
    let silenced = DeliveryFilter {
        state: Some("silenced".into()),
        ..Default::default()
    };
    let quiet = d.deliveries(acme, &silenced, 10).await.unwrap();
    assert_eq!(quiet.len(), 1);
    assert_eq!(
        (
            quiet[0].target.as_str(),
            quiet[0].finished_at_ms,
            quiet[0].last_error.as_deref()
        ),
        ("quiet", Some(NOW), Some("silenced by silence 1"))
    );

    // Delivered; the other retried later, then given up.
    let (one, two) = (first[0].id, second[0].id);
    d.record_attempt(
        acme,
        &tried(one, NOW, AfterAttempt::Delivered, None),
        AfterAttempt::Delivered,
        None,
    )
    .await
    .unwrap();
    let retry = AfterAttempt::Retry {
        at_ms: NOW + 10_000,
    };
    let why = Some("unavailable: 503 from hooks.example.com");
    d.record_attempt(acme, &tried(two, NOW, retry, why), retry, why)
        .await
        .unwrap();
    assert!(
        d.claim_due(acme, NOW + 9_999, lease, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let again = d.claim_due(acme, NOW + 10_000, lease, 10).await.unwrap();
    assert_eq!((again[0].id, again[0].attempts), (two, 1));
    assert_eq!(again[0].last_error.as_deref(), why);
    let later = NOW + 10_000;
    d.record_attempt(
        acme,
        &tried(two, later, AfterAttempt::Failed, why),
        AfterAttempt::Failed,
        why,
    )
    .await
    .unwrap();

    // The log: newest first, each with its attempts; nothing of it seen by another tenant.
    let of_alert = DeliveryFilter {
        alert_id: Some(alert_id),
        ..Default::default()
    };
    let log = d.deliveries(acme, &of_alert, 10).await.unwrap();
    assert_eq!(
        log.iter()
            .map(|x| (x.id, x.state.as_str(), x.attempts))
            .collect::<Vec<_>>(),
        [
            (quiet[0].id, "silenced", 0),
            (two, "failed", 2),
            (one, "delivered", 1)
        ]
    );
    assert_eq!(log[1].finished_at_ms, Some(later));
    let failed = DeliveryFilter {
        state: Some("failed".into()),
        ..Default::default()
    };
    assert_eq!(d.deliveries(acme, &failed, 10).await.unwrap().len(), 1);
    let attempts = d.attempts(acme, &[one, two]).await.unwrap();
    assert_eq!(
        attempts
            .iter()
            .map(|x| (x.delivery_id, x.outcome.as_str()))
            .collect::<Vec<_>>(),
        [(one, "delivered"), (two, "retry"), (two, "failed")]
    );
    assert_eq!(attempts[1].error.as_deref(), why);
    assert!(d.deliveries(other, &of_alert, 10).await.unwrap().is_empty());
    assert!(d.attempts(other, &[one, two]).await.unwrap().is_empty());

    // A replica that took a delivery and died: another takes it once the lease has passed.
    a.save_alerts(
        acme,
        r,
        &[alert("gpt-4o", "resolved", later)],
        &[],
        &[to("webhook", "gpt-4o")],
        later,
    )
    .await
    .unwrap();
    let taken = d.claim_due(acme, later, lease, 10).await.unwrap();
    assert_eq!(taken.len(), 1);
    assert!(
        d.claim_due(acme, later + lease - 1, lease, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let retaken = d.claim_due(acme, later + lease, lease, 10).await.unwrap();
    assert_eq!(retaken[0].id, taken[0].id);

    // Retention takes finished deliveries with the resolved alerts; a queued one stays.
    a.forget_resolved_before(acme, later + 1).await.unwrap();
    let left = d
        .deliveries(acme, &DeliveryFilter::default(), 10)
        .await
        .unwrap();
    assert_eq!(left.iter().map(|x| x.id).collect::<Vec<_>>(), [taken[0].id]);
    assert!(d.attempts(acme, &[one, two]).await.unwrap().is_empty());
    // Deleting the rule takes the rest.
    assert!(a.delete_rule(acme, r).await.unwrap());
    assert!(
        d.deliveries(acme, &DeliveryFilter::default(), 10)
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn silences_are_kept_per_tenant_and_end_when_expired(s: Arc<dyn Storage>) {
    let (acme, other) = (tenant(&s, "acme").await, tenant(&s, "other").await);
    let q = s.silences();
    let new = |starts: i64, ends: i64| NewSilence {
        matchers: r#"[{"name":"model","value":"gpt-4o"}]"#.into(),
        starts_at_ms: starts,
        ends_at_ms: ends,
        comment: "deploying the new prompt".into(),
        created_by: "ann@acme".into(),
    };
    let a = q
        .create_silence(acme, &new(NOW, NOW + HOUR_MS), NOW)
        .await
        .unwrap();
    let later = q
        .create_silence(acme, &new(NOW + HOUR_MS, NOW + 2 * HOUR_MS), NOW)
        .await
        .unwrap();
    assert_eq!((a.created_by.as_str(), a.created_at_ms), ("ann@acme", NOW));
    let active = q.silences(acme, NOW, false, 10).await.unwrap();
    assert_eq!(
        active.iter().map(|x| x.id).collect::<Vec<_>>(),
        [a.id, later.id]
    );
    assert!(q.silences(other, NOW, false, 10).await.unwrap().is_empty());
    assert!(q.expire_silence(other, a.id, NOW).await.unwrap().is_none());
    // Expired: it ends now, once.
    let ended = q
        .expire_silence(acme, a.id, NOW + MINUTE_MS)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ended.ends_at_ms, NOW + MINUTE_MS);
    assert!(
        q.expire_silence(acme, a.id, NOW + 2 * MINUTE_MS)
            .await
            .unwrap()
            .is_none()
    );
    let now = NOW + 2 * MINUTE_MS;
    assert_eq!(q.silences(acme, now, false, 10).await.unwrap().len(), 1);
    assert_eq!(q.silences(acme, now, true, 10).await.unwrap()[0].id, a.id);
    // Retention forgets the ended ones only.
    assert_eq!(q.forget_silences_before(acme, now).await.unwrap(), 1);
    assert_eq!(
        q.silences(acme, now, false, 10).await.unwrap()[0].id,
        later.id
    );
}
