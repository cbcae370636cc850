//! `plugin.toml`: what a plugin is, what it asks for, and how it is configured.
//!
//! ```toml
//! name = "cost"
//! version = "0.1.0"
//! kind = "enricher"
//! world = "hub:plugin/enricher@0.2.0"
//! description = "Fills cost_usd from a price table"
//! authors = ["LLM Analytics Hub"]
//! license = "Apache-2.0"
//!
//! [capabilities]
//! kv = false
//! http = []            # hosts such as "registry.example.com" or "127.0.0.1:8089"
//! tags = false         # whether batches carry the events' tags
//! ids = false          # whether batches carry the events' ids
//!
//! [limits]
//! deadline-ms = 50     # per call; omitted = the host's default for the kind
//! memory-mib = 64
//! refresh-interval-s = 3600
//!
//! [config.schema]      # JSON Schema of the tenant's configuration, written in TOML
//! type = "object"
//! ```
//!
//! Every error names the field it is about.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use semver::Version;

/// The versions of the `hub:plugin` package this host runs (0.2.0: enrichers only; 0.3.0:
/// integrations only).
pub const SUPPORTED_WORLD_VERSIONS: &[&str] = &["0.1.0", "0.2.0", "0.3.0"];

/// The worlds a version of the package has beyond 0.1.0's (which has them all).
fn kinds_of(world_version: &str) -> &'static [PluginKind] {
    match world_version {
        "0.2.0" => &[PluginKind::Enricher],
        "0.3.0" => &[PluginKind::Integration],
        _ => &[
            PluginKind::Enricher,
            PluginKind::Detector,
            PluginKind::Forecaster,
            PluginKind::Integration,
        ],
    }
}

/// Manifests larger than this are refused before parsing.
pub const MAX_MANIFEST_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PluginKind {
    Enricher,
    Detector,
    Forecaster,
    Integration,
}

impl PluginKind {
    pub const ALL: [PluginKind; 4] = [
        PluginKind::Enricher,
        PluginKind::Detector,
        PluginKind::Forecaster,
        PluginKind::Integration,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PluginKind::Enricher => "enricher",
            PluginKind::Detector => "detector",
            PluginKind::Forecaster => "forecaster",
            PluginKind::Integration => "integration",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The functions a component of this kind must export.
    pub fn exports(self) -> &'static [&'static str] {
        match self {
            PluginKind::Enricher => &["configure", "enrich", "refresh"],
            PluginKind::Detector => &["configure", "detect"],
            PluginKind::Forecaster => &["configure", "forecast"],
            PluginKind::Integration => &["configure", "on-alerts", "sync"],
        }
    }

    /// Whether the world lets this kind import `kv` and outgoing HTTP.
    pub fn may_use_kv(self) -> bool {
        !matches!(self, PluginKind::Forecaster)
    }

    pub fn may_use_http(self) -> bool {
        matches!(self, PluginKind::Enricher | PluginKind::Integration)
    }
}

impl std::fmt::Display for PluginKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a plugin asks to use. Nothing is granted by default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Capabilities {
    /// The `kv` interface.
    #[serde(default)]
    pub kv: bool,
    /// Hosts reachable through outgoing HTTP (`host` or `host:port`), if the tenant grants them.
    /// `"*"` means "hosts the tenant chooses": for plugins whose endpoint is configuration (a
    /// registry URL); the tenant's grant then lists the hosts.
    #[serde(default)]
    pub http: Vec<String>,
    /// Whether batches carry the events' tags (costly; off unless needed).
    #[serde(default)]
    pub tags: bool,
    /// Whether batches carry the events' ids (one string per event; off unless needed).
    #[serde(default)]
    pub ids: bool,
}

