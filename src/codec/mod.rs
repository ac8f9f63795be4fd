//! Layer 2: framing PDUs on streams (Content-Length) and datagrams.
