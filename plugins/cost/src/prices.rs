//! The price table and what one call costs.
//!
//! `data/prices.tsv` holds one row per (model, host, effective date): the provider's own price and
//! each host's (Bedrock, Vertex AI, Azure, Together, Groq), with cache read and write, reasoning and
//! audio prices, a higher tier above a prompt size, and batch-API prices where the source catalog
//! has them. A changed price is a new row from the day it took effect; an event is priced at the
//! row of its own time.

use std::collections::HashMap;

use hub_plugin_sdk::models::{ModelTable, normalize};

const PRICES: &str = include_str!("../data/prices.tsv");

/// Prices above a prompt size (Gemini past 200k tokens, GPT past 272k, …), USD per token.
#[derive(Debug, Clone, PartialEq)]
pub struct Tier {
    /// Calls whose input is larger than this pay the tier's prices for all their tokens.
    pub above: i64,
    pub input: f64,
    pub output: f64,
    pub cache_read: Option<f64>,
    pub cache_write: Option<f64>,
}

/// One model's prices on one host from one date, USD per token.
#[derive(Debug, Clone, PartialEq)]
pub struct Price {
    /// Who makes the model (`openai`, `anthropic`, `google`, …).
    pub provider: String,
    /// Who serves it: the provider itself (`openai`, `gemini`, …), `bedrock`, `vertex_ai`,
    /// `azure`, `together_ai`, `groq`, or `custom` (the tenant's configuration).
    pub host: String,
    pub input: f64,
    pub output: f64,
    /// Missing prices fall back to the input (or output) price.
    pub cache_read: Option<f64>,
    pub cache_write: Option<f64>,
    pub reasoning: Option<f64>,
    pub audio_input: Option<f64>,
    pub audio_output: Option<f64>,
    pub tier: Option<Tier>,
    /// Batch-API input and output prices.
    pub batch: Option<(f64, f64)>,
    /// The first moment (Unix ms, UTC midnight) the price applies.
    pub effective_from_ms: i64,
    pub source: String,
}

/// What a call used, in the hub's convention: `input` includes cache reads, cache writes and audio
/// input; `output` includes reasoning and audio output.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    pub input: i64,
    pub output: i64,
    pub cache_read: i64,
    pub cache_write: i64,
    pub reasoning: i64,
    pub audio_input: i64,
    pub audio_output: i64,
    /// Sent through the provider's batch API.
    pub batch: bool,
}

