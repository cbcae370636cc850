//! Alerting: rules a tenant writes (rule: what they say; fields: reading their JSON, each error
//! with the field's pointer), the life of the alerts they raise (lifecycle: pending, firing,
//! resolved, and the notices each step sends), one evaluation of a tenant's rules (evaluate), and
//! what a person reads about an alert (text), and the notices' way to the rules' targets
//! (deliver), which silences may hold back (silence); a budget kept in another system and
//! brought in by an integration (budget); how often a rule would have fired over the last week
//! (preview).

mod budget;
pub mod conditions;
pub mod deliver;
pub mod evaluate;
mod fields;
pub mod lifecycle;
pub mod preview;
pub mod rule;
pub mod silence;
pub mod text;

pub use lifecycle::{Alert, AlertGroup, Notice, NoticeKind, Phase, Step};
pub use rule::{BudgetFrom, Condition, Op, Rule, RuleError};

#[cfg(test)]
mod tests;
