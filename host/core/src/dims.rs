//! The analytic dimensions rollups are keyed by, and the metrics queries can ask for.

use std::fmt;

use crate::event::{EventRecord, Status, TokenDetail};

/// A column that rollups are keyed by and that summaries and time series can group or filter by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dimension {
    SourceModule,
    App,
    Environment,
    Model,
    Provider,
    Operation,
    Status,
}

impl Dimension {
    /// In rollup-key order.
    pub const ALL: [Dimension; 7] = [
        Self::SourceModule,
        Self::App,
        Self::Environment,
        Self::Model,
        Self::Provider,
        Self::Operation,
        Self::Status,
    ];

    /// The name used in the API and, identically, the SQL column name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::SourceModule => "source_module",
            Self::App => "app",
            Self::Environment => "environment",
            Self::Model => "model",
            Self::Provider => "provider",
            Self::Operation => "operation",
            Self::Status => "status",
        }
    }

    pub const fn index(self) -> usize {
        self as usize
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.name() == s)
    }

    pub fn allowed_list() -> String {
        Self::ALL.map(Self::name).join(", ")
    }

    /// Parses `model,provider` (as in `group_by=`), naming the bad entry and the allowed values.
    pub fn parse_list(s: &str) -> Result<Vec<Self>, String> {
        let mut out = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let dim = Self::parse(part).ok_or_else(|| {
                format!(
                    "unknown dimension '{part}'; allowed: {}",
                    Self::allowed_list()
                )
            })?;
            if !out.contains(&dim) {
                out.push(dim);
            }
        }
        Ok(out)
    }
}

impl EventRecord {
    /// The value of a rollup dimension, `None` when the event does not carry it.
    pub fn dimension(&self, dim: Dimension) -> Option<&str> {
        match dim {
            Dimension::SourceModule => self.source_module.as_deref(),
            Dimension::App => self.app.as_deref(),
            Dimension::Environment => self.environment.as_deref(),
            Dimension::Model => self.model.as_deref(),
            Dimension::Provider => self.provider.as_deref(),
            Dimension::Operation => self.operation.as_deref(),
            Dimension::Status => self.status.map(Status::as_str),
        }
    }
}

impl fmt::Display for Dimension {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A metric a time series can plot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    Events,
    Requests,
    Errors,
    InputTokens,
    OutputTokens,
    /// One of the [`TokenDetail`] sums.
    Tokens(TokenDetail),
    CostUsd,
    EstimatedCostUsd,
    ReportedCostUsd,
    UnpricedEvents,
    UnpricedTokens,
    LatencyAvg,
    LatencyP50,
    LatencyP95,
    LatencyP99,
}

impl Metric {
    pub const ALL: [Metric; 19] = [
        Self::Events,
        Self::Requests,
        Self::Errors,
        Self::InputTokens,
        Self::OutputTokens,
        Self::Tokens(TokenDetail::CacheRead),
        Self::Tokens(TokenDetail::CacheWrite),
        Self::Tokens(TokenDetail::Reasoning),
        Self::Tokens(TokenDetail::AudioInput),
        Self::Tokens(TokenDetail::AudioOutput),
        Self::CostUsd,
        Self::EstimatedCostUsd,
        Self::ReportedCostUsd,
        Self::UnpricedEvents,
        Self::UnpricedTokens,
        Self::LatencyAvg,
        Self::LatencyP50,
        Self::LatencyP95,
        Self::LatencyP99,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Self::Events => "events",
            Self::Requests => "requests",
            Self::Errors => "errors",
            Self::InputTokens => "input_tokens",
            Self::OutputTokens => "output_tokens",
            Self::Tokens(d) => d.name(),
            Self::CostUsd => "cost_usd",
            Self::EstimatedCostUsd => "estimated_cost_usd",
            Self::ReportedCostUsd => "reported_cost_usd",
            Self::UnpricedEvents => "unpriced_events",
            Self::UnpricedTokens => "unpriced_tokens",
            Self::LatencyAvg => "latency_avg",
            Self::LatencyP50 => "latency_p50",
            Self::LatencyP95 => "latency_p95",
            Self::LatencyP99 => "latency_p99",
        }
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| {
                format!(
                    "unknown metric '{s}'; allowed: {}",
                    Self::ALL.map(Self::name).join(", ")
                )
            })
    }

    /// The quantile this metric reads from the latency sketch, if any.
    pub fn quantile(self) -> Option<f64> {
        match self {
            Self::LatencyP50 => Some(0.50),
            Self::LatencyP95 => Some(0.95),
            Self::LatencyP99 => Some(0.99),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_lists_and_report_allowed_values() {
        assert_eq!(
            Dimension::parse_list("model, provider,model").unwrap(),
            vec![Dimension::Model, Dimension::Provider]
        );
        let err = Dimension::parse_list("model,region").unwrap_err();
        assert!(
            err.contains("'region'") && err.contains("source_module"),
            "{err}"
        );
        assert!(Metric::parse("p99").unwrap_err().contains("latency_p99"));
        for (i, d) in Dimension::ALL.iter().enumerate() {
            assert_eq!(d.index(), i);
        }
        for (i, d) in TokenDetail::ALL.iter().enumerate() {
            assert_eq!(d.index(), i);
            assert_eq!(Metric::parse(d.name()), Ok(Metric::Tokens(*d)));
        }
    }
}
