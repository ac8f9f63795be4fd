//! Content and payload integrity (SPEC §3, §7).
//!
//! `Content-Hash-<ALG>` covers one message's body, `Payload-Hash-<ALG>` the
//! reassembled payload of a segmented message (for a message that is not
//! segmented, its body *is* the payload). The `HMAC-` forms
//! (`Content-Hash-HMAC-<ALG>`) are keyed with a secret both nodes agreed on.
//! Digests are standard padded base64 on the wire.
//!
//! **Algorithm names.** This node writes `SHA256` and `SHA512` (the SPEC's
//! example spelling, `Content-Hash-SHA256`) and reads them ASCII
//! case-insensitively, with or without a dash (`sha256`, `SHA-256`, `Sha-512`):
//! the dash form is what a reader of the RFC names would type, and nothing is
//! gained by refusing it.
//!
//! **What verification decides.** Every hash header present is checked;
//! digests are compared in constant time (`subtle`), so a forger learns
//! nothing from how long a comparison took. One mismatch makes the message
//! invalid: the engine answers it `400` and reports
//! [`Event::IntegrityFailed`](super::Event::IntegrityFailed); it is never
//! delivered. A header this node cannot check — an algorithm it does not
//! implement, or an `HMAC-` digest when no key is configured for the peer —
//! is *not* a mismatch: SPEC §7 lets a node refuse only what does not match,
//! and a peer using an algorithm we lack is not proof of corruption. It is
//! skipped and reported as [`Event::HashNotChecked`](super::Event::HashNotChecked)
//! so an operator relying on HMAC notices a missing key.
//!
//! What a keyed hash authenticates is the body only: headers are not
//! covered (the SPEC defines no canonical head form to sign).

use crate::wire::{HashScope, HeaderName, PduBuilder, PduView};
use base64::Engine as _;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};
use smallvec::SmallVec;
use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// A digest algorithm this node implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashAlg {
    Sha256,
    Sha512,
}

impl HashAlg {
    /// The algorithm a header names, read case-insensitively with or
    /// without a dash (`SHA256`, `sha-256`); `None` for one not implemented.
    pub fn from_name(name: &str) -> Option<HashAlg> {
        let mut norm = [0u8; 6];
        let mut n = 0;
        for b in name.bytes().filter(|&b| b != b'-') {
            if n == norm.len() {
                return None;
            }
            norm[n] = b.to_ascii_uppercase();
            n += 1;
        }
        match &norm[..n] {
            b"SHA256" => Some(HashAlg::Sha256),
            b"SHA512" => Some(HashAlg::Sha512),
            _ => None,
        }
    }

    /// The spelling this node writes.
    pub const fn wire_name(self) -> &'static str {
        match self {
            HashAlg::Sha256 => "SHA256",
            HashAlg::Sha512 => "SHA512",
        }
    }

    /// Length of a digest in bytes.
    pub const fn digest_len(self) -> usize {
        match self {
            HashAlg::Sha256 => 32,
            HashAlg::Sha512 => 64,
        }
    }

    /// The plain digest of `data`.
    pub fn digest(self, data: &[u8]) -> SmallVec<[u8; 64]> {
        match self {
            HashAlg::Sha256 => SmallVec::from_slice(&Sha256::digest(data)),
            HashAlg::Sha512 => SmallVec::from_slice(&Sha512::digest(data)),
        }
    }

    /// HMAC-`self` of `data` under `key`.
    pub fn hmac(self, key: &HmacKey, data: &[u8]) -> SmallVec<[u8; 64]> {
        // `new_from_slice` accepts keys of any length for HMAC.
        match self {
            HashAlg::Sha256 => {
                let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&key.0)
                    .expect("HMAC takes keys of any length");
                m.update(data);
                SmallVec::from_slice(&m.finalize().into_bytes())
            }
            HashAlg::Sha512 => {
                let mut m = <Hmac<Sha512> as Mac>::new_from_slice(&key.0)
                    .expect("HMAC takes keys of any length");
                m.update(data);
                SmallVec::from_slice(&m.finalize().into_bytes())
            }
        }
    }
}

impl fmt::Display for HashAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.wire_name())
    }
}

/// A shared secret for the `HMAC-` hashes. Its `Debug` never shows the
/// bytes (configs get logged); cloning shares one allocation.
#[derive(Clone)]
pub struct HmacKey(Arc<[u8]>);

impl HmacKey {
    /// A key from raw bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> HmacKey {
        HmacKey(Arc::from(bytes.into()))
    }

    /// Key length in bytes (the only thing about a key that may be shown).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True for an empty key.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for HmacKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HmacKey(<redacted, {} bytes>)", self.0.len())
    }
}

