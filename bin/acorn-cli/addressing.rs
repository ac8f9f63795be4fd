//! `--from` / `--reply-to` for `send`, `load` and `conformance`: stamp the
//! addressing headers (SPEC §5) that peers routing by header need. The
//! public reference implementation sends its replies to the request's
//! `From`, not to the source port (SPEC §10), so a client behind a relay
//! or NAT names where it wants the answers.

use acorn::wire::{parse_datagram, ParseOptions, PduBuilder};

/// The addressing flags, shared by the commands that send requests.
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct Addressing {
    /// Stamp `From: IDENTITY` (`[NODE@]HOST:PORT`) on each request,
    /// replacing one the input has.
    #[arg(long, value_name = "IDENTITY", value_parser = identity)]
    pub from: Option<String>,
    /// Stamp `Reply-To: IDENTITY` on each request, replacing one the input
    /// has: where replies should go.
    #[arg(long, value_name = "IDENTITY", value_parser = identity)]
    pub reply_to: Option<String>,
}

impl Addressing {
    /// Whether any header is to be stamped.
    pub fn is_empty(&self) -> bool {
        self.from.is_none() && self.reply_to.is_none()
    }

    /// Set the given headers on `b` (values were checked when parsed).
    pub fn stamp(&self, b: &mut PduBuilder) {
        for (name, value) in [("From", &self.from), ("Reply-To", &self.reply_to)] {
            if let Some(v) = value {
                let _ = b.set_header(name, v.clone());
            }
        }
    }
}

/// An identity, or `auto` (the runner's own socket address, filled in
/// per case: `conformance`).
pub(crate) fn identity_or_auto(s: &str) -> Result<String, String> {
    if s == "auto" {
        Ok(s.to_owned())
    } else {
        identity(s)
    }
}

/// A flag value must be an identity as the wire reads it.
fn identity(s: &str) -> Result<String, String> {
    let probe = format!("REG / ACORN/1.0\r\nFrom: {s}\r\n\r\n");
    match parse_datagram(probe.as_bytes(), &ParseOptions::strict())
        .map(|p| p.from().map(|i| i.is_some()))
    {
        Ok(Ok(true)) => Ok(s.to_owned()),
        _ => Err(format!("{s:?} is not [NODE@]HOST:PORT")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_are_checked_and_stamped() {
        assert!(identity("node@127.0.0.1:7077").is_ok());
        assert!(identity("[::1]:1").is_ok());
        assert!(identity("127.0.0.1").is_err(), "the port is mandatory");
        assert!(identity("a b:1").is_err());
        let a = Addressing {
            from: Some("me@127.0.0.1:9".into()),
            reply_to: Some("127.0.0.1:10".into()),
        };
        let mut b = PduBuilder::request("GET", "/").unwrap();
        b.header("From", "old@127.0.0.1:1").unwrap();
        a.stamp(&mut b);
        let text = String::from_utf8(b.to_bytes().to_vec()).unwrap();
        assert_eq!(
            text,
            "GET / ACORN/1.0\r\nFrom: me@127.0.0.1:9\r\nReply-To: 127.0.0.1:10\r\n\r\n"
        );
    }
}
