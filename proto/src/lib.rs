//! Wire types shared by the control plane and the node agent.
//!
//! - [`agent`]: our own API, `nexpoint.agent.v1`.
//! - [`xray`]: the subset of the Xray/V2Ray gRPC API the agent drives.
//! - [`digest`]: the state digest both sides compute to detect drift.

mod generated {
    #![allow(clippy::all, clippy::pedantic, missing_docs)]
    include!(concat!(env!("OUT_DIR"), "/generated.rs"));
}

pub mod digest;

/// Largest gRPC message either side accepts. tonic's default (4 MiB) is
/// below what 100,000 users make: a snapshot carries ~100 bytes per user, a
/// usage entry or the core's stats answer ~60 per counter.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024 * 1024;

pub mod agent {
    pub use crate::generated::nexpoint::agent::v1::*;
}

pub mod xray {
    pub use crate::generated::nexpoint::xray::accounts;
    pub use crate::generated::v2ray::core::app::proxyman::command as proxyman;
    pub use crate::generated::v2ray::core::app::stats::command as stats;
    pub use crate::generated::v2ray::core::common::protocol;
    pub use crate::generated::v2ray::core::common::serial;
}