/// One hash a node adds to what it sends: plain or keyed, and which digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HashSpec {
    pub alg: HashAlg,
    /// `HMAC-` form, keyed with the destination's key.
    pub keyed: bool,
}

impl HashSpec {
    pub const SHA256: HashSpec = HashSpec {
        alg: HashAlg::Sha256,
        keyed: false,
    };
    pub const SHA512: HashSpec = HashSpec {
        alg: HashAlg::Sha512,
        keyed: false,
    };
    pub const HMAC_SHA256: HashSpec = HashSpec {
        alg: HashAlg::Sha256,
        keyed: true,
    };
    pub const HMAC_SHA512: HashSpec = HashSpec {
        alg: HashAlg::Sha512,
        keyed: true,
    };

    /// `sha256`, `sha-512`, `hmac-sha256`, … (case-insensitive): the
    /// spelling of a command-line option or a config file.
    pub fn parse(s: &str) -> Option<HashSpec> {
        let (keyed, alg) = match s.get(..5) {
            Some(p) if p.eq_ignore_ascii_case("hmac-") => (true, &s[5..]),
            _ => (false, s),
        };
        HashAlg::from_name(alg).map(|alg| HashSpec { alg, keyed })
    }

    /// The header name for `scope`: `Content-Hash-SHA256`,
    /// `Payload-Hash-HMAC-SHA512`, ….
    pub fn header_name(self, scope: HashScope) -> HeaderName {
        let prefix = match scope {
            HashScope::Content => "Content-Hash-",
            HashScope::Payload => "Payload-Hash-",
        };
        let hmac = if self.keyed { "HMAC-" } else { "" };
        let name = format!("{prefix}{hmac}{}", self.alg.wire_name());
        HeaderName::new(name).expect("hash header names are valid tokens")
    }
}

/// Which hashes a node adds and the keys it uses (a section of
/// [`Config`](super::Config)). Keys are secrets: `Debug` shows only their
/// length and which peers have one.
#[derive(Debug, Clone, Default)]
pub struct IntegrityConfig {
    /// Hashes added to every message sent with a body: as
    /// `Content-Hash-*` on each message (each segment included) and as
    /// `Payload-Hash-*` on the first segment of a segmented request. A keyed
    /// spec is skipped (with a debug log) for a peer without a key.
    pub send: Vec<HashSpec>,
    /// Key for peers without an entry in `peer_keys`.
    pub default_key: Option<HmacKey>,
    /// Per-peer keys, by transport address.
    pub peer_keys: HashMap<SocketAddr, HmacKey>,
}

impl IntegrityConfig {
    /// The key shared with `peer`, if any.
    pub fn key_for(&self, peer: SocketAddr) -> Option<&HmacKey> {
        self.peer_keys.get(&peer).or(self.default_key.as_ref())
    }
}

fn b64(d: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(d)
}

/// The header `spec` writes for `scope` over `data` (name, base64 digest);
/// `None` for a keyed spec without a key. What the engine adds on send,
/// for tools that build PDUs themselves (`acorn-cli send`).
pub fn hash_header(
    spec: HashSpec,
    scope: HashScope,
    key: Option<&HmacKey>,
    data: &[u8],
) -> Option<(HeaderName, Bytes)> {
    let digest = match (spec.keyed, key) {
        (true, Some(k)) => spec.alg.hmac(k, data),
        (true, None) => return None,
        (false, _) => spec.alg.digest(data),
    };
    Some((spec.header_name(scope), Bytes::from(b64(&digest))))
}

/// One `scope` hash header per configured spec over `data`, and how many
/// keyed specs were skipped for want of a key for `peer`.
pub(crate) fn headers(
    scope: HashScope,
    cfg: &IntegrityConfig,
    peer: SocketAddr,
    data: &[u8],
) -> (Vec<(HeaderName, Bytes)>, usize) {
    let key = cfg.key_for(peer);
    let out: Vec<_> = cfg
        .send
        .iter()
        .filter_map(|spec| hash_header(*spec, scope, key, data))
        .collect();
    let skipped = cfg.send.len() - out.len();
    (out, skipped)
}

/// Add [`headers`] to `b`; returns how many keyed specs were skipped.
pub(crate) fn stamp(
    b: &mut PduBuilder,
    scope: HashScope,
    cfg: &IntegrityConfig,
    peer: SocketAddr,
    data: &[u8],
) -> usize {
    let (hs, skipped) = headers(scope, cfg, peer, data);
    for (n, v) in hs {
        let _ = b.set_value(&n, v);
    }
    skipped
}

