//! `ets`: exponential smoothing with automatic model selection (the AutoETS family).
//!
//! For each series: missing steps are interpolated ([`prep`]), the season length is taken from
//! the configuration or found from the step and the autocorrelation ([`season`]), every
//! admissible ETS(error, trend, season) model is fitted by maximum likelihood and the one with
//! the lowest AICc forecasts, with 95% prediction intervals ([`ets`]). Short or flat histories
//! fall back to simpler forecasts; see the crate's README.md for the rules.

pub mod ets;
pub mod nelder_mead;

use ets::{Family, Season, Spec};
use hub_plugin_sdk::stats::season::{MAX_SEASON_LENGTH, SeasonLength, Z95};
use hub_plugin_sdk::stats::{prep, season};
use hub_plugin_sdk::{Error, Forecast, Forecaster, Series};
use serde::Deserialize;

/// The longest season fitted as seasonal ETS states; longer ones (288 five-minute steps, 1440
/// minutes) are divided out (or subtracted) as a seasonal profile first.
pub const MAX_ETS_SEASON: usize = 200;
/// Fewer points than this get the naive forecast instead of a fitted model.
pub const MIN_ETS_POINTS: usize = 7;

/// The tenant's configuration (see plugin.toml's schema and README.md).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub season_length: SeasonLength,
    /// Three letters, error (A, M, Z) trend (N, A, Z) season (N, A, M, Z); Z = choose.
    #[serde(default)]
    pub model: Option<String>,
    /// true: damped trends only; false: undamped only; absent: both.
    #[serde(default)]
    pub damped: Option<bool>,
}

/// The forecaster.
#[derive(Debug, Clone)]
pub struct Ets {
    season: SeasonLength,
    family: Family,
}

/// One series' forecast, before it becomes a [`Forecast`].
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    pub mean: Vec<f64>,
    pub lower: Vec<f64>,
    pub upper: Vec<f64>,
    /// What forecast it: `ETS(MAdM, m=24)`, `naive`, `flat`, ...
    pub method: String,
    /// The season length used (1: none).
    pub season: usize,
}

impl Ets {
    /// The forecaster for a configuration; errors name the field.
    pub fn from_config(config: Config) -> Result<Ets, Error> {
        if let SeasonLength::Fixed(m) = config.season_length
            && !(1..=MAX_SEASON_LENGTH).contains(&m)
        {
            return Err(Error::bad_config(format!(
                "season_length: must be a whole number from 1 to {MAX_SEASON_LENGTH} (1: no season) or \"auto\", got {m}"
            )));
        }
        let mut family = Family::ALL;
        if let Some(model) = &config.model {
            let letters: Vec<char> = model.chars().collect();
            if letters.len() != 3 {
                return Err(Error::bad_config(format!(
                    "model: must be three letters, error (A, M, Z), trend (N, A, Z) and season (N, A, M, Z), such as \"ZZZ\" or \"MAM\"; got \"{model}\""
                )));
            }
            family.errors = match letters[0] {
                'A' => [true, false],
                'M' => [false, true],
                'Z' => [true, true],
                c => {
                    return Err(Error::bad_config(format!(
                        "model: the error (first letter) is A, M or Z, not {c}"
                    )));
                }
            };
            family.trends = match letters[1] {
                'N' => [true, false, false],
                'A' => [false, true, true],
                'Z' => [true, true, true],
                'M' => {
                    return Err(Error::bad_config(
                        "model: multiplicative trends (second letter M) are not supported; use N, A or Z (with `damped` for a damped trend)",
                    ));
                }
                c => {
                    return Err(Error::bad_config(format!(
                        "model: the trend (second letter) is N, A or Z, not {c}"
                    )));
                }
            };
            family.seasons = match letters[2] {
                'N' => [true, false, false],
                'A' => [false, true, false],
                'M' => [false, false, true],
                'Z' => [true, true, true],
                c => {
                    return Err(Error::bad_config(format!(
                        "model: the season (third letter) is N, A, M or Z, not {c}"
                    )));
                }
            };
            if letters[0] == 'A' && letters[2] == 'M' {
                return Err(Error::bad_config(format!(
                    "model: \"{model}\": an additive error with a multiplicative season is numerically unstable and not offered; use M{}M or Z{}M",
                    letters[1], letters[1]
                )));
            }
            if matches!(letters[2], 'A' | 'M') && config.season_length == SeasonLength::Fixed(1) {
                return Err(Error::bad_config(format!(
                    "model: \"{model}\" is seasonal but season_length is 1 (no season); set season_length or \"auto\", or use season N or Z"
                )));
            }
        }
        match config.damped {
            Some(true) => {
                if !family.trends[1] && !family.trends[2] {
                    return Err(Error::bad_config(
                        "damped: true needs a trend, but the model's trend (second letter) is N",
                    ));
                }
                family.trends = [false, false, true];
            }
            Some(false) => family.trends[2] = false,
            None => {}
        }
        Ok(Ets {
            season: config.season_length,
            family,
        })
    }

