//! Robust level detector: is the newest point of each series far from what is usual for it?
//!
//! "Usual" is, when the history supports it and it fits the series' last day better, the same
//! time on earlier days (or weeks) scaled to the level the series ran at over the last three
//! hours (so a quieter weekend or a busier week is expected as such); otherwise the median of
//! the `window` points before. "Far" is measured in robust deviations of the recent misses, with
//! floors so that a steady series does not alarm on a small move: a share of the expected value
//! (`relative_floor`), the Poisson spread √expected for counts, and for a sum over requests (a
//! cost, tokens) at least 1/√requests of it. An error rate is judged by how unlikely the step's
//! errors are at the rate pooled over the window (the Poisson tail). A step needs
//! `min_requests` requests (a quarter of that for a latency) for a rate, a latency or a cost to
//! be judged, when the series' `requests` are given: one error in two requests is not an alarm.

use hub_plugin_sdk::stats::{self, Profile, key_text, readable, sibling};
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
    0.1
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

/// A sum over a step's requests.
fn volume_of(metric: &str) -> bool {
    matches!(metric, "cost_usd" | "input_tokens" | "output_tokens")
}

/// Needs the step's requests to be judged.
fn needs_volume(metric: &str) -> bool {
    metric == "error_rate" || metric == "cost_usd" || metric.starts_with("latency_")
}

/// Points of the recent window a seasonal profile's level is taken over.
const LEVEL_WINDOW: usize = 36;
/// Points of the recent window the usual miss is taken over.
const SPREAD_WINDOW: usize = 96;

impl RobustLevel {
    /// The expected value at `i` and the usual miss around it, under `baseline`.
    fn expect(
        &self,
        v: &[f64],
        i: usize,
        baseline: Baseline,
        profile: Option<&Profile>,
        skip: &dyn Fn(usize) -> bool,
    ) -> Option<(f64, f64)> {
        match (baseline, profile) {
            (Baseline::Daily(_) | Baseline::Weekly(_), Some(p)) => {
                let level = p.level(v, i, LEVEL_WINDOW, skip);
                let expected = p.at(i) * level;
                // The usual miss in proportion to what was expected, over the last 8 hours or so:
                // a busy hour is not steadier than a quiet one in relative terms.
                let misses: Vec<f64> = (i.saturating_sub(SPREAD_WINDOW)..i)
                    .filter(|&j| !skip(j) && v[j].is_finite() && p.at(j) > 0.0)
                    .map(|j| (v[j] - p.at(j) * level).abs() / (p.at(j) * level))
                    .collect();
                (expected.is_finite() && misses.len() >= 6).then(|| {
                    (
                        expected,
                        stats::median(&misses).unwrap_or(0.0) * 1.4826 * expected.abs(),
                    )
                })
            }
            _ => {
                let from = i.saturating_sub(self.config.window);
                let base: Vec<f64> = (from..i)
                    .filter(|&j| !skip(j) && v[j].is_finite())
                    .map(|j| v[j])
                    .collect();
                if base.len() < 5 {
                    return None;
                }
                let m = stats::median(&base)?;
                Some((m, stats::mad(&base, m)))
            }
        }
    }

