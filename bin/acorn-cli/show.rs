//! Showing wire bytes to a person: traces (`send -v`) and logs (`listen`).
//!
//! Bytes that came from the network are not trusted to be text: control
//! characters (an escape sequence could rewrite the terminal) are shown as
//! `\xNN`, a lone CR as `\r`, invalid UTF-8 as U+FFFD; CRLF and LF both end
//! a displayed line.

use std::fmt::Write as _;

/// Display at most this many bytes of one PDU; the rest is counted.
pub(crate) const MAX_SHOWN: usize = 64 * 1024;

/// The lines of `bytes` for display: split at LF (a CR just before it is
/// dropped), control characters escaped. At most [`MAX_SHOWN`] bytes are
/// rendered; a last line `[... N more bytes]` says what was left out.
pub(crate) fn lines(bytes: &[u8]) -> Vec<String> {
    let (shown, rest) = bytes.split_at(bytes.len().min(MAX_SHOWN));
    let mut out = Vec::new();
    let mut pieces = shown.split(|&b| b == b'\n').peekable();
    while let Some(line) = pieces.next() {
        let last = pieces.peek().is_none();
        if last && line.is_empty() {
            break; // the input ended with a line end
        }
        let line = if !last {
            line.strip_suffix(b"\r").unwrap_or(line)
        } else {
            line
        };
        out.push(escape(line));
    }
    if !rest.is_empty() {
        out.push(format!("[... {} more bytes]", rest.len()));
    }
    out
}

/// One line of text with control characters (other than tab) escaped.
fn escape(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(line);
    let mut s = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\r' => s.push_str("\\r"),
            '\t' => s.push('\t'),
            c if c.is_control() => {
                let _ = write!(s, "\\x{:02x}", c as u32);
            }
            c => s.push(c),
        }
    }
    s
}

/// `bytes` as display text: every line ends in LF, and the text ends with
/// an empty line (a PDU without a body already does), so that consecutive
/// PDUs are separated by exactly one blank line.
pub(crate) fn block(bytes: &[u8]) -> String {
    let mut s = String::new();
    for l in lines(bytes) {
        s.push_str(&l);
        s.push('\n');
    }
    if !s.ends_with("\n\n") {
        s.push('\n');
    }
    s
}

/// `bytes` with each displayed line prefixed (`> `, `< `), for traces.
pub(crate) fn prefixed(prefix: &str, bytes: &[u8]) -> String {
    let mut s = String::new();
    for l in lines(bytes) {
        s.push_str(prefix);
        s.push_str(&l);
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crlf_and_lf_end_lines() {
        assert_eq!(lines(b"A\r\nB\nC"), ["A", "B", "C"]);
        assert_eq!(lines(b"A\r\n\r\n"), ["A", ""]);
        assert_eq!(block(b"A\r\n\r\n"), "A\n\n");
        assert_eq!(block(b"A\r\n\r\nbody"), "A\n\nbody\n\n");
        assert_eq!(block(b"A\r\n\r\nbody\n"), "A\n\nbody\n\n");
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(lines(b"a\x1b[2Jb\rc\td\xff"), ["a\\x1b[2Jb\\rc\td\u{fffd}"]);
        assert_eq!(prefixed("> ", b"X\r\nY"), "> X\n> Y\n");
    }

    #[test]
    fn long_input_is_cut() {
        let big = vec![b'a'; MAX_SHOWN + 10];
        let l = lines(&big);
        assert_eq!(l.last().unwrap(), "[... 10 more bytes]");
    }
}
