//! An example forecaster: fits a least-squares line to each series and extends it `horizon` steps,
//! with a band of `width` (default 2) standard deviations of the residuals.

use hub_plugin_sdk::{Error, Forecast, Forecaster, Series};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default = "two")]
    width: f64,
}

fn two() -> f64 {
    2.0
}

pub struct Linear {
    width: f64,
}

impl Forecaster for Linear {
    type Config = Config;

    fn new(config: Config) -> Result<Self, Error> {
        Ok(Linear {
            width: config.width,
        })
    }

    fn forecast(&mut self, input: &[Series], horizon: u32) -> Result<Vec<Forecast>, Error> {
        let mut out = Vec::new();
        for (si, s) in input.iter().enumerate() {
            let n = s.values.len().min(s.ts_ms.len());
            if n < 2 {
                continue;
            }
            let xs: Vec<f64> = (0..n).map(|i| i as f64).collect();
            let (mx, my) = (
                xs.iter().sum::<f64>() / n as f64,
                s.values[..n].iter().sum::<f64>() / n as f64,
            );
            let sxy: f64 = (0..n).map(|i| (xs[i] - mx) * (s.values[i] - my)).sum();
            let sxx: f64 = xs.iter().map(|x| (x - mx).powi(2)).sum();
            let slope = sxy / sxx;
            let intercept = my - slope * mx;
            let resid = ((0..n)
                .map(|i| (s.values[i] - (intercept + slope * xs[i])).powi(2))
                .sum::<f64>()
                / n as f64)
                .sqrt();
            let last = s.ts_ms[n - 1];
            let mut f = Forecast {
                series: si as u32,
                ts_ms: vec![],
                mean: vec![],
                lower: vec![],
                upper: vec![],
            };
            for h in 1..=horizon as usize {
                let y = intercept + slope * (n - 1 + h) as f64;
                f.ts_ms.push(last + h as i64 * i64::from(s.step_ms));
                f.mean.push(y);
                f.lower.push(y - self.width * resid);
                f.upper.push(y + self.width * resid);
            }
            out.push(f);
        }
        Ok(out)
    }
}

hub_plugin_sdk::export_forecaster!(Linear);
