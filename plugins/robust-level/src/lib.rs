//! Robust level detector: is the newest point of each series far from what is usual for it?
//!
//! "Usual" is the median of a baseline, and "far" is measured in robust standard deviations
//! (1.4826 × the baseline's median absolute deviation), with floors so that a very steady
//! series does not alarm on a small move: a share of the expected level (`relative_floor`), the
//! Poisson spread √expected for counts, and for an error rate the binomial spread at the step's
//! request count. The baseline is, when the history supports it and it fits the series better,
//! the same time of day on earlier days (or the same time of the week on earlier weeks);
//! otherwise the `window` points before. A point needs `min_requests` requests in its step
//! (when the series' `requests` are given) for a rate, a latency or a cost to count, so that
//! one error in two requests is not an alarm.

use hub_plugin_sdk::stats::{self, key_text, readable, sibling};
use hub_plugin_sdk::{Anomaly, Detector, Error, Series, Severity};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Robust deviations from the usual that make a warning.
    #[serde(default = "threshold")]
    pub threshold: f64,
    /// Robust deviations that make it critical.
    #[serde(default = "critical")]
    pub critical: f64,
    /// Points of the rolling baseline (when no seasonal one is used).
    #[serde(default = "window")]
    pub window: usize,
    /// The newest points checked in each series.
    #[serde(default = "one")]
    pub check_last: usize,
    /// Requests a step needs for its error rate, latency or cost to be judged.
    #[serde(default = "min_requests")]
    pub min_requests: f64,
    /// The spread is at least this share of the usual level.
    #[serde(default = "relative_floor")]
    pub relative_floor: f64,
    /// `auto` (a seasonal baseline when the history has 3 days, or 3 weeks, and it fits better),
    /// `daily`, `weekly` or `none`.
    #[serde(default = "auto")]
    pub seasonal: String,
}

fn threshold() -> f64 {
    5.0
}
fn critical() -> f64 {
    9.0
}
fn window() -> usize {
    60
}
fn one() -> usize {
    1
}
fn min_requests() -> f64 {
    20.0
}
fn relative_floor() -> f64 {
    0.05
}
fn auto() -> String {
    "auto".into()
}

/// Which baseline a point is judged against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Baseline {
    Rolling,
    /// Same time of day, `usize` steps a day.
    Daily(usize),
    /// Same time of week, `usize` steps a week.
    Weekly(usize),
}

pub struct RobustLevel {
    config: Config,
}

fn is_count(metric: &str) -> bool {
    matches!(
        metric,
        "requests" | "errors" | "input_tokens" | "output_tokens"
    )
}

/// Needs the step's requests to be judged.
fn needs_volume(metric: &str) -> bool {
    metric == "error_rate" || metric == "cost_usd" || metric.starts_with("latency_")
}

impl RobustLevel {
    /// The baseline values for point `i` of `values` under `baseline`, skipping `skip(j)`
    /// points (steps with too few requests).
    fn baseline_values(
        &self,
        values: &[f64],
        i: usize,
        baseline: Baseline,
        skip: &dyn Fn(usize) -> bool,
    ) -> Vec<f64> {
        let take = |j: usize| (!skip(j) && values[j].is_finite()).then_some(values[j]);
        match baseline {
            Baseline::Rolling => {
                let from = i.saturating_sub(self.config.window);
                (from..i).filter_map(take).collect()
            }
            Baseline::Daily(season) | Baseline::Weekly(season) => {
                // The same time on earlier seasons, and the steps around it (±1/48 of a day).
                let around = (season / 48).clamp(1, 12);
                let mut out = Vec::new();
                let mut k = 1;
                while k * season <= i {
                    let center = i - k * season;
                    let lo = center.saturating_sub(around);
                    let hi = (center + around).min(i - 1);
                    out.extend((lo..=hi).filter_map(take));
                    k += 1;
                }
                out
            }
        }
    }

    /// The baseline that explains the series' recent past best, among those its history allows.
    fn choose(&self, s: &Series, skip: &dyn Fn(usize) -> bool) -> Baseline {
        let (day, week) = stats::seasons(s.step_ms);
        let n = s.values.len();
        let daily = (day >= 2 && n >= 3 * day).then_some(Baseline::Daily(day));
        let weekly = (week >= 2 && n >= 3 * week).then_some(Baseline::Weekly(week));
        match self.config.seasonal.as_str() {
            "none" => return Baseline::Rolling,
            "daily" => return daily.unwrap_or(Baseline::Rolling),
            "weekly" => return weekly.or(daily).unwrap_or(Baseline::Rolling),
            _ => {}
        }
        // Auto: the candidate whose medians miss the recent points least (median absolute
        // error over up to 96 points before the checked ones), a seasonal one only if it is
        // clearly better (by a fifth).
        let last = n.saturating_sub(self.config.check_last);
        let sample: Vec<usize> = (last.saturating_sub(96)..last).collect();
        let error = |b: Baseline| {
            let misses: Vec<f64> = sample
                .iter()
                .filter(|&&i| s.values[i].is_finite() && !skip(i))
                .filter_map(|&i| {
                    stats::median(&self.baseline_values(&s.values, i, b, skip))
                        .map(|m| (s.values[i] - m).abs())
                })
                .collect();
            stats::median(&misses).unwrap_or(f64::INFINITY)
        };
        let mut best = (Baseline::Rolling, error(Baseline::Rolling));
        for b in [daily, weekly].into_iter().flatten() {
            let e = error(b);
            if e < best.1 * 0.8 {
                best = (b, e);
            }
        }
        best.0
    }

