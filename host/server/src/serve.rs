//! `hub serve`: wiring, first-start bootstrap, graceful shutdown.

use std::time::Duration;

use anyhow::{Context, Result};
use hub_core::ApiKeyScope;
use hub_pipeline::{Pipeline, PipelineConfig};

use crate::config::ServeArgs;

const BOOTSTRAP_KEY: &str = "bootstrap.demo_tenant";
/// First-party plugins the demo tenant has enabled from the start.
const DEMO_PLUGINS: [&str; 2] = ["cost", "registry"];

pub async fn run(args: ServeArgs) -> Result<()> {
    let (storage, settings) = crate::open_db(args).await?;
    // Each open connection holds a file descriptor: take all that the system allows.
    let open_files = hub_api::listener::raise_open_file_limit();
    let max_connections =
        hub_api::listener::max_connections(settings.http.max_connections, open_files);
    storage.prepare_partitions(hub_core::time::now_ms()).await?;

    let plugins = crate::plugins::host(storage.clone(), &settings).await?;
    let catalog = crate::plugins::catalog(plugins.clone(), storage.clone(), &settings);
    let bus = crate::bus::open(&settings, storage.as_ref()).await?;
    let producer = bus.producer;
    // Flushed at shutdown, after the router (which holds the producer) is gone.
    let publisher = producer.kafka_publisher().cloned();
    // A worker (or the one process of the embedded default) runs the pipeline and every
    // scheduled job; an ingest replica only answers the API and publishes.
    let works = settings.role.works();
    let pipeline = bus.consumer.map(|consumer| {
        Pipeline::spawn(
            storage.clone(),
            consumer,
            PipelineConfig {
                writers: settings.writers,
                ..Default::default()
            },
            Some(plugins.clone()),
        )
    });
    let pipeline_stats = pipeline
        .as_ref()
        .map_or_else(Default::default, |p| p.stats.clone());
    // glibc's free pages (SQLite's) back to the system now and then: a process concern.
    let trimmer = tokio::spawn(async {
        let mut tick = tokio::time::interval(Duration::from_secs(10));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let _ = tokio::task::spawn_blocking(hub_runtime::trim_glibc).await;
        }
    });
    let analysis = std::sync::Arc::new(hub_pipeline::schedule::SchedulerStats::default());
    // The scheduled work, stopped (aborted) at shutdown after the HTTP listener: the sync job
    // first, then the rest once the pipeline has drained.
    let mut sync = None;
    let mut background = vec![trimmer];
    if works {
        background.push(hub_plugins::spawn_refresh(
            plugins.clone(),
            Duration::from_secs(10),
        ));
        background.push(hub_pipeline::spawn_maintenance(
            storage.clone(),
            settings.retention,
            Duration::from_millis(settings.retention_interval_ms.max(1_000) as u64),
        ));
        // Re-pricing jobs (POST /v1/costs/reprice), whichever replica accepted them. Between
        // pages or inside one, nothing is lost when stopped: a page is one transaction, and
        // another replica (or this one after a restart) takes the job up from its last page.
        background.push(
            std::sync::Arc::new(hub_pipeline::Repricer::new(
                storage.clone(),
                plugins.clone(),
                settings.reprice.clone(),
            ))
            .spawn(),
        );
        // Detectors and forecasters, each (tenant, plugin, period) run once across replicas; a
        // run cut short is run again by the next replica to hold its lease.
        background.push(hub_pipeline::schedule::spawn_scheduler(
            plugins.clone(),
            storage.clone(),
            settings.analysis.clone(),
            analysis.clone(),
        ));
        // Alert notices to the rules' targets, each delivery taken by one replica at a time.
        background.push(hub_pipeline::alerts::deliver::spawn_delivery(
            plugins.clone(),
            storage.clone(),
            settings.delivery.clone(),
            analysis.deliveries.clone(),
        ));
        // Integrations' syncs: each (tenant, integration, period) once across replicas, its
        // events checked and stored as REST ingest's are.
        sync = Some(hub_pipeline::sync::spawn_sync(
            plugins.clone(),
            storage.clone(),
            producer.clone(),
            hub_pipeline::sync::SyncConfig {
                owner: settings.analysis.owner.clone(),
                limits: settings.api.ingest.clone(),
                ..Default::default()
            },
            analysis.sync.clone(),
        ));
    }
    let mut api = settings.api.clone();
    api.retention = settings.retention;
    // What GET /v1/settings shows: the same view of sign-in and retention the audit log records.
    api.settings = serde_json::Value::Object(
        audited_settings(&settings)
            .into_iter()
            .map(|(k, v)| (k.trim_start_matches("settings.").to_string(), v))
            .collect(),
    );
    let mut state = hub_api::AppState::new(storage.clone(), producer, api, pipeline_stats)
        .with_plugins(catalog.clone())
        .with_analysis(analysis);
    if let Some(w) = &bus.worker {
        state = state.with_worker(w.stats.clone());
    }
    let listener = tokio::net::TcpListener::bind(&settings.listen)
        .await
        .with_context(|| format!("binding {}", settings.listen))?;
    tracing::info!(
        listen = %settings.listen,
        backend = storage.backend(),
        max_connections,
        header_timeout_ms = settings.http.header_timeout.as_millis() as u64,
        body_timeout_ms = settings.http.body_timeout.as_millis() as u64,
        "hub is serving"
    );
    // stdout is for the person who started the hub (logs go to stderr): where it listens, and on
    // the first start the key, last.
    audit_settings(storage.as_ref(), &settings).await?;
    let first_start = bootstrap(storage.as_ref(), &catalog, &settings).await?;
    // The first-party catalog: what the demo tenant needed was published above; the rest (and new
    // versions after an upgrade) are checked and published in the background, off the start path.
    let first_party = {
        let (catalog, dir) = (catalog.clone(), settings.plugins_dir.clone());
        tokio::spawn(async move {
            let names = crate::plugins::first_party_names(&dir);
            crate::plugins::publish_first_party(&catalog, &dir, &names).await;
        })
    };
    println!(
        "hub listening on http://{} ({} storage)",
        listener.local_addr()?,
        storage.backend()
    );
    for line in first_start {
        println!("{line}");
    }

    hub_api::listener::serve(
        listener,
        hub_api::app(state),
        max_connections,
        &settings.http,
        shutdown_signal(),
    )
    .await;
    // The sync job holds a bus producer: stopped first (a sync cut short leaves its cursor where
    // it was, so its events are asked for again), so that the pipeline can drain.
    if let Some(sync) = sync {
        sync.abort();
        let _ = sync.await;
    }
    // What this replica published reaches the broker before it goes.
    if let Some(publisher) = publisher {
        let _ = tokio::task::spawn_blocking(move || publisher.flush(Duration::from_secs(10))).await;
    }
    // A Kafka worker stops reading, lets the pipeline store what it holds and commits.
    if let Some(worker) = bus.worker {
        worker.stop(Duration::from_secs(30)).await;
    }
    // The router (and with it every bus producer) is gone: the writers drain what was queued,
    // acknowledge it, and stop.
    if let Some(pipeline) = pipeline {
        tracing::info!("draining the ingest pipeline");
        if tokio::time::timeout(Duration::from_secs(60), pipeline.join())
            .await
            .is_err()
        {
            tracing::error!("the pipeline did not drain within 60 s");
        }
    }
    for task in background {
        task.abort();
    }
    first_party.abort();
    storage.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// On an empty database, publishes the first-party `cost` and `registry` plugins into the
