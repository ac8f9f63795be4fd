//! Layer 1: the PDU model and the text format (SPEC §1–§3).
//!
//! Pure functions over bytes: no I/O, no clock. [`parse_datagram`] and
//! [`parse_head`] turn bytes into a [`PduView`] without copying; the typed
//! accessors in [`typed`] decode header values on demand; [`PduBuilder`]
//! writes canonical bytes and refuses anything that would inject a line.

pub mod encode;
pub mod error;
pub(crate) mod grammar;
pub mod limits;
pub mod parse;
pub mod pdu;
pub mod seqlist;
pub mod typed;

pub use encode::{EncodeError, HeaderName, Method, PduBuilder, Target};
pub use error::{ErrorKind, Field, ParseError, Position};
pub use limits::{Limit, Limits, ParseOptions};
pub use parse::{parse_datagram, parse_head, Head};
pub use pdu::{HeaderRef, Layout, Pdu, PduKind, PduRef, PduView};
pub use seqlist::SeqList;
pub use typed::{Attempt, HashHeader, HashScope, Identity, IgnoreSeq, SegmentInfo, SessionMode};