/// Limits the plugin asks for; `None` means the host's default for its kind.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Limits {
    pub deadline_ms: Option<u32>,
    pub memory_mib: Option<u32>,
    /// How often `refresh` (enrichers) or `sync` (integrations) runs; `None` = never on a timer.
    pub refresh_interval_s: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigSection {
    /// JSON Schema of the tenant's configuration. Absent: the plugin takes `{}` only.
    #[serde(default)]
    pub schema: Option<toml::Table>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawManifest {
    name: String,
    version: String,
    kind: String,
    world: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    authors: Vec<String>,
    #[serde(default)]
    license: Option<String>,
    #[serde(default)]
    homepage: Option<String>,
    #[serde(default)]
    min_host_version: Option<String>,
    #[serde(default)]
    changelog: BTreeMap<String, String>,
    #[serde(default)]
    capabilities: Capabilities,
    #[serde(default)]
    limits: Limits,
    #[serde(default)]
    config: ConfigSection,
    #[serde(default)]
    series: Option<toml::Table>,
}

/// A validated manifest.
#[derive(Debug, Clone, Serialize)]
pub struct Manifest {
    pub name: String,
    pub version: semver::Version,
    pub kind: PluginKind,
    /// `hub:plugin/<kind>@<version>`.
    pub world: String,
    pub world_version: String,
    pub description: String,
    pub authors: Vec<String>,
    pub license: Option<String>,
    pub homepage: Option<String>,
    pub min_host_version: Option<semver::Version>,
    /// Version → what changed, as the author wrote it.
    pub changelog: BTreeMap<String, String>,
    pub capabilities: Capabilities,
    pub limits: Limits,
    /// The configuration's JSON Schema (`{"type": "object"}` when the manifest has none).
    pub config_schema: serde_json::Value,
    /// Detectors and forecasters: the series they watch unless a tenant says otherwise (the
    /// host's defaults with what `[series]` sets); `None` for the other kinds.
    pub series: Option<crate::SeriesSettings>,
    /// The manifest as written, kept so that packages round-trip byte for byte.
    #[serde(skip)]
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct ManifestError {
    /// The field, as a dotted path (`limits.deadline-ms`); `plugin.toml` for syntax errors.
    pub field: String,
    pub message: String,
}

// Written by hand so that an error of the whole file says `plugin.toml` once
// (`plugin.toml: unknown field`), not `plugin.toml: plugin.toml: unknown field`.
impl std::fmt::Display for ManifestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.field == "plugin.toml" {
            write!(f, "plugin.toml: {}", self.message)
        } else {
            write!(f, "plugin.toml: {}: {}", self.field, self.message)
        }
    }
}

fn err(field: &str, message: impl Into<String>) -> ManifestError {
    ManifestError {
        field: field.to_string(),
        message: message.into(),
    }
}