    /// The baseline that explains the series' last day best, among those its history allows,
    /// with its profile; a seasonal one only if it misses clearly less (by a fifth).
    fn choose(&self, s: &Series, skip: &dyn Fn(usize) -> bool) -> (Baseline, Option<Profile>) {
        let (day, week) = stats::seasons(s.step_ms);
        let v = &s.values;
        let n = v.len();
        let daily = (day >= 2 && n >= 2 * day + LEVEL_WINDOW).then_some(Baseline::Daily(day));
        let weekly = (week >= 2 && n >= 2 * week + LEVEL_WINDOW).then_some(Baseline::Weekly(week));
        let candidates: Vec<Baseline> = match self.config.seasonal.as_str() {
            "none" => return (Baseline::Rolling, None),
            "daily" => daily.into_iter().collect(),
            "weekly" => weekly.or(daily).into_iter().collect(),
            _ => [daily, weekly].into_iter().flatten().collect(),
        };
        let last = n.saturating_sub(self.config.check_last);
        let judged = day.clamp(1, 288);
        let sample: Vec<usize> = (last.saturating_sub(judged)..last)
            .step_by((judged / 96).max(1))
            .filter(|&i| v[i].is_finite() && !skip(i))
            .collect();
        let first = last.saturating_sub(judged + SPREAD_WINDOW);
        let error = |b: Baseline, p: Option<&Profile>| {
            let misses: Vec<f64> = sample
                .iter()
                .filter_map(|&i| self.expect(v, i, b, p, skip).map(|(e, _)| (v[i] - e).abs()))
                .collect();
            stats::median(&misses).unwrap_or(f64::INFINITY)
        };
        let forced = self.config.seasonal != "auto";
        let mut best = (
            Baseline::Rolling,
            None,
            if forced {
                f64::INFINITY
            } else {
                error(Baseline::Rolling, None)
            },
        );
        for b in candidates {
            let season = match b {
                Baseline::Daily(x) | Baseline::Weekly(x) => x,
                Baseline::Rolling => continue,
            };
            let p = Profile::build(v, season, first, skip);
            let e = error(b, Some(&p));
            if e < best.2 * 0.8 {
                best = (b, Some(p), e);
            }
        }
        (best.0, best.1)
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
        // A latency percentile means something from a few requests on; a rate or a cost needs
        // the full volume.
        let least = if s.metric.starts_with("latency_") {
            (c.min_requests / 4.0).max(1.0)
        } else {
            c.min_requests
        };
        let skip = |j: usize| requests.is_some_and(|r| r.get(j).is_none_or(|v| *v < least));
        if s.metric == "error_rate" {
            return self.judge_rate(s, si, requests, &skip, out);
        }
        let (baseline, profile) = self.choose(s, &skip);
        for i in n.saturating_sub(c.check_last).max(1)..n {
            let x = s.values[i];
            if !x.is_finite() || skip(i) {
                continue;
            }
            let Some((expected, spread)) =
                self.expect(&s.values, i, baseline, profile.as_ref(), &skip)
            else {
                continue;
            };
            let mut scale = spread.max(c.relative_floor * expected.abs());
            if is_count(&s.metric) {
                scale = scale.max(expected.max(1.0).sqrt());
            }
            // A sum over the step's requests (a cost, tokens) is never steadier than their count:
            // at N requests its relative spread is at least 1/√N.
            if let Some(r) = volume_of(&s.metric)
                .then(|| sibling(series, s, "requests"))
                .flatten()
            {
                scale = scale.max(expected.abs() / series[r].values[i].max(1.0).sqrt());
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

    /// An error rate: the errors of a step against the rate pooled over the last `window`
    /// steps with enough requests, scored by how unlikely that many errors are (the Poisson
    /// tail, as a normal deviate), so that 3 errors in 40 requests is not a 5-sigma event when
    /// the usual rate is 1%.
    fn judge_rate(
        &self,
        s: &Series,
        si: usize,
        requests: Option<&Vec<f64>>,
        skip: &dyn Fn(usize) -> bool,
        out: &mut Vec<Anomaly>,
    ) {
        let c = &self.config;
        let Some(req) = requests else { return };
        let n = s.values.len().min(req.len());
        for i in n.saturating_sub(c.check_last).max(1)..n {
            let (x, volume) = (s.values[i], req[i]);
            if !x.is_finite() || skip(i) {
                continue;
            }
            let from = i.saturating_sub(c.window.max(288));
            let (errors, calls) = (from..i)
                .filter(|&j| !skip(j) && s.values[j].is_finite())
                .fold((0.0, 0.0), |(e, r), j| {
                    (e + s.values[j] * req[j], r + req[j])
                });
            if calls < 5.0 * c.min_requests {
                continue;
            }
            // Half an error on top, so that a history without errors still has a rate.
            let rate = (errors + 0.5) / calls;
            let k = (x * volume).round();
            let z = stats::poisson_tail_z(k, rate * volume);
            if z < c.threshold {
                continue;
            }
            let spread = (rate * (1.0 - rate) / volume).sqrt();
            out.push(Anomaly {
                series: si as u32,
                ts_ms: s.ts_ms[i],
                value: x,
                expected: Some(rate),
                lower: Some((rate - c.threshold * spread).max(0.0)),
                upper: Some(rate + c.threshold * spread),
                score: z,
                severity: if z >= c.critical {
                    Severity::Critical
                } else {
                    Severity::Warning
                },
                reason: format!(
                    "error_rate for {} is {:.1}% ({} errors in {} requests) against its usual {:.2}%",
                    key_text(&s.key),
                    x * 100.0,
                    k,
                    volume,
                    rate * 100.0
                ),
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
                .starts_with("error_rate for model=gpt-4o is 50.0% (100 errors in 200 requests) against its usual 1.0"),
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
