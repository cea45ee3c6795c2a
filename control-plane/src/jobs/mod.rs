//! Background work of the control plane that is not tied to one node.

pub mod lifecycle_clock;
pub mod usage_history;
pub mod usage_retention;