impl Price {
    /// What `u` costs at this price, in USD.
    pub fn cost(&self, u: &Usage) -> f64 {
        let (mut input, mut output) = (self.input, self.output);
        let (mut cache_read, mut cache_write) = (self.cache_read, self.cache_write);
        if let Some(t) = self.tier.as_ref().filter(|t| u.input > t.above) {
            input = t.input;
            output = t.output;
            cache_read = t.cache_read.or(cache_read);
            cache_write = t.cache_write.or(cache_write);
        }
        // The batch API discounts every price by the same ratio (half, at every large provider).
        let mut scale = 1.0;
        if u.batch
            && let Some((bi, bo)) = self.batch
        {
            scale = if input > 0.0 { bi / input } else { 1.0 };
            input = bi;
            output = bo;
        }
        let at = |p: Option<f64>, base: f64| p.map(|p| p * scale).unwrap_or(base);
        let plain_in = (u.input - u.cache_read - u.cache_write - u.audio_input).max(0);
        let plain_out = (u.output - u.reasoning - u.audio_output).max(0);
        plain_in as f64 * input
            + u.cache_read as f64 * at(cache_read, input)
            + u.cache_write as f64 * at(cache_write, input)
            + u.audio_input as f64 * at(self.audio_input, input)
            + plain_out as f64 * output
            + u.reasoning as f64 * at(self.reasoning, output)
            + u.audio_output as f64 * at(self.audio_output, output)
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-DD` as Unix milliseconds at UTC midnight.
pub fn date_ms(s: &str) -> Option<i64> {
    let mut parts = s.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, d) = (parts.next()??, parts.next()??, parts.next()??);
    if s.len() != 10 || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    Some(days_from_civil(y, m, d) * 86_400_000)
}

/// Every price of every model: by model name, all its (host, date) rows, each host's rows in date
/// order.
pub struct Prices {
    table: ModelTable<Vec<Price>>,
}

/// The columns of `prices.tsv`, in order.
const COLUMNS: [&str; 19] = [
    "model",
    "provider",
    "host",
    "input",
    "output",
    "cache_read",
    "cache_write",
    "reasoning",
    "audio_input",
    "audio_output",
    "tier_above",
    "tier_input",
    "tier_output",
    "tier_cache_read",
    "tier_cache_write",
    "batch_input",
    "batch_output",
    "effective_from",
    "source",
];

fn parse_row(line: &str) -> Result<(String, Price), String> {
    let f: Vec<&str> = line.split('\t').collect();
    if f.len() != COLUMNS.len() {
        return Err(format!("{} columns, expected {}", f.len(), COLUMNS.len()));
    }
    let num = |i: usize| -> Result<Option<f64>, String> {
        match f[i] {
            "" => Ok(None),
            s => s
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v >= 0.0)
                .map(|v| Some(v / 1e6))
                .ok_or_else(|| format!("{}: '{s}' is not a price", COLUMNS[i])),
        }
    };
    let need = |i: usize| num(i)?.ok_or_else(|| format!("{} is required", COLUMNS[i]));
    let tier = match f[10] {
        "" => None,
        above => Some(Tier {
            above: above
                .parse()
                .map_err(|_| format!("tier_above: '{above}' is not a token count"))?,
            input: need(11)?,
            output: need(12)?,
            cache_read: num(13)?,
            cache_write: num(14)?,
        }),
    };
    let batch = match (num(15)?, num(16)?) {
        (Some(i), Some(o)) => Some((i, o)),
        _ => None,
    };
    let price = Price {
        provider: f[1].to_string(),
        host: f[2].to_string(),
        input: need(3)?,
        output: need(4)?,
        cache_read: num(5)?,
        cache_write: num(6)?,
        reasoning: num(7)?,
        audio_input: num(8)?,
        audio_output: num(9)?,
        tier,
        batch,
        effective_from_ms: date_ms(f[17])
            .ok_or_else(|| format!("effective_from: '{}' is not YYYY-MM-DD", f[17]))?,
        source: f[18].to_string(),
    };
    Ok((f[0].to_string(), price))
}

impl Prices {
    /// The bundled table.
    pub fn bundled() -> Result<Self, String> {
        Self::parse(PRICES)
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let mut by_name: Vec<(String, Vec<Price>)> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let (name, price) =
                parse_row(line).map_err(|e| format!("prices.tsv line {}: {e}", n + 1))?;
            // Names the table matches alike are one model (`mistralai/mistral-medium-3` on
            // Vertex AI and `mistral-medium-3` at Mistral).
            let name = normalize(&name);
            let i = *index.entry(name.clone()).or_insert_with(|| {
                by_name.push((name, Vec::new()));
                by_name.len() - 1
            });
            by_name[i].1.push(price);
        }
        let mut table = ModelTable::new();
        by_name.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, mut rows) in by_name {
            rows.sort_by(|a, b| {
                (a.host.as_str(), a.effective_from_ms).cmp(&(b.host.as_str(), b.effective_from_ms))
            });
            table.insert(&name, rows);
        }
        Ok(Prices { table })
    }

    /// Model names with at least one price.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// The rows of the host that serves `model` for an event that says `provider`, in date order:
    /// the host the model name or the provider names (`bedrock/…`, `us.meta.…`, `provider: groq`),
    /// else the model's maker, else any host.
    pub fn rows(&self, model: &str, provider: Option<&str>) -> Option<Vec<Price>> {
        let all = self.table.get(model)?;
        let want = host_of(model, provider);
        let pick =
            |host: &str| -> Vec<Price> { all.iter().filter(|p| p.host == host).cloned().collect() };
        for host in want.iter().map(String::as_str) {
            let rows = pick(host);
            if !rows.is_empty() {
                return Some(rows);
            }
        }
        let first_party = all.iter().find(|p| FIRST_PARTY.contains(&p.host.as_str()));
        Some(pick(&first_party.unwrap_or(&all[0]).host))
    }
}

/// The row of `rows` (one host's, in date order) in effect at `ts_ms`; before the first date, the
/// first row (the oldest price known).
pub fn at_time(rows: &[Price], ts_ms: i64) -> Option<&Price> {
    rows.iter()
        .rev()
        .find(|p| p.effective_from_ms <= ts_ms)
        .or_else(|| rows.first())
}

/// Hosts that are the model maker's own API.
const FIRST_PARTY: [&str; 7] = [
    "openai",
    "anthropic",
    "gemini",
    "mistral",
    "cohere",
    "deepseek",
    "meta",
];

/// The table's host names an event points at, most specific first.
fn host_of(model: &str, provider: Option<&str>) -> Vec<String> {
    let m = model.trim().to_ascii_lowercase();
    let mut out = Vec::new();
    let named = [
        ("bedrock/", "bedrock"),
        ("vertex_ai/", "vertex_ai"),
        ("azure/", "azure"),
        ("azure_ai/", "azure"),
        ("groq/", "groq"),
        ("together_ai/", "together_ai"),
        ("together/", "together_ai"),
    ];
    if let Some((_, host)) = named.iter().find(|(p, _)| m.starts_with(p)) {
        out.push(host.to_string());
    } else if m.contains(':') && m.contains('.') && !m.contains('/') {
        // `anthropic.claude-…-v1:0`, `us.meta.llama…-v1:0`: a Bedrock model id.
        out.push("bedrock".into());
    }
    if let Some(p) = provider {
        let p = p.trim().to_ascii_lowercase();
        let host = match p.as_str() {
            "aws" | "bedrock" | "aws-bedrock" | "aws_bedrock" | "amazon-bedrock"
            | "bedrock_converse" => "bedrock",
            "vertex" | "vertex_ai" | "vertexai" | "google-vertex" | "gcp.vertex_ai" => "vertex_ai",
            "azure" | "azure_openai" | "azure-openai" | "azure_ai" | "az.ai.openai" => "azure",
            "together" | "together_ai" | "togetherai" => "together_ai",
            "google" | "gemini" | "google-genai" | "gcp.gemini" => "gemini",
            "mistralai" | "mistral" => "mistral",
            "cohere" => "cohere",
            other => other,
        };
        out.push(host.to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc_midnights() {
        assert_eq!(date_ms("1970-01-01"), Some(0));
        assert_eq!(date_ms("2026-12-05"), Some(1_796_428_800_000));
        assert_eq!(date_ms("2024-02-29"), Some(1_709_164_800_000));
        assert_eq!(date_ms("2026-13-01"), None);
        assert_eq!(date_ms("2026-1-1"), None);
    }
}
