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
            // Steps without a value (NaN: a latency with no requests) are left out of the fit.
            let points: Vec<(f64, f64)> = (0..n)
                .filter(|i| s.values[*i].is_finite())
                .map(|i| (i as f64, s.values[i]))
                .collect();
            let k = points.len() as f64;
            if points.len() < 2 {
                continue;
            }
            let (mx, my) = (
                points.iter().map(|p| p.0).sum::<f64>() / k,
                points.iter().map(|p| p.1).sum::<f64>() / k,
            );
            let sxy: f64 = points.iter().map(|(x, y)| (x - mx) * (y - my)).sum();
            let sxx: f64 = points.iter().map(|(x, _)| (x - mx).powi(2)).sum();
            let slope = sxy / sxx;
            let intercept = my - slope * mx;
            let resid = (points
                .iter()
                .map(|(x, y)| (y - (intercept + slope * x)).powi(2))
                .sum::<f64>()
                / k)
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
