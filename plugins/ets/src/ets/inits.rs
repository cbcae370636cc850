//! The initial states: seasonal indices from a classical decomposition, level and trend from a
//! regression on the first deseasonalised points.

use super::*;

/// The initial states' ingredients for one series and season length, shared by all candidates.
#[derive(Debug, Clone)]
pub struct Inits {
    m: usize,
    /// Additive seasonal indices by position (`t mod m`), summing to 0.
    additive: Option<Vec<f64>>,
    /// Multiplicative ones, averaging 1, each at least 0.01.
    multiplicative: Option<Vec<f64>>,
}

impl Inits {
    /// `additive`/`multiplicative`: whether seasonal models of that kind will be fitted.
    pub fn new(y: &[f64], m: usize, additive: bool, multiplicative: bool) -> Inits {
        Inits {
            m,
            additive: if additive && m >= 2 {
                seasonal_indices(y, m, false)
            } else {
                None
            },
            multiplicative: if multiplicative && m >= 2 {
                seasonal_indices(y, m, true)
            } else {
                None
            },
        }
    }

    /// Initial (level, trend, seasonal ring) for a model, or `None` when its season could not
    /// be estimated.
    pub(super) fn for_spec(&self, y: &[f64], spec: Spec) -> Option<(f64, f64, Vec<f64>)> {
        let m = self.m;
        let season: Vec<f64> = match spec.season {
            Season::N => Vec::new(),
            Season::A => self.additive.clone()?,
            Season::M => self.multiplicative.clone()?,
        };
        let adjusted = |t: usize| match spec.season {
            Season::N => y[t],
            Season::A => y[t] - season[t % m],
            Season::M => y[t] / season[t % m],
        };
        let period = if spec.has_season() { m } else { 1 };
        let k = (2 * period).max(10).min(y.len());
        let (l0, b0) = if spec.has_trend() {
            // Least squares on x = 1..=k: the level at x = 0 and the slope.
            let kf = k as f64;
            let mx = (kf + 1.0) / 2.0;
            let my = (0..k).map(adjusted).sum::<f64>() / kf;
            let (mut sxy, mut sxx) = (0.0, 0.0);
            for t in 0..k {
                let dx = (t + 1) as f64 - mx;
                sxy += dx * (adjusted(t) - my);
                sxx += dx * dx;
            }
            let b = if sxx > 0.0 { sxy / sxx } else { 0.0 };
            let mut l = my - b * mx;
            let mut b = b;
            if (l + b).abs() < 1e-8 {
                // A multiplicative error must not start from a zero forecast.
                l *= 1.0 + 1e-3;
                b *= 1.0 - 1e-3;
            }
            (l, b)
        } else {
            ((0..k).map(adjusted).sum::<f64>() / k as f64, 0.0)
        };
        Some((l0, b0, season))
    }
}

/// Seasonal indices by position from a classical decomposition: a centred moving average of
/// length m (2×m when m is even) is the trend; the detrended values (differences or ratios)
/// are averaged by position and normalised (sum 0, or mean 1 and at least 0.01). For ratios
/// the trend is then re-estimated from the deseasonalised series (twice): a moving average of a
/// trend times a season is biased by the season, one of the deseasonalised series much less.
pub fn seasonal_indices(y: &[f64], m: usize, multiplicative: bool) -> Option<Vec<f64>> {
    if m < 2 || y.len() < 2 * m {
        return None;
    }
    let mut idx = indices_once(y, m, multiplicative, None)?;
    if multiplicative {
        for _ in 0..2 {
            idx = indices_once(y, m, true, Some(&idx))?;
        }
    }
    Some(idx)
}

/// One decomposition; `season`: the indices to take out of y before the moving average.
fn indices_once(
    y: &[f64],
    m: usize,
    multiplicative: bool,
    season: Option<&[f64]>,
) -> Option<Vec<f64>> {
    let n = y.len();
    let half = m / 2;
    let mut sums = vec![0.0f64; m];
    let mut counts = vec![0usize; m];
    let adj = |t: usize| match season {
        Some(s) => y[t] / s[t % m],
        None => y[t],
    };
    // The centred moving average from prefix sums: centres half..n-half, each window
    // y[t-half..=t+half] (for even m that is m + 1 points, the two ends at half weight).
    let mut prefix = Vec::with_capacity(n + 1);
    prefix.push(0.0f64);
    for t in 0..n {
        prefix.push(prefix[t] + adj(t));
    }
    for t in half..n - half {
        let full = prefix[t + half + 1] - prefix[t - half];
        let trend = if m % 2 == 1 {
            full / m as f64
        } else {
            (full - 0.5 * (adj(t - half) + adj(t + half))) / m as f64
        };
        let d = if multiplicative {
            if trend > 0.0 { y[t] / trend } else { f64::NAN }
        } else {
            y[t] - trend
        };
        if d.is_finite() {
            sums[t % m] += d;
            counts[t % m] += 1;
        }
    }
    if counts.contains(&0) {
        return None;
    }
    let mut idx: Vec<f64> = sums
        .iter()
        .zip(&counts)
        .map(|(s, c)| s / *c as f64)
        .collect();
    let mean = idx.iter().sum::<f64>() / m as f64;
    if multiplicative {
        if mean.is_nan() || mean <= 0.0 {
            return None;
        }
        for v in idx.iter_mut() {
            *v = (*v / mean).max(0.01);
        }
    } else {
        for v in idx.iter_mut() {
            *v -= mean;
        }
    }
    Some(idx)
}
