//! LLM-Registry enricher: tags events with `model_family`, `context_window`, `model_owner` and
//! `model_lifecycle` (`active`, `deprecating` within `deprecation_warning_days` of the model's
//! deprecation date, `deprecated` after it, or what the Registry says).
//!
//! The catalog is bundled (`data/models.tsv`, generated from litellm's catalog with its date and
//! source). With `sync_url` configured and its host granted, `refresh` fetches the Registry's
//! catalog, keeps it in `kv` (so it survives restarts) and lets it override the bundled entries.

use std::collections::HashMap;
use std::rc::Rc;

use hub_plugin_sdk::models::ModelTable;
use hub_plugin_sdk::{Batch, Enricher, Error, Field, Patches, RawValue, SyncReport, http, kv, log};
use serde::{Deserialize, Serialize};

const MODELS: &str = include_str!("../data/models.tsv");
const KV_CATALOG: &str = "catalog";
const DAY_MS: i64 = 86_400_000;
const LIFECYCLES: [&str; 5] = ["active", "preview", "deprecating", "deprecated", "retired"];

/// What the registry knows of a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub model: String,
    #[serde(default)]
    pub family: Option<String>,
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub context_window: Option<u64>,
    /// Set by the Registry or an override; otherwise derived from `deprecation_date`.
    #[serde(default)]
    pub lifecycle: Option<String>,
    #[serde(default)]
    pub deprecation_date: Option<String>,
}

struct Entry {
    info: ModelInfo,
    deprecation_ms: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub sync_url: Option<String>,
    #[serde(default = "default_warning_days")]
    pub deprecation_warning_days: u32,
    #[serde(default)]
    pub overrides: Vec<ModelInfo>,
}

