//! Misbehaves in the way its configuration says, inside `enrich`. Never enable it for a tenant:
//! it exists so that the host's tests can prove every kind of misbehaviour is contained.

use hub_plugin_sdk::{Batch, Enricher, Error, Field, Patches, RawValue, Value, http, kv, log};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default = "ok")]
    mode: String,
    /// `slow`: how long each call works before it succeeds.
    #[serde(default = "busy_ms")]
    busy_ms: u64,
    /// `hold`: how much memory the instance keeps between calls.
    #[serde(default = "hold_mib")]
    hold_mib: usize,
    /// `fetch`: the URL each call GETs.
    #[serde(default)]
    url: String,
}

fn busy_ms() -> u64 {
    900
}

fn hold_mib() -> usize {
    48
}

fn ok() -> String {
    "ok".into()
}

pub struct Misbehave {
    mode: String,
    busy_ms: u64,
    hold_mib: usize,
    url: String,
    calls: u64,
    held: Vec<Vec<u8>>,
}

impl Enricher for Misbehave {
    type Config = Config;

    fn new(config: Config) -> Result<Self, Error> {
        Ok(Misbehave {
            mode: config.mode,
            busy_ms: config.busy_ms,
            hold_mib: config.hold_mib,
            url: config.url,
            calls: 0,
            held: Vec::new(),
        })
    }

    fn enrich(&mut self, batch: &Batch, out: &mut Patches) -> Result<(), Error> {
        self.calls += 1;
        let n = batch.len() as u32;
        match self.mode.as_str() {
            "loop" => {
                let mut x: u64 = 0;
                loop {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            }
            "memory" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "slow" => {
                // Works for `busy_ms`, under any deadline above it, then succeeds: never a failure.
                let started = std::time::Instant::now();
                let mut x: u64 = 0;
                while started.elapsed().as_millis() < u128::from(self.busy_ms) {
                    for _ in 0..10_000 {
                        x = std::hint::black_box(x.wrapping_add(1));
                    }
                }
                for row in batch.rows() {
                    out.cost_usd(row.index(), 0.001);
                }
            }
            "hold" => {
                // Keeps `hold_mib` MiB (touched, so resident) for as long as the instance lives.
                while self.held.len() < self.hold_mib {
                    self.held.push(vec![1u8; 1 << 20]);
                }
                for row in batch.rows() {
                    out.cost_usd(row.index(), 0.001);
                }
            }
            "panic" => panic!("misbehave: panicking on purpose"),
            "invalid" => {
                out.cost_usd(n + 5, 1.0);
            }
            "bad-type" => {
                out.raw(0, Field::CostUsd, Value::Text("free".into()));
            }
            "bad-text" => {
                out.raw_wit(0, Field::Provider, RawValue::Text(999));
            }
            "bad-group" => {
                // A group whose rows reach past the batch: refused whole, like a single patch.
                out.group((0..=n).collect()).cost_usd(0.5);
            }
            "oversized" => {
                for row in 0..n {
                    for i in 0..20 {
                        out.tag(row, &format!("t{i}"), "x");
                    }
                }
            }
            "log-flood" => {
                let line = "x".repeat(10_000);
                for _ in 0..1000 {
                    log::warn(&line);
                    // And 20 MB to stdout and stderr, which the host keeps the last 4 KiB of.
                    println!("{line}");
                    eprintln!("{line}");
                }
                for row in batch.rows() {
                    out.cost_usd(row.index(), 0.001);
                }
            }
            "http" => {
                http::get("http://forbidden.example/steal")?;
            }
            "fetch" => {
                // Whatever `url` the tenant configured, within what the hub lets it reach.
                let status = http::get(&self.url)?.status;
                for row in batch.rows() {
                    out.tag(row.index(), "fetched", status.to_string().as_str());
                }
            }
            "error" => return Err(Error::internal("misbehave: failing on purpose")),
            "kv-quota" => {
                kv::set("big", &vec![0u8; 2 << 20]).map_err(Error::unavailable)?;
            }
            _ => {
                kv::set("calls", self.calls.to_string().as_bytes()).map_err(Error::internal)?;
                for row in batch.rows() {
                    out.cost_usd(row.index(), 0.001);
                }
            }
        }
        Ok(())
    }
}

hub_plugin_sdk::export_enricher!(Misbehave);
