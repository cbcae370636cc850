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

use crate::{LoadError, WASMTIME_VERSION, compile, heap};

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
    /// by `compile` and written to the cache. The flag says whether the cache answered.
    pub fn get_or_compile(
        &self,
        engine: &Engine,
        digest: &str,
        compile: impl FnOnce() -> Result<Vec<u8>, LoadError>,
    ) -> Result<(Component, bool), LoadError> {
        let path = self.path(digest);
        if let Ok(bytes) = std::fs::read(&path) {
            // Only an artifact this engine's settings wrote into this private directory, intact
            // (the SHA-256 written in front of it matches), is turned back into code; files
            // written by other engines have other names.
            match verified(&bytes).map(|artifact| compile::load(engine, artifact)) {
                Some(Ok(c)) => return Ok((c, true)),
                Some(Err(e)) => {
                    tracing::warn!(path = %path.display(), error = %e, "discarding an unusable cached component")
                }
                None => {
                    tracing::warn!(path = %path.display(), "discarding a corrupt cached component")
                }
            }
            let _ = std::fs::remove_file(&path);
        }
        let artifact = compile()?;
        let component = compile::load(engine, &artifact)?;
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
        drop((file, artifact));
        heap::return_free_heap();
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