fn default_warning_days() -> u32 {
    90
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-DD` → Unix milliseconds at midnight UTC.
pub fn parse_date(s: &str) -> Option<i64> {
    let mut it = s.split('-');
    let y: i64 = it.next()?.parse().ok()?;
    let m: i64 = it.next()?.parse().ok()?;
    let d: i64 = it.next()?.parse().ok()?;
    if it.next().is_some() || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    Some(days_from_civil(y, m, d) * DAY_MS)
}

/// The bundled catalog.
pub fn bundled() -> Vec<ModelInfo> {
    MODELS
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let opt = |i: usize| f.get(i).filter(|s| !s.is_empty()).map(|s| s.to_string());
            Some(ModelInfo {
                model: f.first()?.to_string(),
                owner: opt(1),
                family: opt(2),
                context_window: f.get(3).and_then(|s| s.parse().ok()),
                lifecycle: None,
                deprecation_date: opt(6),
            })
        })
        .collect()
}

pub struct Registry {
    table: ModelTable<Rc<Entry>>,
    sync_url: Option<String>,
    warning_ms: i64,
    overrides: Vec<ModelInfo>,
    memo: HashMap<String, Option<Rc<Entry>>>,
}

impl Registry {
    /// The plugin with a catalog already synced (what `new` reads from `kv`); also how the
    /// benchmark runs the same logic natively.
    pub fn with_synced(config: Config, synced: &[ModelInfo]) -> Result<Self, Error> {
        for (i, o) in config.overrides.iter().enumerate() {
            if let Some(d) = &o.deprecation_date
                && parse_date(d).is_none()
            {
                return Err(Error::bad_config(format!(
                    "overrides[{i}].deprecation_date: `{d}` is not a YYYY-MM-DD date"
                )));
            }
        }
        let mut r = Registry {
            table: ModelTable::new(),
            sync_url: config.sync_url,
            warning_ms: i64::from(config.deprecation_warning_days) * DAY_MS,
            overrides: config.overrides,
            memo: HashMap::new(),
        };
        r.build(synced);
        Ok(r)
    }

    fn build(&mut self, synced: &[ModelInfo]) {
        let mut table = ModelTable::new();
        for info in bundled()
            .into_iter()
            .chain(synced.iter().cloned())
            .chain(self.overrides.iter().cloned())
        {
            let deprecation_ms = info.deprecation_date.as_deref().and_then(parse_date);
            let name = info.model.clone();
            table.insert(
                &name,
                Rc::new(Entry {
                    info,
                    deprecation_ms,
                }),
            );
        }
        self.table = table;
        self.memo.clear();
    }

    /// The model's lifecycle at `ts_ms`, as an index into [`LIFECYCLES`] (no text compared per event).
    fn lifecycle(&self, e: &Entry, ts_ms: i64) -> usize {
        const ACTIVE: usize = 0;
        const PREVIEW: usize = 1;
        const DEPRECATING: usize = 2;
        const DEPRECATED: usize = 3;
        const RETIRED: usize = 4;
        if let Some(l) = &e.info.lifecycle {
            return match l.as_str() {
                "preview" => PREVIEW,
                "deprecating" => DEPRECATING,
                "deprecated" => DEPRECATED,
                "retired" => RETIRED,
                _ => ACTIVE,
            };
        }
        match e.deprecation_ms {
            Some(d) if ts_ms >= d => DEPRECATED,
            Some(d) if ts_ms + self.warning_ms >= d => DEPRECATING,
            _ => ACTIVE,
        }
    }
}

impl Enricher for Registry {
    type Config = Config;

    fn new(config: Config) -> Result<Self, Error> {
        let synced: Vec<ModelInfo> = kv::get_json(KV_CATALOG).unwrap_or_default();
        Registry::with_synced(config, &synced)
    }

    fn enrich(&mut self, batch: &Batch, out: &mut Patches) -> Result<(), Error> {
        // Per distinct model of the batch (by string index): the entry, its texts interned once
        // into the answer, and its rows by lifecycle. Every row of one (model, lifecycle) gets
        // the same four tags, so each such set crosses as one group: a row index per event.
        struct Known {
            entry: Rc<Entry>,
            family: Option<u32>,
            owner: Option<u32>,
            rows: [Vec<u32>; LIFECYCLES.len()],
        }
        let mut by_index: Vec<Option<Option<Known>>> = Vec::new();
        by_index.resize_with(batch.columns().strings.len(), || None);
        for row in batch.rows() {
            let Some(mi) = row.model_index() else {
                continue;
            };
            let slot = &mut by_index[mi as usize];
            if slot.is_none() {
                let model = row.model().unwrap_or_default();
                let entry = match self.memo.get(model) {
                    Some(e) => e.clone(),
                    None => {
                        if self.memo.len() > 10_000 {
                            self.memo.clear();
                        }
                        let e = self.table.get(model).cloned();
                        self.memo.insert(model.to_string(), e.clone());
                        e
                    }
                };
                *slot = Some(entry.map(|entry| Known {
                    family: entry.info.family.as_deref().map(|f| out.intern(f)),
                    owner: entry.info.owner.as_deref().map(|o| out.intern(o)),
                    entry,
                    rows: Default::default(),
                }));
            }
            let Some(Some(k)) = slot else { continue };
            let li = self.lifecycle(&k.entry, row.ts_ms());
            k.rows[li].push(row.index());
        }
        let names = [
            out.intern("model_family"),
            out.intern("context_window"),
            out.intern("model_owner"),
            out.intern("model_lifecycle"),
        ];
        for k in by_index.into_iter().flatten().flatten() {
            for (li, rows) in k.rows.into_iter().enumerate() {
                if rows.is_empty() {
                    continue;
                }
                let lifecycle = out.intern(LIFECYCLES[li]);
                let mut g = out.group(rows);
                if let Some(f) = k.family {
                    g.raw_wit(Field::Tag(names[0]), RawValue::Text(f));
                }
                if let Some(c) = k.entry.info.context_window {
                    g.raw_wit(Field::Tag(names[1]), RawValue::Integer(c as i64));
                }
                if let Some(o) = k.owner {
                    g.raw_wit(Field::Tag(names[2]), RawValue::Text(o));
                }
                g.raw_wit(Field::Tag(names[3]), RawValue::Text(lifecycle));
            }
        }
        Ok(())
    }

    fn refresh(&mut self) -> Result<SyncReport, Error> {
        let Some(url) = self.sync_url.clone() else {
            return Ok(SyncReport {
                items: 0,
                message: "no sync_url configured: using the bundled catalog".into(),
            });
        };
        let response = http::get(&url)?;
        if response.status != 200 {
            return Err(Error::unavailable(format!(
                "{url} answered HTTP {}",
                response.status
            )));
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Catalog {
            Wrapped { models: Vec<ModelInfo> },
            Bare(Vec<ModelInfo>),
        }
        let models = match response.json::<Catalog>()? {
            Catalog::Wrapped { models } | Catalog::Bare(models) => models,
        };
        kv::set_json(KV_CATALOG, &models).map_err(Error::unavailable)?;
        self.build(&models);
        log::info(&format!("synced {} models from {url}", models.len()));
        Ok(SyncReport {
            items: models.len() as u32,
            message: format!("synced {} models from {url}", models.len()),
        })
    }
}

hub_plugin_sdk::export_enricher!(Registry);