/// marketplace and creates the demo tenant with both installed from it (when built: see
/// `scripts/build-plugins`) and an ingest+query key, printed once.
async fn bootstrap(
    storage: &dyn hub_storage::Storage,
    catalog: &hub_catalog::Catalog,
    settings: &crate::config::Settings,
) -> Result<Vec<String>> {
    let tenant_name = settings.demo_tenant.as_str();
    if storage.get_meta(BOOTSTRAP_KEY).await?.is_some() {
        return bootstrap_admin(storage, settings).await;
    }
    crate::valid_tenant_name(tenant_name)?;
    let tenant = match storage.tenants().tenant_by_name(tenant_name).await? {
        Some(t) => t,
        None => {
            storage
                .tenants()
                .create_tenant(tenant_name, hub_core::time::now_ms())
                .await?
        }
    };
    let (secret, record) = crate::create_key(
        storage,
        tenant.id,
        "bootstrap",
        vec![ApiKeyScope::Ingest, ApiKeyScope::Query],
        None,
    )
    .await?;
    let mut enabled = Vec::new();
    let demo: Vec<String> = DEMO_PLUGINS.iter().map(|s| s.to_string()).collect();
    crate::plugins::publish_first_party(catalog, &settings.plugins_dir, &demo).await;
    for name in DEMO_PLUGINS {
        if !catalog.catalog_has_any(name).await? {
            tracing::warn!(dir = %settings.plugins_dir.display(), plugin = name, "first-party plugin not built; run scripts/build-plugins");
            continue;
        }
        match crate::plugins::install_first_party(catalog, tenant.id, name).await {
            Ok(i) => enabled.push(format!("{} {}", i.name, i.version)),
            Err(e) => {
                tracing::error!(plugin = name, error = %e, "installing a first-party plugin failed")
            }
        }
    }
    storage.set_meta(BOOTSTRAP_KEY, &tenant.name).await?;
    let mut lines = bootstrap_admin(storage, settings).await?;
    if !enabled.is_empty() {
        lines.push(format!(
            "Plugins enabled for '{}': {}",
            tenant.name,
            enabled.join(", ")
        ));
    }
    lines.push(format!(
        "First start: created tenant '{}' and API key {} (scopes ingest,query). It is shown only now:",
        tenant.name, record.prefix
    ));
    lines.push(secret);
    Ok(lines)
}