    /// The forecast of one series: `values` at `step_ms`, with `len` timestamps (values past
    /// the last one count as missing), for `horizon` steps after the last timestamp. `None`
    /// when the series has no finite value.
    pub fn predict(
        &self,
        values: &[f64],
        len: usize,
        step_ms: u32,
        horizon: usize,
    ) -> Option<Prediction> {
        let p = prep::prepare(values, len)?;
        let steps = p.gap + horizon;
        let m = match self.season {
            SeasonLength::Fixed(m) => m as usize,
            SeasonLength::Auto => season::detect(&p.y, step_ms),
        };
        let (mean, var, method, season) = self.model(&p.y, m, steps);
        let last = *p.y.last()?;
        // Numbers past f64 (a history near 1e300) fall back to the naive forecast, and that
        // to a flat line: the host refuses a whole answer with one non-finite number in it.
        let (lower, mean, upper, method) = bounds(&mean[p.gap..], &var[p.gap..], p.nonneg)
            .map(|(l, m, u)| (l, m, u, method))
            .or_else(|| {
                let (mean, var) = naive(&p.y, steps);
                bounds(&mean[p.gap..], &var[p.gap..], p.nonneg)
                    .map(|(l, m, u)| (l, m, u, "naive".to_string()))
            })
            .unwrap_or_else(|| {
                let flat = vec![last; horizon];
                (flat.clone(), flat.clone(), flat, "flat".to_string())
            });
        Some(Prediction {
            mean,
            lower,
            upper,
            method,
            season,
        })
    }

    /// Point forecasts and variances for `steps` steps after the end of `y`, the method's
    /// name and the season length used.
    fn model(&self, y: &[f64], m: usize, steps: usize) -> (Vec<f64>, Vec<f64>, String, usize) {
        let n = y.len();
        let last = y[n - 1];
        if n == 1 {
            // Nothing is known about the spread: a band of the value's own size.
            let sd = last.abs() / Z95;
            return (
                vec![last; steps],
                vec![sd * sd; steps],
                "flat (one point)".into(),
                1,
            );
        }
        if y.iter().all(|v| *v == y[0]) {
            return (vec![last; steps], vec![0.0; steps], "flat".into(), 1);
        }
        if n >= MIN_ETS_POINTS {
            let seasonal = m >= 2 && season::long_enough(n, m);
            if seasonal && m > MAX_ETS_SEASON {
                if let Some(out) = self.deseasonalised(y, m, steps) {
                    return out;
                }
            } else if let Some((mean, var, spec)) =
                best(&self.family, y, if seasonal { m } else { 1 }, steps)
            {
                let used = if spec.season == Season::N { 1 } else { m };
                return (mean, var, format!("ETS({}, m={used})", spec.name()), used);
            }
        }
        let (mean, var) = naive(y, steps);
        (mean, var, "naive".into(), 1)
    }

