//! A detector that reports the newest point of every series as an anomaly, rightly (`ok`) or
//! wrongly on request, so that the host's tests can show a wrong answer is refused whole.

use hub_plugin_sdk::{Anomaly, Detector, Error, Series, Severity};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default = "ok")]
    mode: String,
}

fn ok() -> String {
    "ok".into()
}

pub struct Misreport {
    mode: String,
}

impl Detector for Misreport {
    type Config = Config;

    fn new(config: Config) -> Result<Self, Error> {
        Ok(Misreport { mode: config.mode })
    }

    fn detect(&mut self, input: &[Series]) -> Result<Vec<Anomaly>, Error> {
        if self.mode == "error" {
            return Err(Error::internal("asked to fail"));
        }
        let mut out = Vec::new();
        for (i, s) in input.iter().enumerate() {
            let (Some(&ts), Some(&value)) = (s.ts_ms.last(), s.values.last()) else {
                continue;
            };
            let mut a = Anomaly {
                series: i as u32,
                ts_ms: ts,
                value,
                expected: Some(0.0),
                lower: None,
                upper: None,
                score: 1.0,
                severity: Severity::Info,
                reason: format!("{} reported on request", s.metric),
            };
            match self.mode.as_str() {
                "foreign-time" => a.ts_ms += 1,
                "foreign-series" => a.series = input.len() as u32,
                "nan" => a.value = f64::NAN,
                "infinite" => a.upper = Some(f64::INFINITY),
                "flood" => {
                    for _ in 0..s.ts_ms.len() + 1 {
                        out.push(a.clone());
                    }
                }
                _ => {}
            }
            out.push(a);
        }
        Ok(out)
    }
}

hub_plugin_sdk::export_detector!(Misreport);