impl Manifest {
    /// Parses and validates `plugin.toml`. `host_version` is checked against `min-host-version`.
    pub fn parse(source: &str, host_version: &semver::Version) -> Result<Manifest, ManifestError> {
        if source.len() > MAX_MANIFEST_BYTES {
            return Err(err(
                "plugin.toml",
                format!(
                    "is {} bytes; the limit is {MAX_MANIFEST_BYTES}",
                    source.len()
                ),
            ));
        }
        let raw: RawManifest = toml::from_str(source).map_err(|e| {
            let message = e.message().to_string();
            let at = e
                .span()
                .map(|s| {
                    let line = source[..s.start].matches('\n').count() + 1;
                    format!(" (line {line})")
                })
                .unwrap_or_default();
            err("plugin.toml", format!("{message}{at}"))
        })?;

        if !valid_name(&raw.name) {
            return Err(err(
                "name",
                format!(
                    "`{}` is not a plugin name: use 2 to 64 characters of a-z, 0-9 and `-`, starting with a letter",
                    raw.name
                ),
            ));
        }
        let version = semver::Version::parse(&raw.version).map_err(|e| {
            err(
                "version",
                format!(
                    "`{}` is not a semantic version (like 1.2.3): {e}",
                    raw.version
                ),
            )
        })?;
        let kind = PluginKind::parse(&raw.kind).ok_or_else(|| {
            err(
                "kind",
                format!(
                    "`{}` is not a plugin kind: expected enricher, detector, forecaster or integration",
                    raw.kind
                ),
            )
        })?;
        let minimal_ok = matches!(kind, PluginKind::Enricher | PluginKind::Detector);
        let world_version = raw
            .world
            .strip_prefix(&format!("hub:plugin/{kind}@"))
            .or_else(|| {
                minimal_ok
                    .then(|| {
                        raw.world
                            .strip_prefix(&format!("hub:plugin/{kind}-minimal@"))
                    })
                    .flatten()
            })
            .ok_or_else(|| {
                err(
                    "world",
                    format!(
                        "`{}` does not match kind `{kind}`: expected hub:plugin/{kind}@<version>{}",
                        raw.world,
                        if minimal_ok {
                            format!(" or hub:plugin/{kind}-minimal@<version>")
                        } else {
                            String::new()
                        }
                    ),
                )
            })?
            .to_string();
        let minimal = raw.world.contains("-minimal@");
        if !SUPPORTED_WORLD_VERSIONS.contains(&world_version.as_str()) {
            return Err(err(
                "world",
                format!(
                    "hub:plugin@{world_version} is not supported by this host (supported: {})",
                    SUPPORTED_WORLD_VERSIONS.join(", ")
                ),
            ));
        }
        let kinds = kinds_of(&world_version);
        if !kinds.contains(&kind) {
            let has: Vec<String> = kinds.iter().map(|k| k.to_string()).collect();
            return Err(err(
                "world",
                format!(
                    "hub:plugin@{world_version} has {} worlds only: target hub:plugin/{kind}@0.1.0",
                    has.join(", ")
                ),
            ));
        }
        if raw.description.len() > 500 {
            return Err(err("description", "is longer than 500 characters"));
        }
        let min_host_version = match &raw.min_host_version {
            None => None,
            Some(v) => {
                let v = semver::Version::parse(v).map_err(|e| {
                    err(
                        "min-host-version",
                        format!("`{v}` is not a semantic version: {e}"),
                    )
                })?;
                if &v > host_version {
                    return Err(err(
                        "min-host-version",
                        format!("the plugin needs hub {v} or later; this is {host_version}"),
                    ));
                }
                Some(v)
            }
        };
        for v in raw.changelog.keys() {
            semver::Version::parse(v).map_err(|e| {
                err(
                    &format!("changelog.\"{v}\""),
                    format!("is not a semantic version: {e}"),
                )
            })?;
        }
        if minimal && (raw.capabilities.kv || !raw.capabilities.http.is_empty()) {
            return Err(err(
                "capabilities",
                format!(
                    "{} has no kv or HTTP: target hub:plugin/{kind}@{world_version} to use them",
                    raw.world
                ),
            ));
        }
        if raw.capabilities.kv && !kind.may_use_kv() {
            return Err(err(
                "capabilities.kv",
                format!("the {kind} world has no kv interface"),
            ));
        }
        if !raw.capabilities.http.is_empty() && !kind.may_use_http() {
            return Err(err(
                "capabilities.http",
                format!("the {kind} world has no outgoing HTTP"),
            ));
        }
        for (i, host) in raw.capabilities.http.iter().enumerate() {
            if host != "*" && !valid_http_host(host) {
                return Err(err(
                    &format!("capabilities.http[{i}]"),
                    format!(
                        "`{host}` is not a host name or host:port (no scheme, path or wildcard; an IPv6 address goes in brackets, [2001:db8::1]:8443)"
                    ),
                ));
            }
        }
        if raw.capabilities.tags && kind != PluginKind::Enricher {
            return Err(err(
                "capabilities.tags",
                "only enrichers receive event batches",
            ));
        }
        if raw.capabilities.ids && kind != PluginKind::Enricher {
            return Err(err(
                "capabilities.ids",
                "only enrichers receive event batches",
            ));
        }
        if raw.limits.deadline_ms == Some(0) {
            return Err(err("limits.deadline-ms", "must be at least 1"));
        }
        if raw.limits.memory_mib == Some(0) {
            return Err(err("limits.memory-mib", "must be at least 1"));
        }
        if raw.limits.refresh_interval_s == Some(0) {
            return Err(err("limits.refresh-interval-s", "must be at least 1"));
        }

        let config_schema = match &raw.config.schema {
            None => serde_json::json!({"type": "object", "additionalProperties": false}),
            Some(t) => serde_json::to_value(t).map_err(|e| err("config.schema", e.to_string()))?,
        };
        jsonschema::validator_for(&config_schema)
            .map_err(|e| err("config.schema", format!("is not a valid JSON Schema: {e}")))?;
        let series = series_defaults(kind, raw.series.as_ref())?;

        Ok(Manifest {
            name: raw.name,
            version,
            kind,
            world: raw.world,
            world_version,
            description: raw.description,
            authors: raw.authors,
            license: raw.license,
            homepage: raw.homepage,
            min_host_version,
            changelog: raw.changelog,
            capabilities: raw.capabilities,
            limits: raw.limits,
            config_schema,
            series,
            source: source.to_string(),
        })
    }