/// The settings that decide who gets in and what is kept (single sign-on, retention), as the audit
/// log shows them (never the client secret).
fn audited_settings(settings: &crate::config::Settings) -> [(&'static str, serde_json::Value); 2] {
    let rules = |rules: &[hub_api::oidc::RoleRule]| {
        rules
            .iter()
            .map(|r| format!("{}={}:{}", r.pattern, r.tenant, r.role))
            .collect::<Vec<_>>()
    };
    let sso = match &settings.api.oidc {
        None => serde_json::json!({ "enabled": false }),
        Some(o) => serde_json::json!({
            "enabled": true,
            "issuer": o.issuer,
            "client_id": o.client_id,
            "client_secret_set": o.client_secret.is_some(),
            "redirect_url": o.redirect_url,
            "scopes": o.scopes,
            "groups_claim": o.groups_claim,
            "domain_roles": rules(&o.domain_roles),
            "group_roles": rules(&o.group_roles),
        }),
    };
    let r = &settings.retention;
    let retention = serde_json::json!({
        "raw_ms": r.raw_ms, "minute_ms": r.minute_ms, "hour_ms": r.hour_ms, "day_ms": r.day_ms,
    });
    [("settings.sso", sso), ("settings.retention", retention)]
}

/// Records, at start, SSO and retention settings that differ from the last start's.
async fn audit_settings(
    storage: &dyn hub_storage::Storage,
    settings: &crate::config::Settings,
) -> Result<()> {
    for (key, value) in audited_settings(settings) {
        let value = value.to_string();
        let before = storage.get_meta(key).await?;
        if before.as_deref() == Some(value.as_str()) {
            continue;
        }
        storage
            .audit()
            .append_audit(&hub_storage::AuditEntry {
                at_ms: hub_core::time::now_ms(),
                actor: "config".into(),
                action: key.into(),
                outcome: "ok".into(),
                before,
                after: Some(value.clone()),
                ..Default::default()
            })
            .await?;
        storage.set_meta(key, &value).await?;
    }
    Ok(())
}

/// When the hub has no users: the first one, an operator and owner of the demo tenant, with a
/// one-time password (printed once, to be changed at first login).
async fn bootstrap_admin(
    storage: &dyn hub_storage::Storage,
    settings: &crate::config::Settings,
) -> Result<Vec<String>> {
    let access = storage.access();
    if access.count_users().await? > 0 {
        return Ok(Vec::new());
    }
    let password = hub_api::credentials::passwords::one_time_password();
    let hash = hub_api::credentials::passwords::hash_password_async(password.clone()).await;
    let now = hub_core::time::now_ms();
    let user = access
        .create_user(
            &hub_storage::NewUser {
                email: settings.admin_email.clone(),
                display_name: "Administrator".into(),
                password_hash: Some(hash),
                must_change_password: true,
                operator: true,
                publisher: true,
            },
            now,
        )
        .await?;
    if let Some(t) = storage
        .tenants()
        .tenant_by_name(&settings.demo_tenant)
        .await?
    {
        access
            .set_membership(user.id, t.id, Some(hub_core::Role::Owner), now)
            .await?;
    }
    storage
        .audit()
        .append_audit(&hub_storage::AuditEntry {
            at_ms: now,
            actor: "hub".into(),
            action: "user.bootstrap".into(),
            target: Some(format!("user:{}", user.email)),
            outcome: "ok".into(),
            ..Default::default()
        })
        .await?;
    Ok(vec![format!(
        "Admin login: {} with one-time password {password} (change it at first login: POST /v1/auth/login, then /v1/auth/password)",
        user.email
    )])
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutdown requested: finishing in-flight requests");
}
