//! Administration of installs (the CLI and the API): install, configure, grant, order, enable,
//! uninstall. Every change is checked before it is saved.

use std::collections::BTreeMap;

use hub_core::TenantId;
use hub_marketplace::Manifest;
use hub_runtime::Plugin;
use hub_storage::{PluginComponent, PluginInstall};

use super::analyse::{check_series, split_config};
use super::{GrantsDoc, PluginAdminError, PluginHost, host_version};

impl PluginHost {
    /// Whether `grants` are what the hub lets a tenant give this plugin: only what its manifest asks
    /// for (any host when it asks for `*`), each host well formed.
    pub fn check_grants(manifest: &Manifest, grants: &GrantsDoc) -> Result<(), PluginAdminError> {
        if grants.kv && !manifest.capabilities.kv {
            return Err(PluginAdminError::Grants(format!(
                "grants.kv: `{}` does not ask for kv",
                manifest.name
            )));
        }
        let any = manifest.capabilities.http.iter().any(|h| h == "*");
        for (i, h) in grants.http.iter().enumerate() {
            if !hub_marketplace::manifest::valid_http_host(h) {
                return Err(PluginAdminError::Grants(format!(
                    "grants.http[{i}]: `{h}` is not a host or host:port"
                )));
            }
            if !any && !manifest.capabilities.http.contains(h) {
                return Err(PluginAdminError::Grants(format!(
                    "grants.http[{i}]: `{}` does not ask for `{h}` (it asks for: {})",
                    manifest.name,
                    if manifest.capabilities.http.is_empty() {
                        "no hosts".to_string()
                    } else {
                        manifest.capabilities.http.join(", ")
                    }
                )));
            }
        }
        Ok(())
    }

    /// Checks `config` against the schema and against the plugin itself (a fresh instance's
    /// `configure`), off the request path; a detector's or forecaster's `"series"` against the
    /// host's rules.
    pub async fn check_config(
        &self,
        plugin: &Plugin,
        config: &serde_json::Value,
        grants: &GrantsDoc,
    ) -> Result<(), PluginAdminError> {
        let manifest = plugin.manifest();
        let (own, _) = split_config(manifest, config);
        manifest
            .validate_config(&own)
            .map_err(PluginAdminError::Config)?;
        check_series(manifest, config, self.config.max_series)?;
        let (rt, plugin, grants, text) = (
            self.runtime.clone(),
            plugin.clone(),
            grants.to_grants(),
            own.to_string(),
        );
        tokio::task::spawn_blocking(move || {
            let mut i = rt.instantiate(&plugin, "config-check", &grants, BTreeMap::new())?;
            let checked = i
                .configure(&text)
                .map_err(|e| PluginAdminError::Refused(e.to_string()));
            drop(i);
            hub_runtime::return_free_heap();
            checked
        })
        .await
        .map_err(|e| PluginAdminError::Refused(format!("configure panicked: {e}")))?
    }

    /// Loads a component against its manifest (compiled, or from the artifact cache), off the
    /// request path.
    pub async fn load(
        &self,
        manifest: Manifest,
        wasm: Vec<u8>,
    ) -> Result<Plugin, PluginAdminError> {
        let rt = self.runtime.clone();
        tokio::task::spawn_blocking(move || rt.load(manifest, &wasm))
            .await
            .map_err(|e| PluginAdminError::Refused(format!("loading panicked: {e}")))?
            .map_err(Into::into)
    }

    /// Installs (or upgrades) a plugin for `tenant` from a component and its manifest. `config`
    /// defaults to the schema's `default` (or `{}`); `grants` to nothing.
    pub async fn install(
        &self,
        tenant: TenantId,
        manifest_src: &str,
        wasm: Vec<u8>,
        config: Option<serde_json::Value>,
        grants: GrantsDoc,
        enabled: bool,
    ) -> Result<PluginInstall, PluginAdminError> {
        let manifest = Manifest::parse(manifest_src, &host_version())?;
        Self::check_grants(&manifest, &grants)?;
        let digest = hub_marketplace::plugin_digest(manifest_src, &wasm);
        let plugin = self.load(manifest.clone(), wasm.clone()).await?;
        let config = config.unwrap_or_else(|| manifest.default_config());
        self.check_config(&plugin, &config, &grants).await?;
        let now = hub_core::time::now_ms();
        self.storage
            .plugins()
            .put_plugin_component(&PluginComponent {
                digest: digest.clone(),
                name: manifest.name.clone(),
                version: manifest.version.to_string(),
                kind: manifest.kind.to_string(),
                manifest: manifest_src.to_string(),
                component: wasm,
                created_at_ms: now,
            })
            .await?;
        self.components
            .lock()
            .unwrap()
            .insert(digest.clone(), plugin.clone());
        let existing = self.storage.plugins().plugin_installs(tenant).await?;
        let previous = existing.iter().find(|i| i.name == manifest.name);
        let position = previous
            .map(|p| p.position)
            .unwrap_or_else(|| existing.iter().map(|i| i.position).max().unwrap_or(0) + 1);
        let install = PluginInstall {
            tenant,
            name: manifest.name.clone(),
            digest,
            version: manifest.version.to_string(),
            kind: manifest.kind.to_string(),
            enabled,
            position,
            config_json: config.to_string(),
            grants_json: serde_json::to_string(&grants).expect("grants serialize"),
            consecutive_failures: 0,
            disabled_reason: None,
            installed_at_ms: previous.map(|p| p.installed_at_ms).unwrap_or(now),
            updated_at_ms: now,
        };
        self.storage.plugins().save_plugin_install(&install).await?;
        self.invalidate(tenant);
        Ok(install)
    }

