//! Compiled components on disk, so that a restart deserializes (~0.1 ms) instead of compiling
//! (tens of milliseconds to seconds).
//!
//! A file is named `<component sha256>-<engine fingerprint>.cwasm`; the fingerprint covers the
//! wasmtime version and every engine setting that affects code generation, so an upgrade or a
//! configuration change misses the cache rather than loading incompatible code. Each file starts
//! with a magic line and the SHA-256 of the artifact that follows, checked before
//! deserializing: only artifacts this engine wrote, intact, are ever turned back into code.
//!
//! The checksum catches corruption, not forgery: anyone who can write into the directory can write
//! a file with a matching checksum, and a deserialized artifact is machine code run as is. So the
//! directory must be private: created owner-only, and refused at start when another user owns it or
//! may write into it (one that others may only read is made owner-only); a file in it that another
//! user owns or may write, or that is not a regular file, is discarded rather than loaded.

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
        private_dir(dir)?;
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
        if let Some(why) = untrusted_file(&path) {
            tracing::warn!(path = %path.display(), "discarding a cached component: {why}");
            let _ = std::fs::remove_file(&path);
        } else if let Ok(bytes) = std::fs::read(&path) {
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

/// The process's effective user id.
fn euid() -> u32 {
    // SAFETY: geteuid takes no arguments, cannot fail and touches no memory of ours.
    #[allow(unsafe_code)]
    unsafe {
        libc::geteuid()
    }
}

/// Creates `dir` owner-only when it is missing, and makes sure that no other user could have put
/// anything in it (see the module's documentation).
fn private_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, PermissionsExt as _};
    let shown = dir.display();
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| anyhow::anyhow!("creating the component cache {shown}: {e}"))?;
    let meta = std::fs::metadata(dir)
        .map_err(|e| anyhow::anyhow!("reading the component cache {shown}: {e}"))?;
    anyhow::ensure!(
        meta.is_dir(),
        "the component cache {shown} is not a directory"
    );
    let (owner, me) = (meta.uid(), euid());
    anyhow::ensure!(
        owner == me,
        "the component cache {shown} belongs to user {owner}, not to the hub's user ({me}): \
         compiled code is loaded from it as is, so only a private directory of the hub's own user \
         is trusted (give it to that user, or choose another with --plugin-cache-dir)"
    );
    let mode = meta.permissions().mode() & 0o777;
    anyhow::ensure!(
        mode & 0o022 == 0,
        "the component cache {shown} may be written by other users (mode {mode:o}): compiled code \
         is loaded from it as is, so what is in it now cannot be trusted; remove it (the hub \
         recompiles) or choose another with --plugin-cache-dir"
    );
    if mode & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| anyhow::anyhow!("making the component cache {shown} private: {e}"))?;
        tracing::info!(path = %shown, "made the component cache owner-only (mode was {mode:o})");
    }
    Ok(())
}

/// Why the cached file at `path` must not be loaded, if it exists and must not.
fn untrusted_file(path: &Path) -> Option<String> {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    let meta = std::fs::symlink_metadata(path).ok()?;
    let mode = meta.permissions().mode() & 0o777;
    if !meta.is_file() {
        Some("it is not a regular file".into())
    } else if meta.uid() != euid() {
        Some(format!(
            "it belongs to user {}, not to the hub's",
            meta.uid()
        ))
    } else if mode & 0o022 != 0 {
        Some(format!("other users may write it (mode {mode:o})"))
    } else {
        None
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

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    fn chmod(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn the_cache_directory_is_made_and_kept_private() {
        let engine = Engine::default();
        let tmp = tempfile::tempdir().unwrap();

        // Created owner-only, parents included.
        let dir = tmp.path().join("a/cache");
        ArtifactCache::open(&dir, &engine).unwrap();
        assert_eq!(mode(&dir), 0o700);

        // Others may read it: made owner-only (a cache from before this check, under umask 022).
        chmod(&dir, 0o755);
        ArtifactCache::open(&dir, &engine).unwrap();
        assert_eq!(mode(&dir), 0o700);

        // Others may write it: refused, and left as it is.
        for writable in [0o777, 0o720, 0o702] {
            chmod(&dir, writable);
            let e = ArtifactCache::open(&dir, &engine)
                .err()
                .unwrap()
                .to_string();
            assert!(e.contains(&format!("mode {writable:o}")), "{e}");
            assert!(e.contains("--plugin-cache-dir"), "{e}");
            assert_eq!(mode(&dir), writable);
        }
    }

    #[test]
    fn a_directory_of_another_user_is_refused() {
        if euid() != 0 {
            // Only root can give a directory away; scripts/test runs as root here and in CI.
            eprintln!("skipped: not root");
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("cache");
        std::fs::create_dir(&dir).unwrap();
        chmod(&dir, 0o700);
        std::os::unix::fs::chown(&dir, Some(65534), None).unwrap();
        let e = ArtifactCache::open(&dir, &Engine::default())
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("belongs to user 65534"), "{e}");
    }

    #[test]
    fn a_cached_file_others_may_write_is_discarded_not_loaded() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("x.cwasm");
        assert_eq!(
            untrusted_file(&file),
            None,
            "a missing file is a plain miss"
        );
        std::fs::write(&file, b"hub-cwasm-1\n").unwrap();
        chmod(&file, 0o600);
        assert_eq!(untrusted_file(&file), None);
        chmod(&file, 0o666);
        assert_eq!(
            untrusted_file(&file).unwrap(),
            "other users may write it (mode 666)"
        );
        std::fs::remove_file(&file).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", &file).unwrap();
        assert_eq!(untrusted_file(&file).unwrap(), "it is not a regular file");
    }
}
