//! The detector and forecaster worlds: which series each enabled one watches (its manifest's
//! `[series]` with the tenant's `"series"` override), and its calls, made and settled through the
//! one call path (`call`) like every other world's. The scheduler (`hub-pipeline`) decides when
//! they run and builds their series; the answers are checked by the runtime before anyone sees
//! them.
//!
//! A detector's or forecaster's configuration is the plugin's own, plus `"series"`, which is the
//! host's: it is taken out before the plugin's schema checks the rest and before `configure`
//! hands the rest to the plugin.

use std::sync::Arc;

use hub_core::TenantId;
use hub_marketplace::manifest::ConfigError;
use hub_marketplace::series::{Origin, SeriesError};
use hub_marketplace::{Manifest, PluginKind, SeriesSettings};
use hub_runtime::{Anomaly, CallError, Forecast, Series};
use hub_storage::PluginInstall;
use serde_json::Value;

use super::call::CallPolicy;
use super::pool::Slot;
use super::{PluginAdminError, PluginHost};

/// The key of a detector's or forecaster's configuration that the host reads.
pub const SERIES_KEY: &str = "series";

/// Whether plugins of this kind watch series.
pub fn watches_series(kind: PluginKind) -> bool {
    matches!(kind, PluginKind::Detector | PluginKind::Forecaster)
}

/// A configuration split into the plugin's part and the host's `"series"` override (`Null`
/// when none, and for kinds that watch no series, whose whole configuration is their own).
pub fn split_config(manifest: &Manifest, config: &Value) -> (Value, Value) {
    match config {
        Value::Object(o) if watches_series(manifest.kind) && o.contains_key(SERIES_KEY) => {
            let mut own = o.clone();
            let series = own.remove(SERIES_KEY).unwrap_or(Value::Null);
            (Value::Object(own), series)
        }
        other => (other.clone(), Value::Null),
    }
}

/// The series a detector or forecaster watches with this configuration; `None` for other kinds.
/// `max_series` is the most the operator allows per install.
pub fn series_settings(
    manifest: &Manifest,
    config: &Value,
    max_series: u32,
) -> Result<Option<SeriesSettings>, SeriesError> {
    let Some(defaults) = &manifest.series else {
        return Ok(None);
    };
    let (_, over) = split_config(manifest, config);
    defaults
        .resolve(
            &over,
            manifest.kind == PluginKind::Forecaster,
            Origin::Config,
            max_series,
        )
        .map(Some)
}

/// An install's stored configuration read once, when its slot is made: the text `configure` is
/// given (the plugin's part), and for a detector or forecaster the series it watches. Settings
/// that no longer resolve (the operator lowered the series cap) leave it unscheduled, said once
/// here rather than at every tick.
pub(crate) fn read_config(
    install: &PluginInstall,
    manifest: &Manifest,
    max_series: u32,
) -> (String, Option<SeriesSettings>) {
    if !watches_series(manifest.kind) {
        return (install.config_json.clone(), None);
    }
    let config: Value = serde_json::from_str(&install.config_json).unwrap_or_default();
    let series = series_settings(manifest, &config, max_series).unwrap_or_else(|e| {
        tracing::warn!(tenant = %install.tenant, plugin = %install.name, error = %e, "the plugin's series settings are not allowed here; it does not run");
        None
    });
    (split_config(manifest, &config).0.to_string(), series)
}

/// Checks the host's part of a configuration (the plugin's own is the schema's business).
pub(crate) fn check_series(
    manifest: &Manifest,
    config: &Value,
    max_series: u32,
) -> Result<(), PluginAdminError> {
    series_settings(manifest, config, max_series)
        .map(|_| ())
        .map_err(|e| {
            PluginAdminError::Config(vec![ConfigError {
                path: e.path,
                message: e.message,
            }])
        })
}

/// An enabled detector or forecaster of a tenant, with the series it watches.
#[derive(Clone)]
pub struct Analyser {
    pub name: String,
    pub kind: PluginKind,
    pub series: SeriesSettings,
    slot: Arc<Slot>,
}

impl std::fmt::Debug for Analyser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Analyser")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("series", &self.series)
            .finish_non_exhaustive()
    }
}

impl PluginHost {
    /// The tenant's enabled detectors and forecasters (one whose stored settings no longer
    /// resolve is left out: see `read_config`).
    pub async fn analysers(&self, tenant: TenantId) -> Result<Vec<Analyser>, PluginAdminError> {
        let plugins = self.tenant(tenant).await?;
        Ok(plugins
            .all
            .iter()
            .filter_map(|slot| {
                Some(Analyser {
                    name: slot.install.name.clone(),
                    kind: slot.plugin.manifest().kind,
                    series: slot.series.clone()?,
                    slot: slot.clone(),
                })
            })
            .collect())
    }

    /// Calls a detector over `series` under its limits and settles the call (a refused answer
    /// counts as a failure, like any).
    pub async fn detect(
        self: &Arc<Self>,
        tenant: TenantId,
        analyser: &Analyser,
        series: Arc<Vec<Series>>,
    ) -> Result<Vec<Anomaly>, CallError> {
        self.call_slot(
            tenant,
            analyser.slot.clone(),
            CallPolicy::ANALYSIS,
            move |i| i.detect(&series),
            |a: &Vec<Anomaly>| a.len(),
        )
        .await
    }

    /// Calls a forecaster over `series` for `horizon` points and settles the call.
    pub async fn forecast(
        self: &Arc<Self>,
        tenant: TenantId,
        analyser: &Analyser,
        series: Arc<Vec<Series>>,
        horizon: u32,
    ) -> Result<Vec<Forecast>, CallError> {
        self.call_slot(
            tenant,
            analyser.slot.clone(),
            CallPolicy::ANALYSIS,
            move |i| i.forecast(&series, horizon),
            |f: &Vec<Forecast>| f.len(),
        )
        .await
    }
}