    /// The tenant's installs in running order.
    pub async fn installed(
        &self,
        tenant: TenantId,
    ) -> Result<Vec<PluginInstall>, PluginAdminError> {
        Ok(self.storage.plugins().plugin_installs(tenant).await?)
    }

    async fn existing(
        &self,
        tenant: TenantId,
        name: &str,
    ) -> Result<PluginInstall, PluginAdminError> {
        self.storage
            .plugins()
            .plugin_installs(tenant)
            .await?
            .into_iter()
            .find(|i| i.name == name)
            .ok_or_else(|| PluginAdminError::NotInstalled(name.to_string()))
    }

    /// Checks a change to an install (configuration against the schema and the plugin, grants
    /// against the manifest) and returns the install as it would be, without saving it.
    pub async fn prepare_update(
        &self,
        tenant: TenantId,
        name: &str,
        enabled: Option<bool>,
        config: Option<serde_json::Value>,
        grants: Option<GrantsDoc>,
    ) -> Result<PluginInstall, PluginAdminError> {
        let mut install = self.existing(tenant, name).await?;
        if config.is_some() || grants.is_some() {
            let plugin = self.plugin(&install.digest).await?;
            let grants = match grants {
                Some(g) => g,
                None => serde_json::from_str(&install.grants_json).unwrap_or_default(),
            };
            Self::check_grants(plugin.manifest(), &grants)?;
            let config = match config {
                Some(c) => c,
                None => serde_json::from_str(&install.config_json).unwrap_or_default(),
            };
            self.check_config(&plugin, &config, &grants).await?;
            install.config_json = config.to_string();
            install.grants_json = serde_json::to_string(&grants).expect("grants serialize");
        }
        if let Some(e) = enabled {
            if e && !install.enabled {
                install.consecutive_failures = 0;
                install.disabled_reason = None;
            }
            install.enabled = e;
        }
        install.updated_at_ms = hub_core::time::now_ms();
        Ok(install)
    }

    /// Saves installs made by [`PluginHost::prepare_update`].
    pub async fn save(&self, installs: &[PluginInstall]) -> Result<(), PluginAdminError> {
        for i in installs {
            self.storage.plugins().save_plugin_install(i).await?;
            self.invalidate(i.tenant);
        }
        Ok(())
    }

    /// Changes an install: enabled (enabling clears an automatic disable), configuration, grants.
    pub async fn update(
        &self,
        tenant: TenantId,
        name: &str,
        enabled: Option<bool>,
        config: Option<serde_json::Value>,
        grants: Option<GrantsDoc>,
    ) -> Result<PluginInstall, PluginAdminError> {
        let install = self
            .prepare_update(tenant, name, enabled, config, grants)
            .await?;
        self.save(std::slice::from_ref(&install)).await?;
        Ok(install)
    }

    /// Puts the named installs first, in this order; the others keep their relative order after.
    pub async fn reorder(
        &self,
        tenant: TenantId,
        names: &[String],
    ) -> Result<(), PluginAdminError> {
        let mut installs = self.storage.plugins().plugin_installs(tenant).await?;
        for n in names {
            if !installs.iter().any(|i| &i.name == n) {
                return Err(PluginAdminError::NotInstalled(n.clone()));
            }
        }
        installs.sort_by_key(|i| {
            (
                names
                    .iter()
                    .position(|n| n == &i.name)
                    .unwrap_or(usize::MAX),
                i.position,
            )
        });
        let now = hub_core::time::now_ms();
        for (pos, mut i) in installs.into_iter().enumerate() {
            if i.position != pos as i64 + 1 {
                i.position = pos as i64 + 1;
                i.updated_at_ms = now;
                self.storage.plugins().save_plugin_install(&i).await?;
            }
        }
        self.invalidate(tenant);
        Ok(())
    }

    /// Removes an install; with `purge_kv`, also the plugin's stored state.
    pub async fn uninstall(
        &self,
        tenant: TenantId,
        name: &str,
        purge_kv: bool,
    ) -> Result<(), PluginAdminError> {
        if !self
            .storage
            .plugins()
            .delete_plugin_install(tenant, name)
            .await?
        {
            return Err(PluginAdminError::NotInstalled(name.to_string()));
        }
        if purge_kv {
            self.storage
                .plugins()
                .delete_plugin_kv(tenant, name)
                .await?;
        }
        self.invalidate(tenant);
        Ok(())
    }

    /// The manifest of an installed plugin.
    pub async fn manifest_of(&self, install: &PluginInstall) -> Result<Manifest, PluginAdminError> {
        Ok(self.plugin(&install.digest).await?.manifest().clone())
    }
}
