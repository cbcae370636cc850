//! Write LLM Analytics Hub plugins in safe Rust.
//!
//! A plugin is a type that implements one of [`Enricher`], [`Detector`], [`Forecaster`] or
//! [`Integration`], exported with the matching macro:
//!
//! ```ignore
//! use hub_plugin_sdk::{Batch, Enricher, Error, Patches};
//!
//! #[derive(serde::Deserialize)]
//! struct Config { discount_pct: Option<f64> }
//!
//! struct Cost { discount: f64 }
//!
//! impl Enricher for Cost {
//!     type Config = Config;
//!     fn new(config: Config) -> Result<Self, Error> {
//!         Ok(Cost { discount: config.discount_pct.unwrap_or(0.0) / 100.0 })
//!     }
//!     fn enrich(&mut self, batch: &Batch, out: &mut Patches) -> Result<(), Error> {
//!         for row in batch.rows() {
//!             if row.cost_usd().is_none() && row.model() == Some("gpt-4o") {
//!                 let tokens = row.input_tokens().unwrap_or(0) as f64;
//!                 out.cost_usd(row.index(), tokens * 2.5e-6 * (1.0 - self.discount));
//!             }
//!         }
//!         Ok(())
//!     }
//! }
//!
//! hub_plugin_sdk::export_enricher!(Cost);
//! ```
//!
//! Build with `cargo build --release --target wasm32-wasip2`; test the built component with the
//! [`testing`] module (feature `testing`). The contract itself is `wit/plugin.wit`
//! (`hub:plugin@0.1.0`), `wit/deps/hub-plugin-0.2.0/plugin.wit` for enrichers and
//! `wit/deps/hub-plugin-0.3.0/plugin.wit` for integrations: enrichers built with this SDK target
//! `hub:plugin/enricher@0.2.0`, whose batch carries usage details; integrations
//! `hub:plugin/integration@0.3.0` ([`Integration`]); detectors and forecasters 0.1.0. (A
//! 0.1.0 integration, such as `plugins/webhook`, generates its world's bindings itself, with
//! these bindings' types: [`AlertV1`].)

pub mod batch;
#[doc(hidden)]
pub mod glue;
pub mod http;
pub mod kv;
pub mod log;
pub mod models;
pub mod stats;
#[cfg(feature = "testing")]
mod test_server;
#[cfg(feature = "testing")]
pub mod testing;
pub mod time;

pub use batch::{Batch, Field, Group, Patches, RawValue, Row, Value};
pub use serde;
pub use serde_json;

/// Generated bindings, one module per world. Plugin code rarely needs them directly.
#[doc(hidden)]
pub mod bindings {
    pub mod enricher {
        wit_bindgen::generate!({
            path: "../wit",
            world: "hub:plugin/enricher@0.2.0",
            pub_export_macro: true,
            export_macro_name: "export_enricher_world",
            default_bindings_module: "hub_plugin_sdk::bindings::enricher",
            generate_all,
        });
    }
    pub mod detector {
        wit_bindgen::generate!({
            path: "../wit",
            world: "hub:plugin/detector@0.1.0",
            pub_export_macro: true,
            export_macro_name: "export_detector_world",
            default_bindings_module: "hub_plugin_sdk::bindings::detector",
            with: {
                "hub:plugin/types@0.1.0": crate::bindings::enricher::hub::plugin0_1_0::types,
                "hub:plugin/log@0.1.0": crate::bindings::enricher::hub::plugin0_1_0::log,
                "hub:plugin/kv@0.1.0": crate::bindings::enricher::hub::plugin0_1_0::kv,
            },
        });
    }
    pub mod forecaster {
        wit_bindgen::generate!({
            path: "../wit",
            world: "hub:plugin/forecaster@0.1.0",
            pub_export_macro: true,
            export_macro_name: "export_forecaster_world",
            default_bindings_module: "hub_plugin_sdk::bindings::forecaster",
            with: {
                "hub:plugin/types@0.1.0": crate::bindings::enricher::hub::plugin0_1_0::types,
                "hub:plugin/log@0.1.0": crate::bindings::enricher::hub::plugin0_1_0::log,
            },
        });
    }
    // `sync`'s context crosses as flat arguments.
    #[allow(clippy::too_many_arguments)]
    pub mod integration {
        wit_bindgen::generate!({
            path: "../wit",
            world: "hub:plugin/integration@0.3.0",
            pub_export_macro: true,
            export_macro_name: "export_integration_world",
            default_bindings_module: "hub_plugin_sdk::bindings::integration",
            with: {
                "hub:plugin/types@0.1.0": crate::bindings::enricher::hub::plugin0_1_0::types,
                "hub:plugin/log@0.1.0": crate::bindings::enricher::hub::plugin0_1_0::log,
                "hub:plugin/kv@0.1.0": crate::bindings::enricher::hub::plugin0_1_0::kv,
                "wasi:http/types@0.2.12": crate::bindings::enricher::wasi::http::types,
                "wasi:http/outgoing-handler@0.2.12": crate::bindings::enricher::wasi::http::outgoing_handler,
                "wasi:io/streams@0.2.12": crate::bindings::enricher::wasi::io::streams,
                "wasi:io/poll@0.2.12": crate::bindings::enricher::wasi::io::poll,
                "wasi:io/error@0.2.12": crate::bindings::enricher::wasi::io::error,
                "wasi:clocks/monotonic-clock@0.2.12": crate::bindings::enricher::wasi::clocks::monotonic_clock,
            },
        });
    }
}