    fn judge(&self, series: &[Series], si: usize, out: &mut Vec<Anomaly>) {
        let c = &self.config;
        let s = &series[si];
        let n = s.values.len().min(s.ts_ms.len());
        if n < 2 {
            return;
        }
        let requests = needs_volume(&s.metric)
            .then(|| sibling(series, s, "requests"))
            .flatten()
            .map(|r| &series[r].values);
        let skip =
            |j: usize| requests.is_some_and(|r| r.get(j).is_none_or(|v| *v < c.min_requests));
        let baseline = self.choose(s, &skip);
        for i in n.saturating_sub(c.check_last).max(1)..n {
            let x = s.values[i];
            if !x.is_finite() || skip(i) {
                continue;
            }
            let base = self.baseline_values(&s.values, i, baseline, &skip);
            if base.len() < 5 {
                continue;
            }
            let Some(expected) = stats::median(&base) else {
                continue;
            };
            let mut scale = stats::mad(&base, expected).max(c.relative_floor * expected.abs());
            if is_count(&s.metric) {
                scale = scale.max(expected.max(1.0).sqrt());
            }
            if s.metric == "error_rate" {
                let volume = requests.map_or(c.min_requests, |r| r[i]).max(1.0);
                let p = expected.clamp(0.5 / volume, 1.0);
                scale = scale.max((p * (1.0 - p) / volume).sqrt()).max(0.01);
            }
            if scale <= 0.0 || !scale.is_finite() {
                continue;
            }
            let z = (x - expected) / scale;
            if z.abs() < c.threshold {
                continue;
            }
            let lower = expected - c.threshold * scale;
            out.push(Anomaly {
                series: si as u32,
                ts_ms: s.ts_ms[i],
                value: x,
                expected: Some(expected),
                lower: Some(if x >= 0.0 && expected >= 0.0 {
                    lower.max(0.0)
                } else {
                    lower
                }),
                upper: Some(expected + c.threshold * scale),
                score: z.abs(),
                severity: if z.abs() >= c.critical {
                    Severity::Critical
                } else {
                    Severity::Warning
                },
                reason: reason(s, i, x, expected, baseline),
            });
        }
    }
}

/// `cost_usd for model=gpt-4o is 4.1× its usual for Tuesday 14:00 (0.82 against 0.2)`.
fn reason(s: &Series, i: usize, x: f64, expected: f64, baseline: Baseline) -> String {
    let t = s.ts_ms[i];
    let usual = match baseline {
        Baseline::Rolling => "its usual".to_string(),
        Baseline::Daily(_) => format!("its usual for {}", stats::clock(t)),
        Baseline::Weekly(_) => format!("its usual for {} {}", stats::weekday(t), stats::clock(t)),
    };
    let how = if x >= expected && expected > 0.0 {
        format!("{}× {usual}", readable(x / expected))
    } else if x >= expected {
        format!("above {usual}")
    } else if expected > 0.0 {
        format!("{:.0}% below {usual}", (1.0 - x / expected) * 100.0)
    } else {
        format!("below {usual}")
    };
    format!(
        "{} for {} is {how} ({} against {})",
        s.metric,
        key_text(&s.key),
        readable(x),
        readable(expected)
    )
}

impl Detector for RobustLevel {
    type Config = Config;

    fn new(config: Config) -> Result<Self, Error> {
        if config.threshold <= 0.0 || !config.threshold.is_finite() {
            return Err(Error::bad_config("threshold: must be above 0"));
        }
        if config.critical < config.threshold {
            return Err(Error::bad_config("critical: must be at least threshold"));
        }
        if config.window < 5 {
            return Err(Error::bad_config("window: must be at least 5 points"));
        }
        if !["auto", "daily", "weekly", "none"].contains(&config.seasonal.as_str()) {
            return Err(Error::bad_config(
                "seasonal: must be auto, daily, weekly or none",
            ));
        }
        Ok(RobustLevel { config })
    }

    fn detect(&mut self, input: &[Series]) -> Result<Vec<Anomaly>, Error> {
        let mut out = Vec::new();
        for si in 0..input.len() {
            self.judge(input, si, &mut out);
        }
        Ok(out)
    }
}

