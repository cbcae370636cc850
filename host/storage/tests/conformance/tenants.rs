//! Tenants and their API keys, plugin components and installs, the marketplace's keys, packages
//! and versions.

use super::*;

pub(crate) async fn tenants_and_keys(store: Arc<dyn Storage>) {
    let t = tenant(&store, "acme").await;
    assert!(matches!(
        store.tenants().create_tenant("acme", NOW).await,
        Err(StorageError::Conflict(_))
    ));
    assert_eq!(
        store
            .tenants()
            .tenant_by_name("acme")
            .await
            .unwrap()
            .unwrap()
            .id,
        t
    );
    assert!(
        store
            .tenants()
            .tenant_by_name("nope")
            .await
            .unwrap()
            .is_none()
    );
    let key = NewApiKey {
        name: "ci".into(),
        prefix: "hub_abc123".into(),
        secret_hash: "ff".repeat(32),
        scopes: vec![ApiKeyScope::Ingest, ApiKeyScope::Query],
        expires_at_ms: None,
        rate_limit_per_s: Some(50),
        rotated_from: None,
    };
    let created = store.tenants().create_api_key(t, &key, NOW).await.unwrap();
    assert!(matches!(
        store.tenants().create_api_key(t, &key, NOW).await,
        Err(StorageError::Conflict(_))
    ));
    let found = store
        .tenants()
        .api_key_by_prefix("hub_abc123")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found, created);
    assert_eq!(found.tenant, t);
    store
        .tenants()
        .touch_api_key(t, found.id, NOW + 5)
        .await
        .unwrap();
    let listed = store.tenants().list_api_keys(t).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].last_used_at_ms, Some(NOW + 5));
    assert_eq!(listed[0].rate_limit_per_s, Some(50));

    // Revocation: scheduled, brought forward, never pushed back; another tenant's id is unknown.
    let other = tenant(&store, "globex").await;
    assert!(
        store
            .tenants()
            .revoke_api_key(other, found.id, NOW)
            .await
            .unwrap()
            .is_none()
    );
    let later = store
        .tenants()
        .revoke_api_key(t, found.id, NOW + 100)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(later.revoked_at_ms, Some(NOW + 100));
    let now = store
        .tenants()
        .revoke_api_key(t, found.id, NOW + 10)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(now.revoked_at_ms, Some(NOW + 10));
    let again = store
        .tenants()
        .revoke_api_key(t, found.id, NOW + 50)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.revoked_at_ms, Some(NOW + 10));
    let rotated = store
        .tenants()
        .create_api_key(
            t,
            &NewApiKey {
                prefix: "hub_def456".into(),
                rotated_from: Some(found.id),
                ..key.clone()
            },
            NOW,
        )
        .await
        .unwrap();
    assert_eq!(rotated.rotated_from, Some(found.id));
    store.set_meta("k", "v1").await.unwrap();
    store.set_meta("k", "v2").await.unwrap();
    assert_eq!(store.get_meta("k").await.unwrap().as_deref(), Some("v2"));
}