pub use bindings::enricher::hub::plugin0_1_0::types::{
    Alert as AlertV1, Anomaly, Forecast, Series, Severity, SyncReport,
};
/// An alert notice as a 0.3.0 integration gets it.
pub use bindings::integration::hub::plugin0_3_0::types::{
    Alert, AlertSeverity, AlertState, DayCost, GroupSpend, Spend, SyncContext, ViolationCount,
};

impl AlertSeverity {
    /// The hub's name of the severity (`debug`, `info`, `warning`, `error`, `critical`).
    pub fn as_str(self) -> &'static str {
        match self {
            AlertSeverity::Debug => "debug",
            AlertSeverity::Info => "info",
            AlertSeverity::Warning => "warning",
            AlertSeverity::Error => "error",
            AlertSeverity::Critical => "critical",
        }
    }

    /// The severity of a name `as_str` gives.
    pub fn parse(name: &str) -> Option<Self> {
        [
            AlertSeverity::Debug,
            AlertSeverity::Info,
            AlertSeverity::Warning,
            AlertSeverity::Error,
            AlertSeverity::Critical,
        ]
        .into_iter()
        .find(|s| s.as_str() == name)
    }
}

impl AlertState {
    /// `firing` or `resolved`.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Firing => "firing",
            AlertState::Resolved => "resolved",
        }
    }
}

/// Why a call failed; the message is shown to the tenant, so say what to do about it.
#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// The configuration cannot be used; name the field.
    BadConfig(String),
    /// Something the plugin depends on is not reachable now.
    Unavailable(String),
    /// A bug.
    Internal(String),
}

impl Error {
    pub fn bad_config(m: impl Into<String>) -> Self {
        Error::BadConfig(m.into())
    }
    pub fn unavailable(m: impl Into<String>) -> Self {
        Error::Unavailable(m.into())
    }
    pub fn internal(m: impl Into<String>) -> Self {
        Error::Internal(m.into())
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::BadConfig(m) => write!(f, "bad configuration: {m}"),
            Error::Unavailable(m) => write!(f, "unavailable: {m}"),
            Error::Internal(m) => write!(f, "internal error: {m}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<Error> for bindings::enricher::hub::plugin0_1_0::types::PluginError {
    fn from(e: Error) -> Self {
        use bindings::enricher::hub::plugin0_1_0::types::PluginError as P;
        match e {
            Error::BadConfig(m) => P::BadConfig(m),
            Error::Unavailable(m) => P::Unavailable(m),
            Error::Internal(m) => P::Internal(m),
        }
    }
}

/// Parses a configuration document into `T`, with errors that name the JSON path
/// (`discounts[0].percent: invalid type: string "x", expected f64`).
pub fn parse_config<T: serde::de::DeserializeOwned>(json: &str) -> Result<T, Error> {
    let de = &mut serde_json::Deserializer::from_str(json);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        if path == "." || path.is_empty() {
            Error::BadConfig(e.inner().to_string())
        } else {
            Error::BadConfig(format!("{path}: {}", e.inner()))
        }
    })
}