    /// Checks a tenant's configuration against the schema. Errors name the JSON path
    /// (`/discounts/0/percent`) and say what is wrong.
    pub fn validate_config(&self, config: &serde_json::Value) -> Result<(), Vec<ConfigError>> {
        let validator = jsonschema::validator_for(&self.config_schema).map_err(|e| {
            vec![ConfigError {
                path: String::new(),
                message: format!("the plugin's schema does not compile: {e}"),
            }]
        })?;
        let errors: Vec<ConfigError> = validator
            .iter_errors(config)
            .take(20)
            .map(|e| ConfigError {
                path: e.instance_path.to_string(),
                message: e.to_string(),
            })
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// The configuration a tenant gets when it gives none: the schema's `default`, else `{}`.
    pub fn default_config(&self) -> serde_json::Value {
        self.config_schema
            .get("default")
            .cloned()
            .unwrap_or_else(|| serde_json::json!({}))
    }

    /// A configuration that shows what the plugin can do (checks at publish time use it): the
    /// schema's first `examples` entry, else its `default`, else `{}`.
    pub fn example_config(&self) -> serde_json::Value {
        self.config_schema
            .get("examples")
            .and_then(|e| e.as_array())
            .and_then(|a| a.first())
            .or_else(|| self.config_schema.get("default"))
            .cloned()
            .unwrap_or_else(|| serde_json::json!({}))
    }
}

/// The most series per install a manifest may ask for (a hub may allow fewer).
pub const MAX_SERIES: u32 = 10_000;

/// A detector's or forecaster's `[series]` over the host's defaults for its kind.
fn series_defaults(
    kind: PluginKind,
    table: Option<&toml::Table>,
) -> Result<Option<crate::SeriesSettings>, ManifestError> {
    use crate::series::{Origin, SeriesSettings};
    let forecaster = kind == PluginKind::Forecaster;
    if !matches!(kind, PluginKind::Detector | PluginKind::Forecaster) {
        return match table {
            Some(_) => Err(err("series", "only detectors and forecasters watch series")),
            None => Ok(None),
        };
    }
    // plugin.toml's keys are kebab-case; the settings' are the configuration's snake_case.
    let over: serde_json::Map<String, serde_json::Value> = table
        .into_iter()
        .flatten()
        .map(|(k, v)| {
            serde_json::to_value(v)
                .map(|v| (k.replace('-', "_"), v))
                .map_err(|e| err(&format!("series.{k}"), e.to_string()))
        })
        .collect::<Result<_, _>>()?;
    SeriesSettings::defaults(forecaster)
        .resolve(&over.into(), forecaster, Origin::Manifest, MAX_SERIES)
        .map(Some)
        .map_err(|e| err(&e.path, e.message))
}

/// One way a configuration fails its schema.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConfigError {
    /// JSON Pointer into the configuration (`""` for the whole document).
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let path = if self.path.is_empty() {
            "/"
        } else {
            &self.path
        };
        write!(f, "{path}: {}", self.message)
    }
}

