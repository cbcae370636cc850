//! How the command line gives a plugin its configuration and grants (`--plugin-config`,
//! `--grant`), for the operator's `hub plugin` commands and the plugin author's alike.

use anyhow::{Context, Result, bail};
use hub_plugins::GrantsDoc;

/// `--plugin-config`: JSON, or `@FILE`.
pub(crate) fn read_config(arg: &str) -> Result<serde_json::Value> {
    let text = match arg.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?,
        None => arg.to_string(),
    };
    serde_json::from_str(&text).context("--plugin-config is not valid JSON")
}

/// `--grant kv|http:HOST[:PORT]|all` (repeatable); `all` needs the plugin's manifest at hand.
pub(crate) fn parse_grants(
    grants: &[String],
    manifest: Option<&hub_marketplace::Manifest>,
) -> Result<GrantsDoc> {
    let mut doc = GrantsDoc::default();
    for g in grants {
        match (g.as_str(), manifest) {
            ("all", Some(manifest)) => {
                let all = hub_plugins::GrantsDoc::everything_asked(manifest);
                doc.kv = all.kv;
                doc.http.extend(all.http);
            }
            ("all", None) => {
                bail!("--grant all: name the capabilities here (kv, http:HOST[:PORT])")
            }
            ("kv", _) => doc.kv = true,
            (other, _) => match other.strip_prefix("http:") {
                Some(host) => doc.http.push(host.to_string()),
                None => bail!("--grant {other}: expected kv, http:HOST[:PORT] or all"),
            },
        }
    }
    Ok(doc)
}