hub_plugin_sdk::export_detector!(RobustLevel);

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;

    fn series(metric: &str, step_ms: u32, values: Vec<f64>) -> Series {
        Series {
            key: vec![("model".into(), "gpt-4o".into())],
            metric: metric.into(),
            step_ms,
            ts_ms: (0..values.len() as i64)
                .map(|i| i * i64::from(step_ms))
                .collect(),
            values,
        }
    }

    fn detector(config: serde_json::Value) -> RobustLevel {
        RobustLevel::new(serde_json::from_value(config).unwrap()).unwrap()
    }

    /// A daily cycle of requests per hour: quiet nights, busy afternoons, a little noise.
    fn daily(days: usize) -> Vec<f64> {
        (0..days * 24)
            .map(|h| {
                let hour = (h % 24) as f64;
                let level = 100.0 + 900.0 * (-((hour - 14.0) / 4.0).powi(2)).exp();
                level + ((h * 7919) % 13) as f64 - 6.0
            })
            .collect()
    }

    #[test]
    fn a_spike_is_found_and_the_noise_is_not() {
        let mut d = detector(serde_json::json!({}));
        let calm = daily(7);
        assert!(
            d.detect(&[series("requests", H as u32, calm.clone())])
                .unwrap()
                .is_empty()
        );
        let mut spiked = calm;
        *spiked.last_mut().unwrap() *= 4.0;
        let found = d.detect(&[series("requests", H as u32, spiked)]).unwrap();
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].severity, Severity::Critical);
        assert!(
            found[0].reason.contains("× its usual for"),
            "{}",
            found[0].reason
        );
    }

    #[test]
    fn the_usual_at_night_is_not_the_usual_in_the_afternoon() {
        // 3 am at a level the afternoons often see: unusual for 3 am, though within the range
        // of the last 60 hours.
        let mut values = daily(7);
        let night = values.len() - 21; // 03:00 on the last day
        values.truncate(night + 1);
        values[night] = 700.0;
        let found = detector(serde_json::json!({}))
            .detect(&[series("requests", H as u32, values.clone())])
            .unwrap();
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].reason.contains("its usual for 03:00"),
            "{}",
            found[0].reason
        );
        // Without seasonality the same point is within the last 60 hours' range.
        let rolling = detector(serde_json::json!({"seasonal": "none"}))
            .detect(&[series("requests", H as u32, values)])
            .unwrap();
        assert!(rolling.is_empty(), "{rolling:?}");
    }

    #[test]
    fn a_rate_needs_requests_before_it_alarms() {
        let m = 60_000;
        let mut requests = vec![200.0; 120];
        let mut rate = vec![0.01; 120];
        // The newest step: 1 error in 2 requests.
        *requests.last_mut().unwrap() = 2.0;
        *rate.last_mut().unwrap() = 0.5;
        let mut d = detector(serde_json::json!({}));
        let input = [
            series("requests", m, requests.clone()),
            series("error_rate", m, rate.clone()),
        ];
        let found = d.detect(&input).unwrap();
        assert!(
            found.iter().all(|a| a.series == 0),
            "the rate is not judged: {found:?}"
        );
        // At 200 requests, 50% errors is an alarm.
        *requests.last_mut().unwrap() = 200.0;
        let found = d
            .detect(&[
                series("requests", m, requests),
                series("error_rate", m, rate),
            ])
            .unwrap();
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].series, 1);
        assert!(
            found[0]
                .reason
                .starts_with("error_rate for model=gpt-4o is 50×"),
            "{}",
            found[0].reason
        );
    }

    #[test]
    fn small_moves_of_a_steady_series_and_small_counts_are_not_alarms() {
        let mut latency: Vec<f64> = (0..100).map(|i| 800.0 + (i % 3) as f64).collect();
        *latency.last_mut().unwrap() = 860.0; // +7.5%
        let mut d = detector(serde_json::json!({}));
        assert!(
            d.detect(&[series("latency_p95_ms", 60_000, latency.clone())])
                .unwrap()
                .is_empty()
        );
        *latency.last_mut().unwrap() = 1_400.0; // +75%
        assert_eq!(
            d.detect(&[series("latency_p95_ms", 60_000, latency)])
                .unwrap()
                .len(),
            1
        );
        // 3 a minute, then none: within Poisson noise.
        let mut few = vec![3.0; 100];
        *few.last_mut().unwrap() = 0.0;
        assert!(
            d.detect(&[series("requests", 60_000, few)])
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn steps_without_a_value_and_short_histories_are_fine() {
        let mut d = detector(serde_json::json!({"check_last": 5}));
        let gaps: Vec<f64> = (0..50)
            .map(|i| if i % 4 == 0 { f64::NAN } else { 10.0 })
            .collect();
        assert!(
            d.detect(&[series("latency_p95_ms", 60_000, gaps)])
                .unwrap()
                .is_empty()
        );
        assert!(
            d.detect(&[series("requests", 60_000, vec![1.0])])
                .unwrap()
                .is_empty()
        );
        assert!(
            d.detect(&[series("requests", 60_000, vec![1.0, 100.0])])
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn inconsistent_settings_are_refused() {
        for (config, field) in [
            (
                serde_json::json!({"threshold": 5, "critical": 4}),
                "critical",
            ),
            (serde_json::json!({"window": 2}), "window"),
            (serde_json::json!({"seasonal": "hourly"}), "seasonal"),
        ] {
            let e = RobustLevel::new(serde_json::from_value(config).unwrap())
                .err()
                .unwrap();
            assert!(format!("{e:?}").contains(field), "{e:?}");
        }
    }
}
