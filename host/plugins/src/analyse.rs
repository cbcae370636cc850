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

/// The configuration text `configure` is given: the plugin's part.
pub(crate) fn plugin_config_text(manifest: &Manifest, config_json: &str) -> String {
    match serde_json::from_str::<Value>(config_json) {
        Ok(v) if watches_series(manifest.kind) => split_config(manifest, &v).0.to_string(),
        _ => config_json.to_string(),
    }
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
    /// The tenant's enabled detectors and forecasters. One whose stored settings no longer
    /// resolve (the operator lowered the series cap) is left out, with a warning.
    pub async fn analysers(&self, tenant: TenantId) -> Result<Vec<Analyser>, PluginAdminError> {
        let plugins = self.tenant(tenant).await?;
        let mut out = Vec::new();
        for slot in &plugins.all {
            let manifest = slot.plugin.manifest();
            if !watches_series(manifest.kind) {
                continue;
            }
            let config: Value = serde_json::from_str(&slot.install.config_json).unwrap_or_default();
            match series_settings(manifest, &config, self.config.max_series) {
                Ok(Some(series)) => out.push(Analyser {
                    name: slot.install.name.clone(),
                    kind: manifest.kind,
                    series,
                    slot: slot.clone(),
                }),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(tenant = %tenant, plugin = %slot.install.name, error = %e, "the plugin's series settings are not allowed here; it does not run");
                }
            }
        }
        Ok(out)
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
