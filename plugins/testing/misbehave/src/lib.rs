//! Misbehaves in the way its configuration says, inside `enrich`. Never enable it for a tenant:
//! it exists so that the host's tests can prove every kind of misbehaviour is contained.

use hub_plugin_sdk::{Batch, Enricher, Error, Field, Patches, RawValue, Value, http, kv, log};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default = "ok")]
    mode: String,
}

fn ok() -> String {
    "ok".into()
}

pub struct Misbehave {
    mode: String,
    calls: u64,
}

impl Enricher for Misbehave {
    type Config = Config;

    fn new(config: Config) -> Result<Self, Error> {
        Ok(Misbehave {
            mode: config.mode,
            calls: 0,
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
                }
                for row in batch.rows() {
                    out.cost_usd(row.index(), 0.001);
                }
            }
            "http" => {
                http::get("http://forbidden.example/steal")?;
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