/// Bytes of header lines [`stamp`] adds for `scope` at most (for the
/// datagram budget).
pub(crate) fn stamp_len(cfg: &IntegrityConfig, scope: HashScope) -> usize {
    cfg.send
        .iter()
        .map(|s| s.header_name(scope).as_str().len() + 4 + s.alg.digest_len().div_ceil(3) * 4)
        .sum()
}

/// Why a hash header was not checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Unchecked {
    /// An algorithm this node does not implement.
    UnknownAlgorithm,
    /// An `HMAC-` digest, and no key is configured for the peer.
    NoKey,
}

/// The outcome of checking every hash header of one scope.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Headers whose digest matched.
    pub verified: usize,
    /// Headers skipped, with the reason (header name as on the wire).
    pub unchecked: Vec<(String, Unchecked)>,
    /// The first header whose digest did not match.
    pub failed: Option<String>,
}

impl Verdict {
    /// No header of the scope failed.
    pub fn ok(&self) -> bool {
        self.failed.is_none()
    }
}

fn scope_prefix(scope: HashScope) -> &'static str {
    match scope {
        HashScope::Content => "Content-Hash-",
        HashScope::Payload => "Payload-Hash-",
    }
}

/// Check every `scope` hash header of `pdu` against `data` (its body for
/// `Content`, the reassembled payload for `Payload`). Malformed hash
/// headers were refused by [`PduView::validate`] before this is reached;
/// here they count as failed.
pub fn verify<B: AsRef<[u8]>>(
    pdu: &PduView<B>,
    scope: HashScope,
    data: &[u8],
    key: Option<&HmacKey>,
) -> Verdict {
    let mut v = Verdict::default();
    verify_into(&mut v, pdu, scope, data, key, &mut Vec::new());
    v
}

/// [`verify`] over several PDUs that carry hashes of the same `data` (the
/// segments of one payload): each distinct header is checked once.
pub fn verify_all<'p, B: AsRef<[u8]> + 'p>(
    pdus: impl IntoIterator<Item = &'p PduView<B>>,
    scope: HashScope,
    data: &[u8],
    key: Option<&HmacKey>,
) -> Verdict {
    let mut v = Verdict::default();
    let mut seen = Vec::new();
    for p in pdus {
        verify_into(&mut v, p, scope, data, key, &mut seen);
        if v.failed.is_some() {
            break;
        }
    }
    v
}

/// A header already checked: (keyed, algorithm, digest).
type Seen = (bool, HashAlg, SmallVec<[u8; 64]>);

