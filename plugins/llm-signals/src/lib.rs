//! The LLM-specific signals: for each model (or app, or whatever the series are grouped by), its
//! cost per request, input and output tokens per request and error rate, each against its own
//! history. A prompt that grew, a model that started answering at length, a price change or a
//! provider failing is seen here even when the totals look ordinary.
//!
//! Ratios are taken only in steps with `min_requests` requests, the usual ratio is their median
//! over the last `window` such steps, and a step is flagged when its ratio is both `factor` times
//! (or a `factor`th of) the usual and `threshold` robust deviations away from it. The anomaly is
//! reported on the series the ratio's numerator comes from (cost_usd, input_tokens,
//! output_tokens or errors), with the value the requests would have had at the usual ratio as
//! `expected`.

use hub_plugin_sdk::stats::{self, key_text, readable, sibling};
use hub_plugin_sdk::{Anomaly, Detector, Error, Series, Severity};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// How many times its usual (or which fraction of it) a ratio must be.
    #[serde(default = "factor")]
    pub factor: f64,
    /// From this many times its usual, critical.
    #[serde(default = "critical_factor")]
    pub critical_factor: f64,
    /// Robust deviations from the usual a ratio must also be.
    #[serde(default = "threshold")]
    pub threshold: f64,
    /// Requests a step needs for its ratios to count.
    #[serde(default = "min_requests")]
    pub min_requests: f64,
    /// Steps of history the usual ratio is taken over.
    #[serde(default = "window")]
    pub window: usize,
    /// The newest points checked.
    #[serde(default = "one")]
    pub check_last: usize,
    /// An error rate must also rise by this much (0.05: five percentage points).
    #[serde(default = "min_error_rise")]
    pub min_error_rise: f64,
}

fn factor() -> f64 {
    2.0
}
fn critical_factor() -> f64 {
    4.0
}
fn threshold() -> f64 {
    4.0
}
fn min_requests() -> f64 {
    20.0
}
fn window() -> usize {
    288
}
fn one() -> usize {
    1
}
fn min_error_rise() -> f64 {
    0.05
}

/// A ratio to requests this detector follows.
struct Signal {
    numerator: &'static str,
    name: &'static str,
    money: bool,
}

const SIGNALS: [Signal; 4] = [
    Signal {
        numerator: "cost_usd",
        name: "cost per request",
        money: true,
    },
    Signal {
        numerator: "input_tokens",
        name: "input tokens per request",
        money: false,
    },
    Signal {
        numerator: "output_tokens",
        name: "output tokens per request",
        money: false,
    },
    Signal {
        numerator: "errors",
        name: "error rate",
        money: false,
    },
];

pub struct LlmSignals {
    config: Config,
}

impl LlmSignals {
    fn check(
        &self,
        input: &[Series],
        ni: usize,
        ri: usize,
        signal: &Signal,
        out: &mut Vec<Anomaly>,
    ) {
        let c = &self.config;
        let (num, req) = (&input[ni], &input[ri]);
        let n = num.values.len().min(req.values.len()).min(num.ts_ms.len());
        let ratio = |j: usize| {
            let r = req.values[j];
            (r.is_finite() && r >= c.min_requests && num.values[j].is_finite())
                .then(|| num.values[j] / r)
        };
        let errors = signal.numerator == "errors";
        for i in n.saturating_sub(c.check_last)..n {
            let Some(x) = ratio(i) else { continue };
            let past: Vec<f64> = (i.saturating_sub(c.window)..i).filter_map(ratio).collect();
            if past.len() < 5 {
                continue;
            }
            let volume = req.values[i];
            let (usual, z, scale) = if errors {
                // The rate pooled over the window (half an error on top, so that a history
                // without errors still has one), and how unlikely this step's errors are at it
                // (the Poisson tail as a normal deviate).
                let (e, r) = (i.saturating_sub(c.window)..i)
                    .filter(|&j| ratio(j).is_some())
                    .fold((0.0, 0.0), |(e, r), j| {
                        (e + num.values[j], r + req.values[j])
                    });
                let usual = (e + 0.5) / r;
                let z = stats::poisson_tail_z(num.values[i], usual * volume);
                (usual, z, (usual * (1.0 - usual) / volume).sqrt())
            } else {
                let Some(usual) = stats::median(&past) else {
                    continue;
                };
                let scale = stats::mad(&past, usual).max(0.05 * usual.abs());
                (usual, (x - usual) / scale, scale)
            };
            if !(scale > 0.0 && scale.is_finite()) {
                continue;
            }
            let times = if usual > 0.0 {
                x / usual
            } else {
                f64::INFINITY
            };
            let far = if errors {
                x >= (usual * c.factor).max(usual + c.min_error_rise)
            } else {
                usual > 0.0 && (times >= c.factor || times <= 1.0 / c.factor)
            };
            if z.abs() < c.threshold || !far {
                continue;
            }
            let money = |v: f64| {
                if signal.money {
                    format!("${}", readable(v))
                } else {
                    readable(v)
                }
            };
            let reason = if errors {
                format!(
                    "error rate for {} is {:.1}% over {} requests (its usual {:.1}%)",
                    key_text(&num.key),
                    x * 100.0,
                    readable(volume),
                    usual * 100.0
                )
            } else if times >= 1.0 {
                format!(
                    "{} for {} is {}× its usual ({} against {})",
                    signal.name,
                    key_text(&num.key),
                    readable(times),
                    money(x),
                    money(usual)
                )
            } else {
                format!(
                    "{} for {} is {:.0}% below its usual ({} against {})",
                    signal.name,
                    key_text(&num.key),
                    (1.0 - times) * 100.0,
                    money(x),
                    money(usual)
                )
            };
            let spread = c.threshold * scale * volume;
            out.push(Anomaly {
                series: ni as u32,
                ts_ms: num.ts_ms[i],
                value: num.values[i],
                expected: Some(usual * volume),
                lower: Some((usual * volume - spread).max(0.0)),
                upper: Some(usual * volume + spread),
                score: z.abs(),
                severity: if times >= c.critical_factor || times <= 1.0 / c.critical_factor {
                    Severity::Critical
                } else {
                    Severity::Warning
                },
                reason,
            });
        }
    }
}

