//! Conformance testing of Acorn peers: what the suite shows its user.
//!
//! [`ladder`] draws an exchange of PDUs between two parties as a ladder
//! diagram (two lanes, one arrow per PDU, time going down) in a
//! self-contained HTML page, for conformance reports and for any log of
//! `acorn-cli listen --json` (`acorn-cli ladder LOG`).

pub mod ladder;
pub mod robustness;