fn verify_into<B: AsRef<[u8]>>(
    v: &mut Verdict,
    pdu: &PduView<B>,
    scope: HashScope,
    data: &[u8],
    key: Option<&HmacKey>,
    seen: &mut Vec<Seen>,
) {
    let hashes = match pdu.hashes() {
        Ok(h) => h,
        Err(_) => {
            v.failed = Some(format!("{}*", scope_prefix(scope)));
            return;
        }
    };
    for h in hashes.into_iter().filter(|h| h.scope == scope) {
        let name = format!(
            "{}{}{}",
            scope_prefix(scope),
            if h.keyed { "HMAC-" } else { "" },
            h.algorithm
        );
        let Some(alg) = HashAlg::from_name(h.algorithm) else {
            v.unchecked.push((name, Unchecked::UnknownAlgorithm));
            continue;
        };
        let tag: Seen = (h.keyed, alg, h.digest.clone());
        if seen.contains(&tag) {
            continue;
        }
        let expected = if h.keyed {
            match key {
                Some(k) => alg.hmac(k, data),
                None => {
                    v.unchecked.push((name, Unchecked::NoKey));
                    continue;
                }
            }
        } else {
            alg.digest(data)
        };
        if bool::from(expected.as_slice().ct_eq(h.digest.as_slice())) {
            v.verified += 1;
            seen.push(tag);
        } else {
            v.failed = Some(name);
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{ParseOptions, Pdu};

    fn pdu_with(headers: &[(&str, String)], body: &[u8]) -> Pdu {
        let mut b = PduBuilder::request("PUT", "/x").unwrap();
        for (n, v) in headers {
            b.header(*n, v.clone()).unwrap();
        }
        b.body(Bytes::copy_from_slice(body));
        Pdu::parse_datagram(b.to_bytes(), &ParseOptions::default()).unwrap()
    }

    #[test]
    fn names_are_read_case_insensitively_with_or_without_a_dash() {
        for n in ["SHA256", "sha256", "SHA-256", "Sha-256"] {
            assert_eq!(HashAlg::from_name(n), Some(HashAlg::Sha256), "{n}");
        }
        for n in ["SHA512", "sha-512"] {
            assert_eq!(HashAlg::from_name(n), Some(HashAlg::Sha512), "{n}");
        }
        for n in ["MD5", "SHA1", "SHA3-256", "", "SHA2566", "SHA256SHA256"] {
            assert_eq!(HashAlg::from_name(n), None, "{n}");
        }
        assert_eq!(HashSpec::parse("hmac-sha256"), Some(HashSpec::HMAC_SHA256));
        assert_eq!(HashSpec::parse("SHA-512"), Some(HashSpec::SHA512));
        assert_eq!(HashSpec::parse("hmac-md5"), None);
    }

    #[test]
    fn known_digests() {
        // FIPS 180-2 "abc" vectors and RFC 4231 test case 2.
        assert_eq!(
            b64(&HashAlg::Sha256.digest(b"abc")),
            "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="
        );
        let k = HmacKey::new(b"Jefe".to_vec());
        let mac = HashAlg::Sha256.hmac(&k, b"what do ya want for nothing?");
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn verify_matches_mismatches_and_skips() {
        let key = HmacKey::new(b"k".to_vec());
        let good = b64(&HashAlg::Sha256.digest(b"body"));
        let mac = b64(&HashAlg::Sha512.hmac(&key, b"body"));
        let p = pdu_with(
            &[
                ("Content-Hash-SHA-256", good.clone()),
                ("Content-Hash-HMAC-sha512", mac),
                ("Content-Hash-MD5", "AAAA".into()),
            ],
            b"body",
        );
        let v = verify(&p, HashScope::Content, p.body(), Some(&key));
        assert_eq!(v.verified, 2);
        assert!(v.ok());
        assert_eq!(
            v.unchecked,
            vec![("Content-Hash-MD5".to_owned(), Unchecked::UnknownAlgorithm)]
        );
        let v = verify(&p, HashScope::Content, p.body(), None);
        assert_eq!(v.verified, 1);
        assert_eq!(v.unchecked[0].1, Unchecked::NoKey);
        let v = verify(&p, HashScope::Content, b"bodz", Some(&key));
        assert_eq!(v.failed.as_deref(), Some("Content-Hash-SHA-256"));
        // Payload scope ignores content hashes.
        assert_eq!(
            verify(&p, HashScope::Payload, b"x", None),
            Verdict::default()
        );
        let wrong_key = HmacKey::new(b"K".to_vec());
        let p = pdu_with(
            &[(
                "Content-Hash-HMAC-SHA512",
                b64(&HashAlg::Sha512.hmac(&key, b"body")),
            )],
            b"body",
        );
        assert!(!verify(&p, HashScope::Content, p.body(), Some(&wrong_key)).ok());
        let _ = good;
    }

    #[test]
    fn stamp_then_verify_round_trips_and_debug_hides_keys() {
        let key = HmacKey::new(b"secret-key-bytes".to_vec());
        let peer: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let cfg = IntegrityConfig {
            send: vec![HashSpec::SHA256, HashSpec::HMAC_SHA512],
            default_key: None,
            peer_keys: [(peer, key.clone())].into_iter().collect(),
        };
        let dbg = format!("{cfg:?}");
        assert!(!dbg.contains("secret"), "{dbg}");
        assert!(dbg.contains("redacted, 16 bytes"), "{dbg}");
        let mut b = PduBuilder::request("PUT", "/x").unwrap();
        b.body(Bytes::from_static(b"payload"));
        assert_eq!(stamp(&mut b, HashScope::Content, &cfg, peer, b"payload"), 0);
        let other: SocketAddr = "127.0.0.2:9".parse().unwrap();
        let mut b2 = b.clone();
        assert_eq!(
            stamp(&mut b2, HashScope::Payload, &cfg, other, b"payload"),
            1
        );
        let before = b.to_bytes().len();
        let mut empty = PduBuilder::request("PUT", "/x").unwrap();
        empty.body(Bytes::from_static(b"payload"));
        assert!(before - empty.to_bytes().len() <= stamp_len(&cfg, HashScope::Content));
        let p = Pdu::parse_datagram(b.to_bytes(), &ParseOptions::default()).unwrap();
        let v = verify(&p, HashScope::Content, p.body(), Some(&key));
        assert_eq!((v.verified, v.ok()), (2, true));
    }
}