/// Adds columns to events before they are stored. See `wit/plugin.wit`, world `enricher`.
pub trait Enricher: Sized + 'static {
    /// The configuration, deserialized from the tenant's JSON.
    type Config: serde::de::DeserializeOwned;
    /// Builds the plugin from its configuration (called again on every configuration change).
    fn new(config: Self::Config) -> Result<Self, Error>;
    /// Adds patches for `batch` to `out`.
    fn enrich(&mut self, batch: &Batch, out: &mut Patches) -> Result<(), Error>;
    /// Off the ingest path, after `new` and every `refresh-interval-s`: fetch reference data.
    fn refresh(&mut self) -> Result<SyncReport, Error> {
        Ok(SyncReport {
            items: 0,
            message: "nothing to refresh".into(),
        })
    }
}

/// Finds anomalies in metric series. See world `detector`.
pub trait Detector: Sized + 'static {
    type Config: serde::de::DeserializeOwned;
    fn new(config: Self::Config) -> Result<Self, Error>;
    fn detect(&mut self, series: &[Series]) -> Result<Vec<Anomaly>, Error>;
}

/// Predicts metric series. See world `forecaster`.
pub trait Forecaster: Sized + 'static {
    type Config: serde::de::DeserializeOwned;
    fn new(config: Self::Config) -> Result<Self, Error>;
    fn forecast(&mut self, series: &[Series], horizon: u32) -> Result<Vec<Forecast>, Error>;
}

/// A forecaster's answer for every series it can forecast: `predict` gives a series' means,
/// lower and upper bounds (`horizon` of each) or declines (`None`: the series is left out), and
/// each answer is placed on the series' next `horizon` steps after its last point.
pub fn forecast_each(
    input: &[Series],
    horizon: u32,
    mut predict: impl FnMut(&Series) -> Option<(Vec<f64>, Vec<f64>, Vec<f64>)>,
) -> Vec<Forecast> {
    input
        .iter()
        .enumerate()
        .filter_map(|(i, s)| {
            let last = *s.ts_ms.last()?;
            let (mean, lower, upper) = predict(s)?;
            let step = i64::from(s.step_ms);
            Some(Forecast {
                series: i as u32,
                ts_ms: (1..=i64::from(horizon)).map(|k| last + step * k).collect(),
                mean,
                lower,
                upper,
            })
        })
        .collect()
}

/// Talks to other systems: receives alert notices, and brings records in as events. See
/// `wit/deps/hub-plugin-0.3.0`, world `integration` (plugin.toml:
/// `world = "hub:plugin/integration@0.3.0"`).
pub trait Integration: Sized + 'static {
    type Config: serde::de::DeserializeOwned;
    fn new(config: Self::Config) -> Result<Self, Error>;
    /// Delivers a batch of alert notices; [`Error::Unavailable`] is retried with backoff.
    fn on_alerts(&mut self, alerts: &[Alert]) -> Result<(), Error>;
    /// Every `refresh-interval-s` (once across the hub's replicas): push the hub's numbers out
    /// (`context`: the month's spend, its projection, the last days' cost), or pull records in
    /// as events with [`Events::push`]. Keep a cursor in [`kv`]: it is persisted only once the
    /// hub has stored the events.
    fn sync(&mut self, context: &SyncContext, events: &mut Events) -> Result<SyncReport, Error> {
        let _ = (context, events);
        Ok(SyncReport {
            items: 0,
            message: "nothing to sync".into(),
        })
    }
}

/// The events a `sync` brings in: each one a JSON document in a shape `POST /v1/events`
/// accepts, checked by the hub as REST ingest checks it.
#[derive(Debug, Default)]
pub struct Events {
    docs: Vec<String>,
    more: bool,
}

impl Events {
    /// Events the hub takes from one `sync` call at most.
    pub const MAX: usize = 10_000;

    /// Adds one event. Give it an `event_id` that is stable across syncs (the record's id in the
    /// other system), so that a record synced twice is stored once.
    pub fn push(&mut self, event: &serde_json::Value) {
        self.docs.push(event.to_string());
    }

    /// Events pushed so far.
    pub fn len(&self) -> usize {
        self.docs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.docs.is_empty()
    }

    /// Whether another event fits in this call.
    pub fn has_room(&self) -> bool {
        self.docs.len() < Self::MAX
    }

