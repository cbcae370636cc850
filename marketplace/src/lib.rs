//! Plugin packages and their manifests. This crate imports no host crate: the host validates a
//! component with its runtime and then hands it here.

pub mod manifest;

pub use manifest::{Capabilities, Limits, Manifest, ManifestError, PluginKind};

/// The SHA-256 of `bytes` as lowercase hex: how components are named everywhere.
pub fn digest(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}
