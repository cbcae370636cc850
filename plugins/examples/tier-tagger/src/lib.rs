use hub_plugin_sdk::{Batch, Enricher, Error, Patches};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    premium: Vec<String>,
}

pub struct TierTagger {
    premium: Vec<String>,
}

impl Enricher for TierTagger {
    type Config = Config;

    // Called with the tenant's configuration (already checked against the schema); errors here
    // are shown to the tenant, so name the field.
    fn new(config: Config) -> Result<Self, Error> {
        Ok(TierTagger {
            premium: config.premium,
        })
    }

    // Columns in, patches out. The host checks every patch and applies all or none.
    fn enrich(&mut self, batch: &Batch, out: &mut Patches) -> Result<(), Error> {
        for row in batch.rows() {
            if let Some(model) = row.model() {
                let tier = if self.premium.iter().any(|p| p == model) {
                    "premium"
                } else {
                    "standard"
                };
                out.tag(row.index(), "tier", tier);
            }
        }
        Ok(())
    }
}

hub_plugin_sdk::export_enricher!(TierTagger);