/// A plugin (and package) name: 2 to 64 of a-z, 0-9 and `-`, starting with a letter.
pub fn valid_name(name: &str) -> bool {
    (2..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// `host` or `host:port`, the host a name, an IPv4 literal or an IPv6 literal in brackets; no
/// scheme, path or wildcard (see [`HttpHost`](crate::HttpHost)).
pub fn valid_http_host(host: &str) -> bool {
    crate::HttpHost::parse(host).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> semver::Version {
        semver::Version::new(0, 1, 0)
    }

    const GOOD: &str = r#"
name = "cost"
version = "1.2.3"
kind = "enricher"
world = "hub:plugin/enricher@0.1.0"

[capabilities]
http = ["prices.example.com", "127.0.0.1:8089"]

[limits]
deadline-ms = 80

[config.schema]
type = "object"
additionalProperties = false
examples = [{ discount_pct = 10 }]
[config.schema.properties.discount_pct]
type = "number"
minimum = 0
maximum = 100
"#;

    #[test]
    fn parses_a_good_manifest() {
        let m = Manifest::parse(GOOD, &host()).unwrap();
        assert_eq!(m.kind, PluginKind::Enricher);
        assert_eq!(m.version, semver::Version::new(1, 2, 3));
        assert_eq!(m.limits.deadline_ms, Some(80));
        assert_eq!(m.example_config(), serde_json::json!({"discount_pct": 10}));
        m.validate_config(&m.example_config()).unwrap();
        let errors = m
            .validate_config(&serde_json::json!({"discount_pct": 120}))
            .unwrap_err();
        assert_eq!(errors[0].path, "/discount_pct");
        let errors = m
            .validate_config(&serde_json::json!({"discont": 1}))
            .unwrap_err();
        assert!(errors[0].message.contains("discont"), "{errors:?}");
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (GOOD.replace("1.2.3", "1.2"), "version"),
            (
                GOOD.replace("kind = \"enricher\"", "kind = \"mangler\""),
                "kind",
            ),
            (
                GOOD.replace("hub:plugin/enricher@0.1.0", "hub:plugin/detector@0.1.0"),
                "world",
            ),
            (
                GOOD.replace("hub:plugin/enricher@0.1.0", "hub:plugin/enricher@9.0.0"),
                "world",
            ),
            (
                GOOD.replace("kind = \"enricher\"", "kind = \"detector\"")
                    .replace("hub:plugin/enricher@0.1.0", "hub:plugin/detector@0.2.0"),
                "world",
            ),
            // 0.3.0 has the integration world only.
            (
                GOOD.replace("hub:plugin/enricher@0.1.0", "hub:plugin/enricher@0.3.0"),
                "world",
            ),
            (GOOD.replace("name = \"cost\"", "name = \"Cost!\""), "name"),
            (
                GOOD.replace("127.0.0.1:8089", "https://x.example.com/"),
                "capabilities.http[1]",
            ),
            (
                GOOD.replace("deadline-ms = 80", "deadline-ms = 0"),
                "limits.deadline-ms",
            ),
            (
                GOOD.replace("type = \"number\"", "type = \"numeral\""),
                "config.schema",
            ),
        ];
        for (source, field) in cases {
            let e = Manifest::parse(&source, &host()).unwrap_err();
            assert_eq!(e.field, field, "{e}");
        }
    }

    #[test]
    fn unknown_fields_are_refused_with_their_line() {
        let e = Manifest::parse(&GOOD.replace("[limits]", "[limits]\nmemory = 3"), &host())
            .unwrap_err();
        assert_eq!(e.field, "plugin.toml");
        assert!(e.message.contains("unknown field `memory`"), "{e}");
        // The file is named once.
        assert!(
            e.to_string().starts_with("plugin.toml: ")
                && !e.to_string().contains("plugin.toml: plugin.toml"),
            "{e}"
        );
        assert!(e.message.contains("line 11"), "{e}");
    }

    #[test]
    fn capabilities_must_fit_the_world() {
        let src = GOOD
            .replace("kind = \"enricher\"", "kind = \"forecaster\"")
            .replace("hub:plugin/enricher@0.1.0", "hub:plugin/forecaster@0.1.0");
        let e = Manifest::parse(&src, &host()).unwrap_err();
        assert_eq!(e.field, "capabilities.http");
    }

    #[test]
    fn detectors_and_forecasters_say_which_series_they_watch() {
        let detector = GOOD
            .replace("kind = \"enricher\"", "kind = \"detector\"")
            .replace("hub:plugin/enricher@0.1.0", "hub:plugin/detector@0.1.0")
            .replace(
                "[capabilities]\nhttp = [\"prices.example.com\", \"127.0.0.1:8089\"]\n",
                "",
            );
        let m = Manifest::parse(&detector, &host()).unwrap();
        assert_eq!(m.series, Some(crate::SeriesSettings::defaults(false)));
        let with = format!(
            "{detector}\n[series]\nmetrics = [\"error_rate\"]\ngroup-by = [\"model\"]\nstep = \"5m\"\n"
        );
        let s = Manifest::parse(&with, &host()).unwrap().series.unwrap();
        assert_eq!(
            (s.metrics, s.group_by, s.step_ms),
            (
                vec!["error_rate".to_string()],
                vec!["model".to_string()],
                300_000
            )
        );
        let e = Manifest::parse(
            &with.replace("\"model\"]", "\"model\", \"region\"]"),
            &host(),
        )
        .unwrap_err();
        assert_eq!(e.field, "series.group-by[1]", "{e}");
        let e =
            Manifest::parse(&format!("{GOOD}\n[series]\nstep = \"1h\"\n"), &host()).unwrap_err();
        assert_eq!(e.field, "series", "{e}");
        assert_eq!(Manifest::parse(GOOD, &host()).unwrap().series, None);
    }

    #[test]
    fn min_host_version_is_enforced() {
        let src = GOOD.replace("kind = ", "min-host-version = \"9.0.0\"\nkind = ");
        let e = Manifest::parse(&src, &host()).unwrap_err();
        assert_eq!(e.field, "min-host-version");
    }
}
