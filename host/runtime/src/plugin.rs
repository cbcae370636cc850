//! Loading: a component checked against its manifest and the operator's maxima, compiled once
//! (or read from the cache), and type-checked against its world, as a [`Plugin`].

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use hub_marketplace::{Manifest, PluginKind};
use wasmtime::component::Component;

use crate::bindings::{detector, enricher, enricher_v2, forecaster, integration, integration_v3};
use crate::host::HostState;
use crate::world::{check_component_header, check_world};
use crate::{LoadError, Runtime, compile, error_text};

impl Runtime {
    /// Checks `wasm` against `manifest` and compiles it (or loads the cached artifact).
    /// Compilation of a large or hostile component can take seconds: call this off the request
    /// path (a blocking thread).
    pub fn load(&self, manifest: Manifest, wasm: &[u8]) -> Result<Plugin, LoadError> {
        let cfg = &self.inner.config;
        if wasm.len() > cfg.max_component_bytes {
            return Err(LoadError::TooLarge {
                size: wasm.len(),
                limit: cfg.max_component_bytes,
            });
        }
        check_component_header(wasm)?;
        let digest = hub_marketplace::digest(wasm);

        let deadline = match manifest.limits.deadline_ms {
            Some(ms) => {
                let d = Duration::from_millis(ms.into());
                if d > cfg.max_deadline {
                    return Err(LoadError::OverLimit {
                        field: "limits.deadline-ms",
                        asked: format!("{ms} ms"),
                        max: format!("{} ms", cfg.max_deadline.as_millis()),
                        setting: "--plugin-max-deadline",
                    });
                }
                Some(d)
            }
            None => None,
        };
        let memory_bytes = match manifest.limits.memory_mib {
            Some(mib) => {
                let b = (mib as usize) << 20;
                if b > cfg.max_memory_bytes {
                    return Err(LoadError::OverLimit {
                        field: "limits.memory-mib",
                        asked: format!("{mib} MiB"),
                        max: format!("{} MiB", cfg.max_memory_bytes >> 20),
                        setting: "--plugin-max-memory-mib",
                    });
                }
                b
            }
            None => cfg.default_memory_bytes,
        };

        let started = Instant::now();
        let engine = &self.inner.engine;
        let compile = || {
            let settings = (cfg.max_memory_bytes, cfg.max_instances);
            compile::artifact(engine, wasm, cfg.compile_worker.as_ref(), settings)
        };
        let (component, cached) = match &self.inner.cache {
            Some(cache) => cache.get_or_compile(engine, &digest, compile)?,
            None => (compile::load(engine, &compile()?)?, false),
        };
        tracing::debug!(plugin = %manifest.name, digest = %&digest[..12], cached, elapsed_ms = started.elapsed().as_secs_f64() * 1e3, "component loaded");

        check_world(&self.inner.engine, &component, &manifest)?;
        let plugin = Plugin {
            inner: Arc::new(PluginInner {
                linker: (manifest.capabilities.kv as usize)
                    | ((!manifest.capabilities.http.is_empty() as usize) << 1),
                manifest,
                digest,
                component,
                deadline,
                memory_bytes,
                from_cache: cached,
                pre: OnceLock::new(),
            }),
        };
        // Type-check every import and export now, so a mismatch is an install error.
        plugin.pre(self)?;
        Ok(plugin)
    }
}

pub(crate) enum Pre {
    Enricher(enricher::EnricherPre<HostState>),
    EnricherV2(enricher_v2::EnricherPre<HostState>),
    Detector(detector::DetectorPre<HostState>),
    Forecaster(forecaster::ForecasterPre<HostState>),
    Integration(integration::IntegrationPre<HostState>),
    IntegrationV3(integration_v3::IntegrationPre<HostState>),
}

