//! The `log` import: a plugin's messages go to the hub's log under its tenant and name, cut to
//! [`MAX_LOG_BYTES`], at most [`MAX_LOGS_PER_CALL`] per call (the rest counted as dropped).

use crate::bindings::log;

use super::HostState;

/// Log messages longer than this are cut.
pub const MAX_LOG_BYTES: usize = 4096;
/// Log messages per call beyond this are dropped (and counted).
pub const MAX_LOGS_PER_CALL: u32 = 100;

impl log::Host for HostState {
    fn log(&mut self, level: log::Level, message: String) {
        self.logs_this_call += 1;
        if self.logs_this_call > MAX_LOGS_PER_CALL {
            self.logs_dropped += 1;
            return;
        }
        let mut message = message;
        if message.len() > MAX_LOG_BYTES {
            let mut cut = MAX_LOG_BYTES;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push('…');
        }
        let (tenant, plugin) = (self.owner.tenant.as_str(), self.owner.plugin.as_str());
        match level {
            log::Level::Debug => tracing::debug!(tenant, plugin, "{message}"),
            log::Level::Info => tracing::info!(tenant, plugin, "{message}"),
            log::Level::Warn => tracing::warn!(tenant, plugin, "{message}"),
            log::Level::Error => tracing::error!(tenant, plugin, "{message}"),
        }
    }
}
