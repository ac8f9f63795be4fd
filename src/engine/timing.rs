//! Timing headers on send (SPEC §3, §6): `TS` or `Date`.
//!
//! The engine has no clock; it knows Unix time from the instant it is
//! handed and the wall-clock time it was created with. A request is stamped
//! when it is first sent and stamped again on every timer retransmission
//! (SPEC §6 allows `TS`/`Date` to change between tries, and a receiver that
//! computes `TS + Timeout` then sees the deadline of the try in hand).
//! Replies are stamped once: a retransmitted reply is byte-identical.

use crate::wire::typed::names;
use crate::wire::{HeaderName, PduBuilder};
use bytes::Bytes;

const H_TS: HeaderName = HeaderName::from_static(names::TS);
const H_DATE: HeaderName = HeaderName::from_static(names::DATE);

/// Which generation-time header a node writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Timestamp {
    /// `TS: <unix seconds>` (the default: short, and it wins over `Date`).
    #[default]
    Ts,
    /// `Date: <RFC 3339, UTC>`, e.g. `2026-02-16T23:09:00Z`.
    Date,
    /// Neither.
    Off,
}

/// Write (or overwrite) the generation time of `b`.
pub(crate) fn stamp(b: &mut PduBuilder, mode: Timestamp, unix_secs: i64) {
    match mode {
        Timestamp::Ts => {
            b.set_number(&H_TS, unix_secs.max(0) as u64);
        }
        Timestamp::Date => {
            let _ = b.set_value(&H_DATE, Bytes::from(rfc3339(unix_secs)));
        }
        Timestamp::Off => {}
    }
}

/// Unix seconds as RFC 3339 UTC (`YYYY-MM-DDTHH:MM:SSZ`), clamped to the
/// years 0000–9999 the format can write.
pub fn rfc3339(unix_secs: i64) -> String {
    // 0000-01-01T00:00:00Z .. 9999-12-31T23:59:59Z
    let t = unix_secs.clamp(-62_167_219_200, 253_402_300_799);
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{ParseOptions, Pdu};

    #[test]
    fn rfc3339_known_instants_and_round_trip_through_the_parser() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_771_283_340), "2026-02-16T23:09:00Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
        assert_eq!(rfc3339(i64::MAX), "9999-12-31T23:59:59Z");
        for t in [0i64, 1, 86_399, 951_868_799, 1_800_000_000, 4_102_444_800] {
            let mut b = PduBuilder::request("GET", "/").unwrap();
            let bare = b.to_bytes().len();
            stamp(&mut b, Timestamp::Date, t);
            // "Date: " + 20 + CRLF
            assert_eq!(b.to_bytes().len() - bare, 28);
            let p = Pdu::parse_datagram(b.to_bytes(), &ParseOptions::default()).unwrap();
            assert_eq!(p.date().unwrap(), Some(t));
        }
    }

    #[test]
    fn restamping_replaces_the_header() {
        let mut b = PduBuilder::request("GET", "/").unwrap();
        stamp(&mut b, Timestamp::Ts, 5);
        stamp(&mut b, Timestamp::Ts, 6);
        let p = Pdu::parse_datagram(b.to_bytes(), &ParseOptions::default()).unwrap();
        assert_eq!(p.ts().unwrap(), Some(6));
        assert_eq!(p.headers_named("TS").count(), 1);
    }
}