    /// A long season (more than [`MAX_ETS_SEASON`] steps): the seasonal profile from a
    /// classical decomposition is divided out (a positive series) or subtracted, a
    /// non-seasonal model forecasts what is left, and the profile is put back.
    fn deseasonalised(
        &self,
        y: &[f64],
        m: usize,
        steps: usize,
    ) -> Option<(Vec<f64>, Vec<f64>, String, usize)> {
        let mult = y.iter().all(|v| *v > 0.0);
        let profile = ets::seasonal_indices(y, m, mult)?;
        let adjusted: Vec<f64> = y
            .iter()
            .enumerate()
            .map(|(t, v)| {
                if mult {
                    v / profile[t % m]
                } else {
                    v - profile[t % m]
                }
            })
            .collect();
        let mut family = self.family;
        family.seasons = [true, false, false];
        let (mean, var, spec) = best(&family, &adjusted, 1, steps)?;
        let n = y.len();
        let (mean, var) = mean
            .iter()
            .zip(&var)
            .enumerate()
            .map(|(k, (mu, v))| {
                let s = profile[(n + k) % m];
                if mult {
                    (mu * s, v * s * s)
                } else {
                    (mu + s, *v)
                }
            })
            .unzip();
        let how = if mult { "divided by" } else { "less" };
        Some((
            mean,
            var,
            format!("ETS({}) {how} a seasonal profile, m={m}", spec.name()),
            m,
        ))
    }
}

/// The forecast of the lowest-AICc model of `family` whose numbers are all finite.
fn best(family: &Family, y: &[f64], m: usize, steps: usize) -> Option<(Vec<f64>, Vec<f64>, Spec)> {
    ets::select(y, m, family)
        .into_iter()
        .map(|fit| {
            let (mean, var) = fit.forecast(steps);
            (mean, var, fit.spec)
        })
        .find(|(mean, var, _)| mean.iter().chain(var).all(|v| v.is_finite()))
}

/// The 95% bounds around `mean` with variances `var` (clamped at 0 for a non-negative
/// series), or `None` when a number is not finite.
#[allow(clippy::type_complexity)]
fn bounds(mean: &[f64], var: &[f64], nonneg: bool) -> Option<(Vec<f64>, Vec<f64>, Vec<f64>)> {
    let mut out = (
        Vec::with_capacity(mean.len()),
        Vec::with_capacity(mean.len()),
        Vec::with_capacity(mean.len()),
    );
    for (mu, v) in mean.iter().zip(var) {
        let w = Z95 * v.sqrt();
        let (mut lo, mut mu, mut hi) = (mu - w, *mu, mu + w);
        if !(lo.is_finite() && mu.is_finite() && hi.is_finite()) {
            return None;
        }
        if nonneg {
            mu = mu.max(0.0);
            lo = lo.max(0.0);
            hi = hi.max(mu);
        }
        out.0.push(lo.min(mu));
        out.1.push(mu);
        out.2.push(hi.max(mu));
    }
    Some(out)
}

/// The last value, with the spread of the steps so far growing as a random walk's.
fn naive(y: &[f64], steps: usize) -> (Vec<f64>, Vec<f64>) {
    let last = y[y.len() - 1];
    let diffs = y.len() - 1;
    let s2 = if diffs == 0 {
        0.0
    } else {
        y.windows(2).map(|w| (w[1] - w[0]).powi(2)).sum::<f64>() / diffs as f64
    };
    (
        vec![last; steps],
        (1..=steps).map(|k| s2 * k as f64).collect(),
    )
}

impl Forecaster for Ets {
    type Config = Config;

    fn new(config: Config) -> Result<Self, Error> {
        Ets::from_config(config)
    }

    fn forecast(&mut self, input: &[Series], horizon: u32) -> Result<Vec<Forecast>, Error> {
        Ok(hub_plugin_sdk::forecast_each(input, horizon, |s| {
            let p = self.predict(&s.values, s.ts_ms.len(), s.step_ms, horizon as usize)?;
            Some((p.mean, p.lower, p.upper))
        }))
    }
}

hub_plugin_sdk::export_forecaster!(Ets);

#[cfg(test)]
mod tests;
