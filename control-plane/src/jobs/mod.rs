//! Background work of the control plane that is not tied to one node.

pub mod lifecycle_clock;
pub mod periodic;
pub mod scheduler;
pub mod usage_history;
pub mod usage_retention;
