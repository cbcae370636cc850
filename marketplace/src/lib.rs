//! Plugin packages: the `plugin.toml` manifest, the `.hubpkg` package format, digests, ed25519
//! publisher keys and signatures, and README rendering for the catalog. This crate imports no
//! host crate: the host validates a component with its runtime and then stores it.

pub mod keys;
pub mod manifest;
pub mod package;
pub mod readme;

pub use keys::{KeyError, PublicKey, SecretKey};
pub use manifest::{Capabilities, Limits, Manifest, ManifestError, PluginKind};
pub use package::{Package, PackageError, Signature};

/// The SHA-256 of `bytes` as lowercase hex: how components are named everywhere.
pub fn digest(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}
