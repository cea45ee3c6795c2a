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
