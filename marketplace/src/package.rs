//! The package format: one `.hubpkg` file, a gzip-compressed tar archive holding
//!
//! | entry | |
//! |---|---|
//! | `plugin.toml` | the manifest (UTF-8, at most 64 KiB) |
//! | `component.wasm` | the WebAssembly component |
//! | `README.md` | what the plugin does and how to configure it (UTF-8, at most 256 KiB) |
//! | `icon.png` | optional, a PNG of at most 256 KiB |
//! | `signature.json` | `{"algorithm": "ed25519", "key_id", "digest", "signature"}` |
//!
//! The package digest is the SHA-256 of a fixed text naming each entry with its own SHA-256, so
//! it does not depend on how the archive was compressed or ordered. The publisher signs
//! `hub-package-v1:<digest>`; any change to any entry changes the digest and breaks the
//! signature. Reading a package checks its size, the archive's layout and every entry's limits
//! before anything else looks at it.

use std::io::Read;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use sha2::Digest;

use crate::keys::{PublicKey, SecretKey};

/// Packages larger than this (compressed) are refused unless the operator sets another limit.
pub const DEFAULT_MAX_PACKAGE_BYTES: usize = 20 * 1024 * 1024;
pub const MAX_README_BYTES: usize = 256 * 1024;
pub const MAX_ICON_BYTES: usize = 256 * 1024;
/// The file name extension of packages.
pub const EXTENSION: &str = "hubpkg";

const MANIFEST: &str = "plugin.toml";
const COMPONENT: &str = "component.wasm";
const README: &str = "README.md";
const ICON: &str = "icon.png";
const SIGNATURE: &str = "signature.json";
const ENTRIES: [&str; 5] = [MANIFEST, COMPONENT, README, ICON, SIGNATURE];

/// Who signed a package, and what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signature {
    /// Always `ed25519`.
    pub algorithm: String,
    /// The signing key's id (see [`PublicKey::key_id`]).
    pub key_id: String,
    /// The package digest that was signed.
    pub digest: String,
    /// Base64 of the 64-byte signature.
    pub signature: String,
}

/// A package in memory.
#[derive(Debug, Clone, PartialEq)]
pub struct Package {
    pub manifest: String,
    pub component: Vec<u8>,
    pub readme: String,
    pub icon: Option<Vec<u8>>,
    pub signature: Option<Signature>,
}

/// Why a package was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PackageError {
    #[error("the package is {size} bytes; the limit is {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error("the package is not a .hubpkg (a gzip-compressed tar archive): {0}")]
    NotAnArchive(String),
    #[error("package entry `{entry}`: {message}")]
    Entry { entry: String, message: String },
    #[error("the package has no `{0}`")]
    Missing(&'static str),
    #[error("the package is not signed (no signature.json): sign it with `hub plugin pack --key`")]
    Unsigned,
    #[error(
        "the package's contents do not match its signature: digest {actual}, signed digest {signed} (the component, manifest, README or icon changed after signing)"
    )]
    DigestMismatch { signed: String, actual: String },
    #[error(
        "the signature does not verify with publisher key {0}: the package was altered or signed by another key"
    )]
    BadSignature(String),
    #[error(
        "the package has {count} bytes after the end of its {part} (a package ends there; rebuild it with `hub plugin author pack`)"
    )]
    TrailingBytes { part: &'static str, count: String },
}

/// Tar writers pad an archive with zeros up to a whole record of this many bytes.
const TAR_RECORD: u64 = 10240;

/// Refuses bytes after the archive: after the tar end-of-archive blocks only the zero padding
/// to a whole record is allowed, and nothing may follow the gzip stream. Without this a hidden
/// second archive, or a gigabyte of zeros, would be stored and served under the digest of the
/// clean entries in front of it.
fn check_trailing(
    mut rest: std::io::Take<flate2::bufread::GzDecoder<&[u8]>>,
    limit: u64,
    data_end: u64,
) -> Result<(), PackageError> {
    let consumed = limit - rest.limit();
    // What tar read past the entries was the zero block that ended its listing.
    let mut total = consumed;
    let mut nonzero = false;
    let mut buf = [0u8; 8192];
    loop {
        let n = rest
            .read(&mut buf)
            .map_err(|e| PackageError::NotAnArchive(e.to_string()))?;
        if n == 0 {
            break;
        }
        nonzero |= buf[..n].iter().any(|b| *b != 0);
        total += n as u64;
    }
    let marker_end = data_end + 1024;
    let allowed = marker_end.div_ceil(TAR_RECORD) * TAR_RECORD;
    if nonzero || total > allowed {
        let count = total.saturating_sub(marker_end);
        return Err(PackageError::TrailingBytes {
            part: "tar archive",
            count: if rest.limit() == 0 {
                format!("at least {count}")
            } else {
                count.to_string()
            },
        });
    }
    let after_gzip = rest.into_inner().into_inner();
    if !after_gzip.is_empty() {
        return Err(PackageError::TrailingBytes {
            part: "gzip stream",
            count: after_gzip.len().to_string(),
        });
    }
    Ok(())
}