impl Clone for Pre {
    fn clone(&self) -> Self {
        match self {
            Pre::Enricher(p) => Pre::Enricher(p.clone()),
            Pre::EnricherV2(p) => Pre::EnricherV2(p.clone()),
            Pre::Detector(p) => Pre::Detector(p.clone()),
            Pre::Forecaster(p) => Pre::Forecaster(p.clone()),
            Pre::Integration(p) => Pre::Integration(p.clone()),
            Pre::IntegrationV3(p) => Pre::IntegrationV3(p.clone()),
        }
    }
}

pub(crate) struct PluginInner {
    pub(crate) manifest: Manifest,
    digest: String,
    component: Component,
    pub(crate) deadline: Option<Duration>,
    pub(crate) memory_bytes: usize,
    from_cache: bool,
    linker: usize,
    pre: OnceLock<Pre>,
}

/// A loaded, checked component with its manifest. Cheap to clone.
#[derive(Clone)]
pub struct Plugin {
    pub(crate) inner: Arc<PluginInner>,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.inner.manifest.name)
            .field("version", &self.inner.manifest.version.to_string())
            .field("digest", &self.inner.digest)
            .finish()
    }
}

impl Plugin {
    pub fn manifest(&self) -> &Manifest {
        &self.inner.manifest
    }

    /// SHA-256 of the component, hex.
    pub fn digest(&self) -> &str {
        &self.inner.digest
    }

    /// Whether loading deserialized a cached artifact instead of compiling.
    pub fn from_cache(&self) -> bool {
        self.inner.from_cache
    }

    /// The memory cap every instance gets.
    pub fn memory_bytes(&self) -> usize {
        self.inner.memory_bytes
    }

    pub(crate) fn pre(&self, rt: &Runtime) -> Result<Pre, LoadError> {
        if let Some(p) = self.inner.pre.get() {
            return Ok(p.clone());
        }
        let m = &self.inner.manifest;
        let linker = &rt.inner.linkers[self.inner.linker];
        let ip =
            linker
                .instantiate_pre(&self.inner.component)
                .map_err(|e| LoadError::WrongWorld {
                    kind: m.kind,
                    version: m.world_version.clone(),
                    detail: error_text(&e),
                })?;
        let wrong = |e: wasmtime::Error| LoadError::WrongWorld {
            kind: m.kind,
            version: m.world_version.clone(),
            detail: error_text(&e),
        };
        let pre = match m.kind {
            PluginKind::Enricher if m.world_version == "0.2.0" => {
                Pre::EnricherV2(enricher_v2::EnricherPre::new(ip).map_err(wrong)?)
            }
            PluginKind::Enricher => Pre::Enricher(enricher::EnricherPre::new(ip).map_err(wrong)?),
            PluginKind::Detector => Pre::Detector(detector::DetectorPre::new(ip).map_err(wrong)?),
            PluginKind::Forecaster => {
                Pre::Forecaster(forecaster::ForecasterPre::new(ip).map_err(wrong)?)
            }
            PluginKind::Integration => {
                // The exports' types tell the versions apart; a component of the other one is
                // told which `world` to declare.
                let v3 = m.world_version == "0.3.0";
                let made = if v3 {
                    integration_v3::IntegrationPre::new(ip.clone()).map(Pre::IntegrationV3)
                } else {
                    integration::IntegrationPre::new(ip.clone()).map(Pre::Integration)
                };
                match made {
                    Ok(pre) => pre,
                    Err(e) if v3 && integration::IntegrationPre::new(ip.clone()).is_ok() => {
                        let _ = e;
                        return Err(crate::world::built_against(m, "0.1.0"));
                    }
                    Err(e) if !v3 && integration_v3::IntegrationPre::new(ip).is_ok() => {
                        let _ = e;
                        return Err(crate::world::built_against(m, "0.3.0"));
                    }
                    Err(e) => return Err(wrong(e)),
                }
            }
        };
        let _ = self.inner.pre.set(pre.clone());
        Ok(pre)
    }
}
