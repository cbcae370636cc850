//! What the export macros call: keeps the plugin value between calls and turns SDK types into
//! WIT types. Not part of the public API.

use std::cell::RefCell;
use std::thread::LocalKey;

use crate::bindings::enricher::hub::plugin0_1_0::types::Enrichment;
pub use crate::bindings::enricher::hub::plugin0_1_0::types::PluginError;
use crate::bindings::enricher::hub::plugin0_2_0::types::EventBatch;
use crate::{Batch, Error, Patches};

type Slot<T> = LocalKey<RefCell<Option<T>>>;

/// Parses the configuration and builds the plugin; on failure the previous plugin value is kept.
pub fn configure<T, C: serde::de::DeserializeOwned>(
    slot: &'static Slot<T>,
    config: &str,
    new: impl FnOnce(C) -> Result<T, Error>,
) -> Result<(), PluginError> {
    let config = crate::parse_config::<C>(if config.trim().is_empty() {
        "{}"
    } else {
        config
    })?;
    let plugin = new(config)?;
    slot.with(|s| *s.borrow_mut() = Some(plugin));
    Ok(())
}

/// Runs `f` on the configured plugin.
pub fn with<T, R>(
    slot: &'static Slot<T>,
    f: impl FnOnce(&mut T) -> Result<R, Error>,
) -> Result<R, PluginError> {
    slot.with(|s| match s.borrow_mut().as_mut() {
        Some(p) => f(p).map_err(PluginError::from),
        None => Err(PluginError::Internal(
            "called before configure: the host must configure the plugin first".into(),
        )),
    })
}

pub fn enrich<T: crate::Enricher>(
    slot: &'static Slot<T>,
    batch: EventBatch,
) -> Result<Enrichment, PluginError> {
    let batch = Batch::new(batch);
    let mut out = Patches::with_capacity(batch.len());
    with(slot, |p| p.enrich(&batch, &mut out))?;
    Ok(out.into_inner())
}

/// Runs the plugin's `sync` and hands its events to the host.
pub fn sync<T>(
    slot: &'static Slot<T>,
    f: impl FnOnce(&mut T, &mut crate::Events) -> Result<crate::SyncReport, Error>,
) -> Result<crate::bindings::integration::hub::plugin0_3_0::types::SyncOutput, PluginError> {
    let mut events = crate::Events::default();
    let report = with(slot, |p| f(p, &mut events))?;
    let (events, more) = events.into_parts();
    Ok(
        crate::bindings::integration::hub::plugin0_3_0::types::SyncOutput {
            report,
            events,
            more,
        },
    )
}
