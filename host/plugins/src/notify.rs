//! The integration world's `on-alerts`: a tenant's alert notices handed to one of its enabled
//! integrations, through the one call path. A failure counts towards disabling the integration
//! (delivering is its main job); its CPU time is not charged to the tenant's enrichment budget,
//! so a slow target never makes the tenant's ingest wait (its deadline and the delivery
//! worker's concurrency bound it instead).

use std::sync::Arc;

use hub_core::TenantId;
use hub_runtime::{Alert, CallError};

use super::call::CallPolicy;
use super::{PluginHost, PluginKind};

impl PluginHost {
    /// Calls `on-alerts` of the tenant's enabled integration `target` with `alerts`.
    pub async fn notify(
        self: &Arc<Self>,
        tenant: TenantId,
        target: &str,
        alerts: Vec<Alert>,
    ) -> Result<(), CallError> {
        let plugins = self
            .tenant(tenant)
            .await
            .map_err(|e| CallError::Host(e.to_string()))?;
        let slot = plugins
            .all
            .iter()
            .find(|s| {
                s.install.name == target && s.plugin.manifest().kind == PluginKind::Integration
            })
            .cloned()
            .ok_or_else(|| {
                CallError::Host(format!(
                    "no enabled integration named `{target}` (removed, disabled, or disabled \
                     after failing)"
                ))
            })?;
        let n = alerts.len();
        self.call_slot(
            tenant,
            slot,
            CallPolicy::DELIVERY,
            move |i| i.on_alerts(&alerts),
            move |_| n,
        )
        .await
    }
}