impl Detector for LlmSignals {
    type Config = Config;

    fn new(config: Config) -> Result<Self, Error> {
        if config.factor.is_nan() || config.factor <= 1.0 {
            return Err(Error::bad_config("factor: must be above 1"));
        }
        if config.critical_factor < config.factor {
            return Err(Error::bad_config(
                "critical_factor: must be at least factor",
            ));
        }
        if config.threshold.is_nan() || config.threshold <= 0.0 {
            return Err(Error::bad_config("threshold: must be above 0"));
        }
        if config.window < 5 {
            return Err(Error::bad_config("window: must be at least 5 steps"));
        }
        Ok(LlmSignals { config })
    }

    fn detect(&mut self, input: &[Series]) -> Result<Vec<Anomaly>, Error> {
        let mut out = Vec::new();
        for (ni, s) in input.iter().enumerate() {
            let Some(signal) = SIGNALS.iter().find(|g| g.numerator == s.metric) else {
                continue;
            };
            if let Some(ri) = sibling(input, s, "requests") {
                self.check(input, ni, ri, signal, &mut out);
            }
        }
        Ok(out)
    }
}

hub_plugin_sdk::export_detector!(LlmSignals);

#[cfg(test)]
mod tests {
    use super::*;

    fn series(metric: &str, values: Vec<f64>) -> Series {
        Series {
            key: vec![("model".into(), "gpt-4o".into())],
            metric: metric.into(),
            step_ms: 300_000,
            ts_ms: (0..values.len() as i64).map(|i| i * 300_000).collect(),
            values,
        }
    }

    fn detector() -> LlmSignals {
        LlmSignals::new(serde_json::from_value(serde_json::json!({})).unwrap()).unwrap()
    }

    /// 100 steps of traffic that varies a lot in volume but not per request.
    fn traffic() -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let requests: Vec<f64> = (0..100).map(|i| 50.0 + ((i * 37) % 200) as f64).collect();
        let cost = requests
            .iter()
            .enumerate()
            .map(|(i, r)| r * (0.005 + (i % 5) as f64 * 0.0001))
            .collect();
        let output = requests.iter().map(|r| r * 750.0).collect();
        (requests, cost, output)
    }

    #[test]
    fn volume_alone_is_not_a_signal() {
        let (mut requests, mut cost, mut output) = traffic();
        // Ten times the traffic, at the usual cost and length per request.
        *requests.last_mut().unwrap() *= 10.0;
        *cost.last_mut().unwrap() *= 10.0;
        *output.last_mut().unwrap() *= 10.0;
        let found = detector()
            .detect(&[
                series("requests", requests),
                series("cost_usd", cost),
                series("output_tokens", output),
            ])
            .unwrap();
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn cost_and_length_per_request_are_seen_at_ordinary_volume() {
        let (requests, mut cost, mut output) = traffic();
        *cost.last_mut().unwrap() *= 4.2;
        *output.last_mut().unwrap() *= 3.0;
        let found = detector()
            .detect(&[
                series("requests", requests),
                series("cost_usd", cost),
                series("output_tokens", output),
            ])
            .unwrap();
        assert_eq!(found.len(), 2, "{found:?}");
        let cost = found.iter().find(|a| a.series == 1).unwrap();
        assert_eq!(cost.severity, Severity::Critical);
        assert!(
            cost.reason
                .starts_with("cost per request for model=gpt-4o is 4.4× its usual ($0.023"),
            "{}",
            cost.reason
        );
        let length = found.iter().find(|a| a.series == 2).unwrap();
        assert_eq!(length.severity, Severity::Warning);
        assert!(
            length.reason.contains("output tokens per request"),
            "{}",
            length.reason
        );
    }

    #[test]
    fn an_error_rate_needs_volume_and_a_real_rise() {
        let requests = vec![100.0; 100];
        let mut errors = vec![1.0; 100];
        *errors.last_mut().unwrap() = 3.0; // 1% → 3%: three times, but two points
        let mut d = detector();
        assert!(
            d.detect(&[
                series("requests", requests.clone()),
                series("errors", errors.clone())
            ])
            .unwrap()
            .is_empty()
        );
        *errors.last_mut().unwrap() = 15.0;
        let found = d
            .detect(&[
                series("requests", requests.clone()),
                series("errors", errors.clone()),
            ])
            .unwrap();
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0]
                .reason
                .starts_with("error rate for model=gpt-4o is 15.0% over 100 requests"),
            "{}",
            found[0].reason
        );
        // One error in two requests is not judged at all.
        let mut few = requests;
        *few.last_mut().unwrap() = 2.0;
        *errors.last_mut().unwrap() = 1.0;
        assert!(
            d.detect(&[series("requests", few), series("errors", errors)])
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn without_requests_nothing_is_judged() {
        let (_, cost, _) = traffic();
        assert!(
            detector()
                .detect(&[series("cost_usd", cost)])
                .unwrap()
                .is_empty()
        );
    }
}