pub(crate) async fn plugins_installs_health_and_kv(store: Arc<dyn Storage>) {
    let a = tenant(&store, "plug-a").await;
    let b = tenant(&store, "plug-b").await;
    let component = PluginComponent {
        digest: "d1".into(),
        name: "cost".into(),
        version: "0.1.0".into(),
        kind: "enricher".into(),
        manifest: "name = \"cost\"".into(),
        component: vec![0, 97, 115, 109, 255, 0, 1],
        created_at_ms: NOW,
    };
    store
        .plugins()
        .put_plugin_component(&component)
        .await
        .unwrap();
    store
        .plugins()
        .put_plugin_component(&component)
        .await
        .unwrap(); // idempotent
    assert_eq!(
        store.plugins().plugin_component("d1").await.unwrap(),
        Some(component.clone())
    );
    assert_eq!(
        store.plugins().plugin_component("nope").await.unwrap(),
        None
    );

    let install = |name: &str, position: i64| PluginInstall {
        tenant: a,
        name: name.into(),
        digest: "d1".into(),
        version: "0.1.0".into(),
        kind: "enricher".into(),
        enabled: true,
        position,
        config_json: "{}".into(),
        grants_json: "{}".into(),
        consecutive_failures: 0,
        disabled_reason: None,
        installed_at_ms: NOW,
        updated_at_ms: NOW,
    };
    store
        .plugins()
        .save_plugin_install(&install("zeta", 1))
        .await
        .unwrap();
    store
        .plugins()
        .save_plugin_install(&install("alpha", 2))
        .await
        .unwrap();
    let mut dangling = install("ghost", 3);
    dangling.digest = "missing".into();
    assert!(matches!(
        store.plugins().save_plugin_install(&dangling).await,
        Err(StorageError::NotFound(_))
    ));
    let names: Vec<String> = store
        .plugins()
        .plugin_installs(a)
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(names, ["zeta", "alpha"], "running order is by position");
    assert!(
        store.plugins().plugin_installs(b).await.unwrap().is_empty(),
        "tenant B sees nothing"
    );

    store
        .plugins()
        .record_plugin_health(a, "zeta", 3, None, NOW + 1)
        .await
        .unwrap();
    store
        .plugins()
        .record_plugin_health(
            a,
            "alpha",
            5,
            Some("5 failures in a row: deadline"),
            NOW + 2,
        )
        .await
        .unwrap();
    store
        .plugins()
        .record_plugin_health(b, "zeta", 9, Some("other tenant"), NOW)
        .await
        .unwrap();
    let installs = store.plugins().plugin_installs(a).await.unwrap();
    assert_eq!(
        (installs[0].consecutive_failures, installs[0].enabled),
        (3, true)
    );
    assert_eq!(
        (installs[1].consecutive_failures, installs[1].enabled),
        (5, false)
    );
    assert_eq!(
        installs[1].disabled_reason.as_deref(),
        Some("5 failures in a row: deadline")
    );

    store
        .plugins()
        .apply_plugin_kv(
            a,
            "zeta",
            &[
                ("k1".into(), Some(b"v1".to_vec())),
                ("k2".into(), Some(vec![0, 1])),
            ],
        )
        .await
        .unwrap();
    store
        .plugins()
        .apply_plugin_kv(
            a,
            "zeta",
            &[("k1".into(), Some(b"v1b".to_vec())), ("k2".into(), None)],
        )
        .await
        .unwrap();
    let kv = store.plugins().plugin_kv(a, "zeta").await.unwrap();
    assert_eq!(
        kv.into_iter().collect::<Vec<_>>(),
        vec![("k1".to_string(), b"v1b".to_vec())]
    );
    assert!(
        store
            .plugins()
            .plugin_kv(b, "zeta")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .plugins()
            .plugin_kv(a, "alpha")
            .await
            .unwrap()
            .is_empty()
    );

    assert!(
        !store
            .plugins()
            .delete_plugin_install(b, "zeta")
            .await
            .unwrap(),
        "B cannot delete A's"
    );
    assert!(
        store
            .plugins()
            .delete_plugin_install(a, "zeta")
            .await
            .unwrap()
    );
    store.plugins().delete_plugin_kv(a, "zeta").await.unwrap();
    assert!(
        store
            .plugins()
            .plugin_kv(a, "zeta")
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.plugins().plugin_installs(a).await.unwrap().len(), 1);
}

