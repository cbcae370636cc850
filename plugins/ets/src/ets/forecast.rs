//! A fitted model's point forecasts and prediction variances (analytic; classes 1–3 of
//! Hyndman et al. 2008, chapter 6).

use super::*;

impl Fit {
    /// The point forecasts and their variances for steps 1..=h.
    pub fn forecast(&self, h: usize) -> (Vec<f64>, Vec<f64>) {
        let Params {
            alpha,
            beta,
            gamma,
            phi,
        } = self.par;
        let m = self.m;
        let seasonal = self.spec.has_season();
        // phi_k = phi + ... + phi^k (k for an undamped trend, 0 without one).
        let mut phi_k = Vec::with_capacity(h + 1);
        phi_k.push(0.0);
        let mut pk = 1.0;
        for k in 1..=h {
            let v = match self.spec.trend {
                Trend::N => 0.0,
                Trend::A => k as f64,
                Trend::Ad => {
                    pk *= phi;
                    phi_k[k - 1] + pk
                }
            };
            phi_k.push(v);
        }
        let season_at = |k: usize| {
            if seasonal {
                self.s[(self.n + k - 1) % m]
            } else {
                0.0
            }
        };
        let level = |k: usize| self.l + phi_k[k] * self.b;
        let mean: Vec<f64> = (1..=h)
            .map(|k| match self.spec.season {
                Season::N => level(k),
                Season::A => level(k) + season_at(k),
                Season::M => level(k) * season_at(k),
            })
            .collect();
        // c_j: the weight of the error j steps back in the forecast error (Hyndman et al.
        // 2008, table 6.1): alpha + beta phi_j + gamma [j is a multiple of m].
        let c = |j: usize, with_season: bool| {
            let mut v = alpha;
            if self.spec.has_trend() {
                v += beta * phi_k[j];
            }
            if with_season && seasonal && j.is_multiple_of(m) {
                v += gamma;
            }
            v
        };
        let s2 = self.sigma2;
        let var: Vec<f64> = match (self.spec.error, self.spec.season) {
            // Class 1: v_h = sigma² (1 + sum_{j<h} c_j²).
            (ErrorType::A, _) => {
                let mut acc = 1.0;
                (1..=h)
                    .map(|k| {
                        if k > 1 {
                            acc += c(k - 1, true).powi(2);
                        }
                        s2 * acc
                    })
                    .collect()
            }
            // Multiplicative errors this far ahead (a long gap before the horizon): the exact
            // recursions below cost h², so the first-order approximation
            // v_h = mu_h² sigma² (1 + sum_{j<h} c_j²) stands in.
            (ErrorType::M, _) if h > EXACT_STEPS => {
                let mut acc = 1.0;
                (1..=h)
                    .map(|k| {
                        if k > 1 {
                            acc += c(k - 1, true).powi(2);
                        }
                        mean[k - 1].powi(2) * s2 * acc
                    })
                    .collect()
            }
            // Class 2: theta_h = mu_h² + sigma² sum_{j<h} c_j² theta_{h-j},
            // v_h = (1 + sigma²) theta_h - mu_h².
            (ErrorType::M, Season::N | Season::A) => {
                let c2: Vec<f64> = (0..h).map(|j| c(j, true).powi(2)).collect();
                class2(&mean, &c2, s2)
            }
            // Class 3 (multiplicative season): the level-and-trend part is class 2 and is
            // scaled by the season. Exact for h <= m; beyond, the seasonal state's own error
            // (gamma) is taken as independent of the level's: E[s²] = s² (1 + gamma² sigma²)^k
            // after k seasonal updates.
            (ErrorType::M, Season::M) => {
                let base: Vec<f64> = (1..=h).map(level).collect();
                let c2: Vec<f64> = (0..h).map(|j| c(j, false).powi(2)).collect();
                let theta = class2_theta(&base, &c2, s2);
                (1..=h)
                    .map(|k| {
                        let s = season_at(k);
                        let updates = ((k - 1) / m) as i32;
                        let es2 = (1.0 + gamma * gamma * s2).powi(updates);
                        s * s * ((1.0 + s2) * theta[k - 1] * es2 - base[k - 1].powi(2))
                    })
                    .collect()
            }
        };
        // Rounding can leave a tiny negative; a NaN stays (the caller refuses the model).
        let var = var
            .into_iter()
            .map(|v| if v < 0.0 { 0.0 } else { v })
            .collect();
        (mean, var)
    }
}

/// Steps ahead up to which a multiplicative error's variance is computed exactly.
pub const EXACT_STEPS: usize = 1200;

pub(super) fn class2_theta(mu: &[f64], c2: &[f64], s2: f64) -> Vec<f64> {
    let h = mu.len();
    let mut theta = Vec::with_capacity(h);
    for k in 0..h {
        // theta[k] = mu[k]² + s2 * sum_{j=1..k} c2[j] * theta[k - j]
        let mut acc = 0.0;
        for j in 1..=k {
            acc += c2[j] * theta[k - j];
        }
        theta.push(mu[k] * mu[k] + s2 * acc);
    }
    theta
}

pub(super) fn class2(mu: &[f64], c2: &[f64], s2: f64) -> Vec<f64> {
    class2_theta(mu, c2, s2)
        .iter()
        .zip(mu)
        .map(|(t, m)| (1.0 + s2) * t - m * m)
        .collect()
}
