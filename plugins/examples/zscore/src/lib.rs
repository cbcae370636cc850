//! An example detector: for each of the last `check_last` points of a series, the mean and standard
//! deviation of the `window` points before it; a point more than `threshold` deviations away is an
//! anomaly (`critical` past `critical` deviations).

use hub_plugin_sdk::{Anomaly, Detector, Error, Series, Severity};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default = "window")]
    window: usize,
    #[serde(default = "threshold")]
    threshold: f64,
    #[serde(default = "critical")]
    critical: f64,
    #[serde(default = "one")]
    check_last: usize,
}

fn window() -> usize {
    60
}
fn threshold() -> f64 {
    3.0
}
fn critical() -> f64 {
    5.0
}
fn one() -> usize {
    1
}

pub struct ZScore {
    config: Config,
}

impl Detector for ZScore {
    type Config = Config;

    fn new(config: Config) -> Result<Self, Error> {
        if config.critical < config.threshold {
            return Err(Error::bad_config("critical: must be at least threshold"));
        }
        Ok(ZScore { config })
    }

    fn detect(&mut self, input: &[Series]) -> Result<Vec<Anomaly>, Error> {
        let c = &self.config;
        let mut out = Vec::new();
        for (si, s) in input.iter().enumerate() {
            let n = s.values.len().min(s.ts_ms.len());
            let first = n.saturating_sub(c.check_last).max(c.window);
            for i in first..n {
                // NaN is a step without a value (a latency with no requests): not a point.
                if s.values[i].is_nan() {
                    continue;
                }
                let past: Vec<f64> = s.values[i - c.window..i]
                    .iter()
                    .copied()
                    .filter(|v| !v.is_nan())
                    .collect();
                if past.len() < 2 {
                    continue;
                }
                let mean = past.iter().sum::<f64>() / past.len() as f64;
                let var = past.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / past.len() as f64;
                let sd = var.sqrt().max(f64::EPSILON);
                let z = (s.values[i] - mean) / sd;
                if z.abs() < c.threshold {
                    continue;
                }
                out.push(Anomaly {
                    series: si as u32,
                    ts_ms: s.ts_ms[i],
                    value: s.values[i],
                    expected: Some(mean),
                    lower: Some(mean - c.threshold * sd),
                    upper: Some(mean + c.threshold * sd),
                    score: z.abs(),
                    severity: if z.abs() >= c.critical { Severity::Critical } else { Severity::Warning },
                    reason: format!(
                        "{} is {:.1} standard deviations {} the mean of the previous {} points ({:.3})",
                        s.metric,
                        z.abs(),
                        if z > 0.0 { "above" } else { "below" },
                        c.window,
                        mean
                    ),
                });
            }
        }
        Ok(out)
    }
}

hub_plugin_sdk::export_detector!(ZScore);
