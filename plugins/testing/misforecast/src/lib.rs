//! A forecaster that forecasts every series flat at its last value, rightly (`ok`) or wrongly on
//! request, so that the host's tests can show a wrong answer is refused whole.

use hub_plugin_sdk::{Error, Forecast, Forecaster, Series};
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

pub struct Misforecast {
    mode: String,
}

impl Forecaster for Misforecast {
    type Config = Config;

    fn new(config: Config) -> Result<Self, Error> {
        Ok(Misforecast { mode: config.mode })
    }

    fn forecast(&mut self, input: &[Series], horizon: u32) -> Result<Vec<Forecast>, Error> {
        let mut out = Vec::new();
        for (i, s) in input.iter().enumerate() {
            let (Some(&last), Some(&value)) = (s.ts_ms.last(), s.values.last()) else {
                continue;
            };
            let mut n = horizon as usize;
            if self.mode == "short" {
                n -= 1;
            }
            let mut ts: Vec<i64> = (1..=n as i64)
                .map(|k| last + k * i64::from(s.step_ms))
                .collect();
            if self.mode == "off-step" {
                ts[0] += 1;
            }
            let mut upper = vec![value + 1.0; n];
            if self.mode == "nan" {
                upper[0] = f64::NAN;
            }
            out.push(Forecast {
                series: i as u32,
                ts_ms: ts,
                mean: vec![value; n],
                lower: vec![value - 1.0; n],
                upper,
            });
        }
        Ok(out)
    }
}

hub_plugin_sdk::export_forecaster!(Misforecast);
