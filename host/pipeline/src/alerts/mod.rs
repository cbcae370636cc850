//! Alerting: rules a tenant writes (rule: what they say, checked with the JSON path of every
//! error) and the life of the alerts they raise (lifecycle: pending, firing, resolved, and the
//! notices each step sends).

pub mod evaluate;
pub mod lifecycle;
pub mod rule;

pub use lifecycle::{Alert, AlertGroup, Notice, NoticeKind, Phase, Step};
pub use rule::{Condition, Op, Rule, RuleError};

#[cfg(test)]
mod tests;
