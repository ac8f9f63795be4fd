//! What real peers send that the core paths do not expect (SPEC §10),
//! kept apart so the core stays as the notes describe it.
//!
//! **A NACK without its own `Seq`.** The public reference implementation
//! NACKs a gap with `Need-Seq` and a `TX-ID` but no `Seq`. Such a NACK takes
//! no place in the peer's stream (there is nothing to order), so it acts on
//! arrival like the control part of a sequenced PDU — within SPEC §9: it
//! must come from the session's path and prove itself by the session's
//! `Session-ID`, or for a session without an id by echoing one of our ids
//! (`paths::nack_proven`, the same test as for any NACK); otherwise it
//! changes nothing (counted as an unproven NACK, logged at debug level).

use super::*;

impl Endpoint {
    /// A NACK with no `Seq` for session `sid` (found by its `Session-ID`
    /// or its source): resend what its `Need-Seq` names, if it proves
    /// itself.
    pub(super) fn seqless_nack(&mut self, now: Instant, sid: u64, from: SocketAddr, pdu: &Pdu) {
        if !matches!(pdu.need_seq(), Ok(Some(_))) {
            return;
        }
        // SPEC §9's proof (`paths::nack_proven`): on the session's path,
        // and carrying its `Session-ID` or (without one) echoing our id.
        if !self.nack_proven(sid, from, pdu) {
            debug!(session = sid, %from, "Seq-less NACK without proof: no resend");
            return;
        }
        if let Some(s) = self.sessions.get_mut(&sid) {
            s.last_activity = now;
        }
        self.retransmit_needed(now, sid, from, pdu);
    }
}