fn entry_err(entry: &str, message: impl Into<String>) -> PackageError {
    PackageError::Entry {
        entry: entry.to_string(),
        message: message.into(),
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

impl Package {
    pub fn new(
        manifest: String,
        component: Vec<u8>,
        readme: String,
        icon: Option<Vec<u8>>,
    ) -> Self {
        Package {
            manifest,
            component,
            readme,
            icon,
            signature: None,
        }
    }

    /// The package digest: SHA-256 (hex) over each entry's name and SHA-256.
    pub fn digest(&self) -> String {
        let mut text = String::from("hub-package-v1\n");
        for (name, bytes) in [
            (MANIFEST, Some(self.manifest.as_bytes())),
            (COMPONENT, Some(self.component.as_slice())),
            (README, Some(self.readme.as_bytes())),
            (ICON, self.icon.as_deref()),
        ] {
            let hash = bytes.map(sha256_hex).unwrap_or_else(|| "-".into());
            text.push_str(&format!("{name} {hash}\n"));
        }
        sha256_hex(text.as_bytes())
    }

    /// The SHA-256 of the component alone (how the runtime names components).
    pub fn component_digest(&self) -> String {
        sha256_hex(&self.component)
    }

    fn signed_message(digest: &str) -> Vec<u8> {
        format!("hub-package-v1:{digest}").into_bytes()
    }

    /// Signs the package with `key` (replacing any signature).
    pub fn sign(&mut self, key: &SecretKey) {
        let digest = self.digest();
        self.signature = Some(Signature {
            algorithm: "ed25519".into(),
            key_id: key.public().key_id(),
            signature: B64.encode(key.sign(&Self::signed_message(&digest))),
            digest,
        });
    }

    /// The signature, once its digest matches the contents (the key is checked by [`verify`]).
    ///
    /// [`verify`]: Package::verify
    pub fn signature(&self) -> Result<&Signature, PackageError> {
        let sig = self.signature.as_ref().ok_or(PackageError::Unsigned)?;
        if sig.algorithm != "ed25519" {
            return Err(entry_err(
                SIGNATURE,
                format!(
                    "algorithm `{}` is not supported (ed25519 is)",
                    sig.algorithm
                ),
            ));
        }
        let actual = self.digest();
        if sig.digest != actual {
            return Err(PackageError::DigestMismatch {
                signed: sig.digest.clone(),
                actual,
            });
        }
        Ok(sig)
    }

    /// Checks that the contents are what `key` signed.
    pub fn verify(&self, key: &PublicKey) -> Result<(), PackageError> {
        let sig = self.signature()?;
        let bad = || PackageError::BadSignature(sig.key_id.clone());
        if sig.key_id != key.key_id() {
            return Err(bad());
        }
        let bytes = B64.decode(&sig.signature).map_err(|_| bad())?;
        if key.verifies(&Self::signed_message(&sig.digest), &bytes) {
            Ok(())
        } else {
            Err(bad())
        }
    }

    /// Writes the `.hubpkg` archive (entries in a fixed order, no timestamps or owners).
    pub fn to_bytes(&self) -> Vec<u8> {
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        let mut tar = tar::Builder::new(gz);
        let signature = self
            .signature
            .as_ref()
            .map(|s| serde_json::to_vec_pretty(s).expect("a signature serializes"));
        let entries: [(&str, Option<&[u8]>); 5] = [
            (MANIFEST, Some(self.manifest.as_bytes())),
            (COMPONENT, Some(&self.component)),
            (README, Some(self.readme.as_bytes())),
            (ICON, self.icon.as_deref()),
            (SIGNATURE, signature.as_deref()),
        ];
        for (name, bytes) in entries {
            let Some(bytes) = bytes else { continue };
            let mut header = tar::Header::new_ustar();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_mtime(0);
            header.set_entry_type(tar::EntryType::Regular);
            tar.append_data(&mut header, name, bytes)
                .expect("writing to memory cannot fail");
        }
        tar.into_inner()
            .and_then(|gz| gz.finish())
            .expect("writing to memory cannot fail")
    }

    /// Reads a `.hubpkg`, refusing anything over `max_bytes` (compressed, and each entry
    /// uncompressed), entries it does not know, duplicates, links and missing parts.
    pub fn from_bytes(bytes: &[u8], max_bytes: usize) -> Result<Package, PackageError> {
        if bytes.len() > max_bytes {
            return Err(PackageError::TooLarge {
                size: bytes.len(),
                limit: max_bytes,
            });
        }
        if !bytes.starts_with(&[0x1f, 0x8b]) {
            return Err(PackageError::NotAnArchive(
                "it does not start with the gzip magic bytes".into(),
            ));
        }
        // A decompression bomb stops at the limit of the whole (four times the package limit).
        let limit = (max_bytes as u64).saturating_mul(4);
        // bufread's decoder reads the slice itself, so what follows the gzip stream stays in it.
        let mut archive = tar::Archive::new(flate2::bufread::GzDecoder::new(bytes).take(limit));
        // Where the last entry's data (padded to a block) ends: the end-of-archive blocks follow.
        let mut data_end = 0u64;
        let mut found: [Option<Vec<u8>>; 5] = Default::default();
        let not_archive = |e: std::io::Error| PackageError::NotAnArchive(e.to_string());
        for entry in archive.entries().map_err(not_archive)? {
            let mut entry = entry.map_err(not_archive)?;
            let path = entry.path().map_err(not_archive)?;
            let name = path.to_string_lossy().trim_start_matches("./").to_string();
            let Some(slot) = ENTRIES.iter().position(|e| *e == name) else {
                return Err(entry_err(
                    &name,
                    format!(
                        "is not part of a package (a package holds {})",
                        ENTRIES.join(", ")
                    ),
                ));
            };
            if entry.header().entry_type() != tar::EntryType::Regular {
                return Err(entry_err(&name, "is not a regular file"));
            }
            if found[slot].is_some() {
                return Err(entry_err(&name, "appears twice"));
            }
            let cap = match ENTRIES[slot] {
                MANIFEST => crate::manifest::MAX_MANIFEST_BYTES,
                README => MAX_README_BYTES,
                ICON => MAX_ICON_BYTES,
                SIGNATURE => 4096,
                _ => max_bytes,
            };
            let size = entry.header().size().map_err(not_archive)?;
            if size > cap as u64 {
                return Err(entry_err(
                    &name,
                    format!("is {size} bytes; the limit is {cap}"),
                ));
            }
            let mut data = Vec::with_capacity(size as usize);
            (&mut entry)
                .take((cap as u64).saturating_add(1))
                .read_to_end(&mut data)
                .map_err(not_archive)?;
            if data.len() as u64 != size {
                return Err(entry_err(&name, "is truncated"));
            }
            data_end = data_end.max((entry.raw_file_position() + size).div_ceil(512) * 512);
            found[slot] = Some(data);
        }
        check_trailing(archive.into_inner(), limit, data_end)?;
        let [manifest, component, readme, icon, signature] = found;
        let text = |entry: &str, bytes: Vec<u8>| {
            String::from_utf8(bytes).map_err(|e| entry_err(entry, format!("is not UTF-8: {e}")))
        };
        let manifest = text(MANIFEST, manifest.ok_or(PackageError::Missing(MANIFEST))?)?;
        let component = component.ok_or(PackageError::Missing(COMPONENT))?;
        let readme = text(README, readme.ok_or(PackageError::Missing(README))?)?;
        if let Some(icon) = &icon
            && !icon.starts_with(b"\x89PNG\r\n\x1a\n")
        {
            return Err(entry_err(ICON, "is not a PNG image"));
        }
        let signature = signature
            .map(|s| {
                serde_json::from_slice::<Signature>(&s)
                    .map_err(|e| entry_err(SIGNATURE, format!("is not a signature: {e}")))
            })
            .transpose()?;
        Ok(Package {
            manifest,
            component,
            readme,
            icon,
            signature,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Package {
        Package::new(
            "name = \"x\"\n".into(),
            b"\0asm\x0d\0\x01\0".to_vec(),
            "# x\n".into(),
            None,
        )
    }

    #[test]
    fn packages_round_trip_and_verify() {
        let key = SecretKey::generate();
        let mut p = sample();
        p.sign(&key);
        let bytes = p.to_bytes();
        let back = Package::from_bytes(&bytes, DEFAULT_MAX_PACKAGE_BYTES).unwrap();
        assert_eq!(back, p);
        back.verify(&key.public()).unwrap();
        // Deterministic: the same contents give the same archive.
        assert_eq!(p.to_bytes(), bytes);
    }

    #[test]
    fn tampering_is_caught() {
        let key = SecretKey::generate();
        let mut p = sample();
        p.sign(&key);
        let mut changed = p.clone();
        changed.component.push(0);
        assert!(matches!(
            changed.verify(&key.public()),
            Err(PackageError::DigestMismatch { .. })
        ));
        let mut changed = p.clone();
        changed.manifest.push('#');
        assert!(matches!(
            changed.verify(&key.public()),
            Err(PackageError::DigestMismatch { .. })
        ));
        // Contents and digest changed together: the signature no longer fits.
        let mut forged = p.clone();
        forged.readme.push('!');
        forged.signature.as_mut().unwrap().digest = forged.digest();
        assert!(matches!(
            forged.verify(&key.public()),
            Err(PackageError::BadSignature(_))
        ));
        // Another key.
        let other = SecretKey::generate();
        assert!(matches!(
            p.verify(&other.public()),
            Err(PackageError::BadSignature(_))
        ));
        // No signature.
        let unsigned = sample();
        assert_eq!(unsigned.verify(&key.public()), Err(PackageError::Unsigned));
    }

    #[test]
    fn bad_archives_name_the_problem() {
        let p = sample().to_bytes();
        assert!(matches!(
            Package::from_bytes(&p, 10),
            Err(PackageError::TooLarge { limit: 10, .. })
        ));
        assert!(matches!(
            Package::from_bytes(b"not a package", 1000),
            Err(PackageError::NotAnArchive(_))
        ));
        // An archive with an entry no package has: build one by hand.
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut tar = tar::Builder::new(gz);
        for (name, data) in [
            ("plugin.toml", &b"x"[..]),
            ("component.wasm", b"y"),
            ("extra.sh", b"z"),
        ] {
            let mut h = tar::Header::new_ustar();
            h.set_size(data.len() as u64);
            h.set_entry_type(tar::EntryType::Regular);
            tar.append_data(&mut h, name, data).unwrap();
        }
        let bytes = tar.into_inner().unwrap().finish().unwrap();
        let e = Package::from_bytes(&bytes, 1 << 20).unwrap_err();
        assert!(e.to_string().contains("extra.sh"), "{e}");
        let mut icon = sample();
        icon.icon = Some(b"GIF89a".to_vec());
        let e = Package::from_bytes(&icon.to_bytes(), 1 << 20).unwrap_err();
        assert!(e.to_string().contains("icon.png"), "{e}");
    }

    /// Gzip-compresses `tar` the way `to_bytes` does.
    fn gz(tar: &[u8]) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, tar).unwrap();
        gz.finish().unwrap()
    }

    fn raw_tar(p: &Package) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&p.to_bytes()[..])
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn bytes_after_the_archive_are_refused() {
        let key = SecretKey::generate();
        let mut p = sample();
        p.sign(&key);
        let clean = raw_tar(&p);
        // Our own packages, and a tar writer's padding to a whole 10240-byte record, parse.
        assert_eq!(Package::from_bytes(&p.to_bytes(), 1 << 20).unwrap(), p);
        let mut padded = clean.clone();
        padded.resize(clean.len().div_ceil(10240) * 10240, 0);
        assert!(padded.len() > clean.len());
        assert_eq!(Package::from_bytes(&gz(&padded), 1 << 20).unwrap(), p);

        // A hidden second archive after the end-of-archive blocks.
        let mut other = sample();
        other.readme = "# hidden\n".into();
        let mut hidden = clean.clone();
        hidden.extend_from_slice(&raw_tar(&other));
        let e = Package::from_bytes(&gz(&hidden), 1 << 20).unwrap_err();
        assert!(
            matches!(
                &e,
                PackageError::TrailingBytes {
                    part: "tar archive",
                    ..
                }
            ),
            "{e}"
        );
        assert!(
            e.to_string().contains("after the end of its tar archive"),
            "{e}"
        );

        // Zeros beyond the record padding: the error says how many bytes trailed.
        let mut zeros = padded.clone();
        zeros.resize(padded.len() + 3 * 10240, 0);
        let e = Package::from_bytes(&gz(&zeros), 1 << 20).unwrap_err();
        let trailing = zeros.len() - clean.len();
        assert!(
            e.to_string()
                .contains(&format!("has {trailing} bytes after")),
            "{e}"
        );

        // Anything after the gzip stream: a second gzip member or plain bytes.
        for extra in [gz(&raw_tar(&other)), b"junk".to_vec()] {
            let mut bytes = p.to_bytes();
            bytes.extend_from_slice(&extra);
            let e = Package::from_bytes(&bytes, 1 << 20).unwrap_err();
            assert_eq!(
                e,
                PackageError::TrailingBytes {
                    part: "gzip stream",
                    count: extra.len().to_string()
                }
            );
        }
    }
}
