//! Messages into the host's logs, tagged with tenant and plugin. The host keeps 4 KiB of a message
//! and 100 messages per call.

use crate::bindings::enricher::hub::plugin0_1_0::log::{Level, log};

pub fn debug(message: &str) {
    log(Level::Debug, message)
}
pub fn info(message: &str) {
    log(Level::Info, message)
}
pub fn warn(message: &str) {
    log(Level::Warn, message)
}
pub fn error(message: &str) {
    log(Level::Error, message)
}