pub(crate) async fn marketplace_keys_packages_and_versions(store: Arc<dyn Storage>) {
    use hub_storage::{NewVersion, PublisherKey};
    let m = store.market();
    let key = |id: &str, publisher: &str, secret: Option<&str>| PublisherKey {
        key_id: id.into(),
        publisher: publisher.into(),
        user_id: None,
        public_key: format!("ed25519:{id}"),
        secret_key: secret.map(Into::into),
        created_at_ms: NOW,
        revoked_at_ms: None,
    };
    m.add_publisher_key(&key("k1", "hub", Some("s1")))
        .await
        .unwrap();
    assert!(matches!(
        m.add_publisher_key(&key("k1", "hub", None)).await,
        Err(StorageError::Conflict(_))
    ));
    // One kept secret per publisher: a second replica's key loses the race.
    assert!(matches!(
        m.add_publisher_key(&key("k2", "hub", Some("s2"))).await,
        Err(StorageError::Conflict(_))
    ));
    m.add_publisher_key(&key("k3", "ann@example.com", None))
        .await
        .unwrap();
    assert_eq!(m.own_key("hub").await.unwrap().unwrap().key_id, "k1");
    assert_eq!(m.own_key("ann@example.com").await.unwrap(), None);
    assert_eq!(m.publisher_keys(None).await.unwrap().len(), 2);
    assert!(m.revoke_publisher_key("k3", NOW + 1).await.unwrap());
    assert!(!m.revoke_publisher_key("k3", NOW + 2).await.unwrap());
    assert_eq!(
        m.publisher_key("k3").await.unwrap().unwrap().revoked_at_ms,
        Some(NOW + 1)
    );

    let component = |digest: &str| PluginComponent {
        digest: digest.into(),
        name: "tagger".into(),
        version: "0.1.0".into(),
        kind: "enricher".into(),
        manifest: "name = \"tagger\"".into(),
        component: vec![0, 97, 115, 109],
        created_at_ms: NOW,
    };
    let version = |v: &str, publisher: &str, kind: &str, icon: Option<Vec<u8>>| NewVersion {
        name: "tagger".into(),
        version: v.into(),
        kind: kind.into(),
        description: format!("Tags calls ({v})"),
        publisher: publisher.into(),
        digest: format!("pkg-{v}"),
        key_id: "k1".into(),
        readme: "# Tagger".into(),
        icon,
        package: vec![1, 2, 3],
        published_by: "hub".into(),
        published_at_ms: NOW,
    };
    m.publish(&version("0.1.0", "hub", "enricher", None), &component("c1"))
        .await
        .unwrap();
    m.publish(
        &version("0.2.0", "hub", "enricher", Some(vec![137, 80])),
        &component("c2"),
    )
    .await
    .unwrap();
    // Versions are immutable, names belong to their publisher, kinds do not change: nothing of
    // a refused publication is stored.
    for (v, publisher, kind, digest) in [
        ("0.2.0", "hub", "enricher", "c3"),
        ("0.3.0", "mallory", "enricher", "c4"),
        ("0.3.0", "hub", "detector", "c5"),
    ] {
        assert!(matches!(
            m.publish(&version(v, publisher, kind, None), &component(digest))
                .await,
            Err(StorageError::Conflict(_))
        ));
        assert_eq!(
            store.plugins().plugin_component(digest).await.unwrap(),
            None
        );
    }
    let p = m.package("tagger").await.unwrap().unwrap();
    assert_eq!(
        (p.publisher.as_str(), p.description.as_str()),
        ("hub", "Tags calls (0.2.0)")
    );
    assert_eq!((p.downloads, p.installs), (0, 0));
    let mut versions = m.versions("tagger").await.unwrap();
    versions.sort_by(|a, b| a.version.cmp(&b.version));
    assert_eq!(versions.len(), 2);
    assert_eq!((versions[0].has_icon, versions[1].has_icon), (false, true));
    assert_eq!(versions[1].plugin_digest, "c2");
    assert_eq!(
        m.version("tagger", "0.2.0").await.unwrap().as_ref(),
        Some(&versions[1])
    );
    assert_eq!(m.version("tagger", "9.9.9").await.unwrap(), None);
    assert_eq!(
        m.icon("tagger", "0.2.0").await.unwrap(),
        Some(vec![137, 80])
    );
    assert_eq!(m.icon("tagger", "0.1.0").await.unwrap(), None);
    assert_eq!(
        m.package_file("tagger", "0.1.0", true).await.unwrap(),
        Some(vec![1, 2, 3])
    );
    assert_eq!(m.package_file("tagger", "9.9.9", true).await.unwrap(), None);
    assert_eq!(m.package("tagger").await.unwrap().unwrap().downloads, 1);

    // Search by text (case-insensitive, wildcards literal) and kind.
    let names =
        |ps: Vec<hub_storage::PackageRecord>| ps.into_iter().map(|p| p.name).collect::<Vec<_>>();
    assert_eq!(
        names(m.packages(Some("TAG"), None).await.unwrap()),
        ["tagger"]
    );
    assert_eq!(
        names(
            m.packages(Some("calls (0.2"), Some("enricher"))
                .await
                .unwrap()
        ),
        ["tagger"]
    );
    assert!(m.packages(Some("%"), None).await.unwrap().is_empty());
    assert!(m.packages(None, Some("detector")).await.unwrap().is_empty());

    // Installs count.
    let t = tenant(&store, "market-t").await;
    store
        .plugins()
        .save_plugin_install(&PluginInstall {
            tenant: t,
            name: "tagger".into(),
            digest: "c2".into(),
            version: "0.2.0".into(),
            kind: "enricher".into(),
            enabled: true,
            position: 1,
            config_json: "{}".into(),
            grants_json: "{}".into(),
            consecutive_failures: 0,
            disabled_reason: None,
            installed_at_ms: NOW,
            updated_at_ms: NOW,
        })
        .await
        .unwrap();
    assert_eq!(m.package("tagger").await.unwrap().unwrap().installs, 1);

    // Yank and restore.
    assert!(
        m.set_yanked("tagger", "0.1.0", Some(("broken", NOW + 5)))
            .await
            .unwrap()
    );
    let v = m
        .versions("tagger")
        .await
        .unwrap()
        .into_iter()
        .find(|v| v.version == "0.1.0")
        .unwrap();
    assert_eq!(
        (v.yanked_at_ms, v.yank_reason.as_deref()),
        (Some(NOW + 5), Some("broken"))
    );
    assert!(m.set_yanked("tagger", "0.1.0", None).await.unwrap());
    assert!(!m.set_yanked("tagger", "7.0.0", None).await.unwrap());
}