    /// Says there is more to bring in now: the hub calls `sync` again at once (up to 10 calls
    /// in a row).
    pub fn more(&mut self) {
        self.more = true;
    }

    #[doc(hidden)]
    pub fn into_parts(self) -> (Vec<String>, bool) {
        (self.docs, self.more)
    }
}

/// Exports an [`Enricher`] as the component's `enricher` world.
#[macro_export]
macro_rules! export_enricher {
    ($t:ty) => {
        $crate::__export_world!($t, Enricher, export_enricher_world, enricher, {
            fn enrich(
                batch: $crate::bindings::enricher::hub::plugin0_2_0::types::EventBatch,
            ) -> Result<
                $crate::bindings::enricher::hub::plugin0_1_0::types::Enrichment,
                $crate::glue::PluginError,
            > {
                $crate::glue::enrich(&__HUB_PLUGIN, batch)
            }
            fn refresh() -> Result<$crate::SyncReport, $crate::glue::PluginError> {
                $crate::glue::with(&__HUB_PLUGIN, |p: &mut $t| {
                    <$t as $crate::Enricher>::refresh(p)
                })
            }
        });
    };
}

/// Exports a [`Detector`] as the component's `detector` world.
#[macro_export]
macro_rules! export_detector {
    ($t:ty) => {
        $crate::__export_world!($t, Detector, export_detector_world, detector, {
            fn detect(
                input: Vec<$crate::Series>,
            ) -> Result<Vec<$crate::Anomaly>, $crate::glue::PluginError> {
                $crate::glue::with(&__HUB_PLUGIN, |p: &mut $t| {
                    <$t as $crate::Detector>::detect(p, &input)
                })
            }
        });
    };
}

/// Exports a [`Forecaster`] as the component's `forecaster` world.
#[macro_export]
macro_rules! export_forecaster {
    ($t:ty) => {
        $crate::__export_world!($t, Forecaster, export_forecaster_world, forecaster, {
            fn forecast(
                input: Vec<$crate::Series>,
                horizon: u32,
            ) -> Result<Vec<$crate::Forecast>, $crate::glue::PluginError> {
                $crate::glue::with(&__HUB_PLUGIN, |p: &mut $t| {
                    <$t as $crate::Forecaster>::forecast(p, &input, horizon)
                })
            }
        });
    };
}

/// Exports an [`Integration`] as the component's `hub:plugin/integration@0.3.0` world.
#[macro_export]
macro_rules! export_integration {
    ($t:ty) => {
        $crate::__export_world!($t, Integration, export_integration_world, integration, {
            fn on_alerts(alerts: Vec<$crate::Alert>) -> Result<(), $crate::glue::PluginError> {
                $crate::glue::with(&__HUB_PLUGIN, |p: &mut $t| {
                    <$t as $crate::Integration>::on_alerts(p, &alerts)
                })
            }
            fn sync(
                context: $crate::SyncContext,
            ) -> Result<
                $crate::bindings::integration::hub::plugin0_3_0::types::SyncOutput,
                $crate::glue::PluginError,
            > {
                $crate::glue::sync(&__HUB_PLUGIN, |p: &mut $t, events| {
                    <$t as $crate::Integration>::sync(p, &context, events)
                })
            }
        });
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __export_world {
    ($t:ty, $trait:ident, $export:ident, $world:ident, { $($fns:tt)* }) => {
        // Only components export: a native build of the crate (its unit tests, a benchmark that
        // links several plugins) has no exports, so their symbols never collide.
        #[cfg(target_arch = "wasm32")]
        #[doc(hidden)]
        mod __hub_plugin_export {
            #[allow(unused_imports)]
            use super::*;
            thread_local! {
                static __HUB_PLUGIN: ::std::cell::RefCell<Option<$t>> = const { ::std::cell::RefCell::new(None) };
            }
            struct __HubPluginExports;
            impl $crate::bindings::$world::Guest for __HubPluginExports {
                fn configure(config: String) -> Result<(), $crate::glue::PluginError> {
                    $crate::glue::configure(&__HUB_PLUGIN, &config, |c| <$t as $crate::$trait>::new(c))
                }
                $($fns)*
            }
            $crate::bindings::$world::$export!(__HubPluginExports with_types_in $crate::bindings::$world);
        }
    };
}
