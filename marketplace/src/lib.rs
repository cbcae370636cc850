//! Plugin packages: the `plugin.toml` manifest, the `.hubpkg` package format, digests, ed25519
//! publisher keys and signatures, and README rendering for the catalog. This crate imports no
//! host crate: the host validates a component with its runtime and then stores it.

pub mod http_host;
pub mod keys;
pub mod manifest;
pub mod package;
pub mod readme;
pub mod series;

pub use http_host::HttpHost;
pub use keys::{KeyError, PublicKey, SecretKey};
pub use manifest::{Capabilities, Limits, Manifest, ManifestError, PluginKind};
pub use package::{Package, PackageError, Signature};
pub use series::SeriesSettings;

/// The SHA-256 of `bytes` as lowercase hex.
pub fn digest(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// What names a plugin everywhere in the host (stored components, installs): the SHA-256 over
/// its manifest's and its component's SHA-256. Two versions may ship the same component with
/// different manifests (a new schema, new limits); they are different plugins.
pub fn plugin_digest(manifest: &str, component: &[u8]) -> String {
    digest(
        format!(
            "hub-plugin-v1\n{}\n{}\n",
            digest(manifest.as_bytes()),
            digest(component)
        )
        .as_bytes(),
    )
}
