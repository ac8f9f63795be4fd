//! Layer 3: the protocol engine, sans-IO (SPEC §4, §6, §8).
//!
//! An [`Endpoint`] holds one node's sessions and transactions. It never
//! reads a clock or touches a socket: the driver (the tokio runtime, or a
//! test's simulated network) hands it PDUs and instants and carries out
//! what it returns. See [`endpoint`] for the call pattern.

pub mod address;
pub mod config;
pub mod endpoint;
pub mod event;
pub mod integrity;
pub(crate) mod reply_cache;
pub mod segment;
pub(crate) mod session;
pub mod shares;
pub mod timing;

pub use address::{PathConfig, PathStats};
pub use config::{Config, EngineLimits, ModePolicy, ResumePolicy, RetryPolicy};
pub use endpoint::{Endpoint, Stats};
pub use event::{
    CloseReason, EngineError, EngineLimit, Event, IncomingId, RequestId, SessionHandle, Transmit,
    Violation,
};
pub use integrity::{HashAlg, HashSpec, HmacKey, IntegrityConfig};
pub use segment::SegmentConfig;
pub use shares::SharesConfig;
pub use timing::Timestamp;
