//! Exponential smoothing in its innovations state-space form (Hyndman, Koehler, Ord & Snyder,
//! *Forecasting with Exponential Smoothing*, 2008; R `forecast::ets`; statsforecast `AutoETS`):
//! the models, their likelihood, a maximum-likelihood fit of the smoothing parameters, automatic
//! selection by AICc, point forecasts and prediction variances.
//!
//! Differences from `forecast::ets`, all for speed (one series of 2,160 points must fit every
//! candidate in a few milliseconds, inside WebAssembly):
//! - The initial states are not optimised: they come from the usual heuristic (a classical
//!   decomposition of the whole history for the seasonal states, a regression on the first
//!   `max(10, 2m)` deseasonalised points for the level and trend). They still count as
//!   parameters in the AICc, as in `ets`.
//! - The parameters are kept in the "usual" region (`1e-4 <= beta <= alpha`, `gamma <= 1 -
//!   alpha`, `0.8 <= phi <= 0.98`): each is a fraction u of its interval, searched by
//!   Nelder–Mead over v with u = sin²(v) (no bounds for the simplex to collapse on), from the
//!   best of a few starts (see [`Search`]); the characteristic-root admissibility test is not
//!   made.
//! - Multiplicative trends are not among the candidates (as in `ets` by default), and when a
//!   seasonal model beats simple exponential smoothing by more than [`PRUNE_AICC`], the other
//!   non-seasonal models are not fitted.

mod fit;
mod forecast;
mod inits;
mod pass;
#[cfg(test)]
mod tests;

pub use fit::{Family, Fit, PRUNE_AICC, Search, fit, select, select_with};
pub use forecast::EXACT_STEPS;
pub use inits::{Inits, seasonal_indices};
pub use pass::Scratch;

use crate::nelder_mead::{self, Options};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    A,
    M,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trend {
    N,
    A,
    /// Additive, damped.
    Ad,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Season {
    N,
    A,
    M,
}

/// One model of the family: ETS(error, trend, season).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    pub error: ErrorType,
    pub trend: Trend,
    pub season: Season,
}

impl Spec {
    pub const fn new(error: ErrorType, trend: Trend, season: Season) -> Spec {
        Spec {
            error,
            trend,
            season,
        }
    }

    /// `ANN`, `MAdM`, ...
    pub fn name(&self) -> String {
        let e = match self.error {
            ErrorType::A => "A",
            ErrorType::M => "M",
        };
        let t = match self.trend {
            Trend::N => "N",
            Trend::A => "A",
            Trend::Ad => "Ad",
        };
        let s = match self.season {
            Season::N => "N",
            Season::A => "A",
            Season::M => "M",
        };
        format!("{e}{t}{s}")
    }

    fn has_trend(&self) -> bool {
        self.trend != Trend::N
    }

    fn has_season(&self) -> bool {
        self.season != Season::N
    }

    /// Smoothing parameters estimated: alpha, beta, gamma, phi as the model has them.
    pub fn n_smoothing(&self) -> usize {
        1 + usize::from(self.has_trend())
            + usize::from(self.has_season())
            + usize::from(self.trend == Trend::Ad)
    }

    /// Parameters counted by the AICc, as `ets` counts them: the smoothing parameters, the
    /// initial states (level, trend, m - 1 seasonal ones) and the error variance.
    pub fn n_params(&self, m: usize) -> usize {
        self.n_smoothing()
            + 1
            + usize::from(self.has_trend())
            + if self.has_season() { m - 1 } else { 0 }
            + 1
    }
}

/// Smoothing parameters (beta, gamma, phi unused by models without trend, season, damping).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Params {
    pub alpha: f64,
    pub beta: f64,
    pub gamma: f64,
    pub phi: f64,
}

const LOW: f64 = 1e-4;
const HIGH: f64 = 0.9999;
const PHI_LOW: f64 = 0.8;
const PHI_HIGH: f64 = 0.98;

/// Coordinates in [0, 1] of all four parameters (alpha, beta, gamma, phi), whatever the
/// model uses; see [`Params::from_coords`].
pub type Coords = [f64; 4];

impl Params {
    /// The parameters at coordinates in [0, 1] (alpha, beta, gamma, phi; those the model does
    /// not have are ignored), always inside the usual region: each coordinate is the fraction
    /// of the way along its interval, beta's interval being [1e-4, alpha] and gamma's
    /// [1e-4, 1 - alpha].
    pub fn from_coords(spec: Spec, v: &Coords) -> Params {
        let alpha = LOW + (HIGH - LOW) * v[0];
        let beta = if spec.has_trend() {
            LOW + (alpha - LOW) * v[1]
        } else {
            0.0
        };
        let gamma = if spec.has_season() {
            LOW + (1.0 - alpha - LOW).max(0.0) * v[2]
        } else {
            0.0
        };
        let phi = match spec.trend {
            Trend::Ad => PHI_LOW + (PHI_HIGH - PHI_LOW) * v[3],
            _ => 1.0,
        };
        Params {
            alpha,
            beta,
            gamma,
            phi,
        }
    }

    /// Where a search starts without a better idea (statsforecast's `initparam`):
    /// alpha = 0.2 / m, beta a tenth of the way to alpha, gamma 5% of the way to 1 - alpha,
    /// phi near its upper bound.
    pub fn default_coords(m: usize) -> Coords {
        [0.2 / m.max(1) as f64, 0.1, 0.05, 0.99]
    }
}

/// The model's own coordinates, packed for the optimiser (alpha, then beta, gamma, phi as the
/// model has them), and back.
fn pack(spec: Spec, full: &Coords) -> ([f64; nelder_mead::MAX_DIM], usize) {
    let mut v = [0.0; nelder_mead::MAX_DIM];
    let mut k = 0;
    for (i, on) in [
        true,
        spec.has_trend(),
        spec.has_season(),
        spec.trend == Trend::Ad,
    ]
    .into_iter()
    .enumerate()
    {
        if on {
            v[k] = full[i];
            k += 1;
        }
    }
    (v, k)
}

fn unpack(spec: Spec, packed: &[f64], base: &Coords) -> Coords {
    let mut full = *base;
    let mut k = 0;
    for (i, on) in [
        true,
        spec.has_trend(),
        spec.has_season(),
        spec.trend == Trend::Ad,
    ]
    .into_iter()
    .enumerate()
    {
        if on {
            full[i] = packed[k];
            k += 1;
        }
    }
    full
}
