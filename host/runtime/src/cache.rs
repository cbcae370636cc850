//! Compiled components on disk, so that a restart deserializes (~0.1 ms) instead of compiling
//! (tens of milliseconds to seconds).
//!
//! A file is named `<component sha256>-<engine fingerprint>.cwasm`; the fingerprint covers the
//! wasmtime version and every engine setting that affects code generation, so an upgrade or a
//! configuration change misses the cache rather than loading incompatible code. Each file starts
//! with a magic line and the SHA-256 of the artifact that follows, checked before
//! deserializing: only artifacts this engine wrote, intact, are ever turned back into code.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use crate::{LoadError, WASMTIME_VERSION, compile};

const MAGIC: &[u8] = b"hub-cwasm-1\n";

pub struct ArtifactCache {
    dir: PathBuf,
    fingerprint: String,
}

/// Feeds `Hash` output into SHA-256 (stable across processes, unlike `DefaultHasher`).
struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn finish(&self) -> u64 {
        0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

impl ArtifactCache {
    pub fn open(dir: &Path, engine: &Engine) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("creating the component cache {}: {e}", dir.display()))?;
        let mut h = ShaHasher(Sha256::new());
        WASMTIME_VERSION.hash(&mut h);
        engine.precompile_compatibility_hash().hash(&mut h);
        let fingerprint = hex::encode(&h.0.finalize()[..8]);
        Ok(Self {
            dir: dir.to_path_buf(),
            fingerprint,
        })
    }

    fn path(&self, digest: &str) -> PathBuf {
        self.dir
            .join(format!("{digest}-{}.cwasm", self.fingerprint))
    }

    /// The component for `digest`, from the cache when a valid artifact is there, else compiled
    /// from `wasm` and written to the cache. The flag says whether the cache answered.
    pub fn get_or_compile(
        &self,
        engine: &Engine,
        digest: &str,
        wasm: &[u8],
    ) -> Result<(Component, bool), LoadError> {
        let path = self.path(digest);
        if let Ok(bytes) = std::fs::read(&path) {
            if let Some(artifact) = verified(&bytes) {
                // SAFETY: `artifact` is exactly what `Component::serialize` of an engine with this
                // fingerprint (same wasmtime version and settings) wrote into this private cache
                // directory: the SHA-256 written in front of it matches, so it is neither
                // truncated nor altered, and files written by other engines have other names.
                #[allow(unsafe_code)]
                let loaded = unsafe { Component::deserialize(engine, artifact) };
                match loaded {
                    Ok(c) => return Ok((c, true)),
                    Err(e) => {
                        tracing::warn!(path = %path.display(), error = %e, "discarding an unusable cached component")
                    }
                }
            } else {
                tracing::warn!(path = %path.display(), "discarding a corrupt cached component");
            }
            let _ = std::fs::remove_file(&path);
        }
        let component = compile(engine, wasm)?;
        let artifact = component
            .serialize()
            .map_err(|e| LoadError::Cache(e.to_string()))?;
        let mut file = Vec::with_capacity(MAGIC.len() + 32 + artifact.len());
        file.extend_from_slice(MAGIC);
        file.extend_from_slice(&Sha256::digest(&artifact));
        file.extend_from_slice(&artifact);
        let tmp = self.dir.join(format!(
            ".{digest}-{}.{}.tmp",
            self.fingerprint,
            std::process::id()
        ));
        let written = std::fs::write(&tmp, &file).and_then(|_| std::fs::rename(&tmp, &path));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            tracing::warn!(path = %path.display(), error = %e, "could not write the component cache");
        }
        Ok((component, false))
    }
}

fn verified(bytes: &[u8]) -> Option<&[u8]> {
    let rest = bytes.strip_prefix(MAGIC)?;
    if rest.len() < 32 {
        return None;
    }
    let (sum, artifact) = rest.split_at(32);
    (Sha256::digest(artifact)[..] == *sum).then_some(artifact)
}
