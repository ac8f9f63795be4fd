//! The codec error: a framing failure, a truncated stream, or the transport's own error.

use crate::wire::{ErrorKind, Limit, ParseError};
use std::io;

/// Why a codec call failed.
///
/// On a stream transport every variant except [`CodecError::DatagramTooLarge`]
/// leaves the connection unusable: once the framing is lost nothing tells
/// where the next PDU starts, and guessing is how request smuggling starts
/// (SPEC §1). The decoder therefore refuses all further input with the same
/// error (see [`StreamCodec`](super::StreamCodec)); the caller should close
/// the connection, possibly after sending a reply with the encoder, which
/// keeps working.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The bytes are not a well-formed PDU head, or they break a configured
    /// limit (`error.kind` is then [`ErrorKind::Limit`] naming it).
    /// `error.offset` counts from the first byte of the offending PDU;
    /// `pdu_start` is where that PDU starts in the stream.
    #[error(
        "framing error in the PDU at stream byte {pdu_start}: {error}; \
         the stream is out of sync and the connection is unusable"
    )]
    Parse {
        /// What the parser (or the head scanner) found.
        error: ParseError,
        /// Stream offset of the first byte of the PDU the error is in.
        pdu_start: u64,
    },
    /// The peer closed the stream in the middle of a PDU.
    #[error(
        "stream ended inside the PDU at stream byte {pdu_start}: {buffered} bytes buffered{}; \
         the PDU is lost and the connection is unusable",
        expected_text(*.expected)
    )]
    TruncatedAtEof {
        /// Bytes of the unfinished PDU that had arrived.
        buffered: usize,
        /// Its full length, when the head had been read (head + `Content-Length`).
        expected: Option<usize>,
        /// Stream offset of the first byte of the unfinished PDU.
        pdu_start: u64,
    },
    /// An outgoing PDU does not fit one datagram. Nothing was written; the
    /// codec and the socket stay usable.
    #[error(
        "encoded PDU is {len} bytes, over the datagram limit of {max} bytes; nothing was sent"
    )]
    DatagramTooLarge {
        /// Encoded size of the refused PDU.
        len: usize,
        /// The codec's `max_datagram_len`.
        max: usize,
    },
    /// The transport failed (reported through the codec by `Framed`/`UdpFramed`).
    #[error("transport error: {0}")]
    Io(#[from] io::Error),
}

fn expected_text(expected: Option<usize>) -> String {
    match expected {
        Some(n) => format!(" of {n}"),
        None => " (head incomplete)".to_string(),
    }
}

impl CodecError {
    /// The parse error behind a [`CodecError::Parse`].
    pub fn parse_error(&self) -> Option<&ParseError> {
        match self {
            CodecError::Parse { error, .. } => Some(error),
            _ => None,
        }
    }

    /// The parse error kind, if this is a framing error.
    pub fn kind(&self) -> Option<ErrorKind> {
        self.parse_error().map(|e| e.kind)
    }

    /// The configured bound that was exceeded, if that is why framing failed.
    pub fn limit(&self) -> Option<Limit> {
        match self.kind() {
            Some(ErrorKind::Limit(l)) => Some(l),
            _ => None,
        }
    }

    /// Whether the connection must be closed: true for everything but a
    /// refused outgoing datagram.
    pub fn is_connection_fatal(&self) -> bool {
        !matches!(self, CodecError::DatagramTooLarge { .. })
    }
}

/// The part of a [`CodecError`] a poisoned decoder replays. `io::Error` is
/// not `Clone`, and the decoder never produces one itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    Parse {
        error: ParseError,
        pdu_start: u64,
    },
    Truncated {
        buffered: usize,
        expected: Option<usize>,
        pdu_start: u64,
    },
}

impl Failure {
    pub(crate) fn to_error(self) -> CodecError {
        match self {
            Failure::Parse { error, pdu_start } => CodecError::Parse { error, pdu_start },
            Failure::Truncated {
                buffered,
                expected,
                pdu_start,
            } => CodecError::TruncatedAtEof {
                buffered,
                expected,
                pdu_start,
            },
        }
    }
}
