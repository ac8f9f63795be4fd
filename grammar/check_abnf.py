#!/usr/bin/env python3
"""Check grammar/acorn.abnf against RFC 5234 and against the PDU corpus.

    python3 -m pip install abnf      # once (https://pypi.org/project/abnf/)
    python3 grammar/check_abnf.py    # from the repository root (a few minutes)

1. The file loads as an RFC 5234 (+ RFC 7405) rule list, and every rule a
   definition names is defined here or is a core rule.
2. Every case of corpus/pdu is matched against `datagram-pdu`
   (`acorn-pdu` for the `stream-` cases; with `line-end = CRLF / LF` for
   the `lenient-` cases): an `accept-` case must
   match; a `reject-` case whose error is a syntax error (start line,
   header line, line ends) must not. Rejections for a limit, a
   Content-Length mismatch or a typed value need not be syntax errors.
3. In `accept-` cases, the value of every header with meaning (SPEC section
   3) matches its value rule. In `reject-...-invalid-value:<Header>` cases,
   the offending header's values are checked too and the ones the grammar
   accepts are listed: those must be rejected for a reason the grammar states
   in a comment only (a reversed range, a date that does not exist, a number
   over 64 bits, ...).

Exit status 0 when every check passes. The parser's own conformance is
tests/pdu_corpus.rs; this script keeps the grammar honest about it.
"""

import pathlib
import re
import sys

try:
    from abnf.parser import Rule
except ImportError:
    sys.exit("the `abnf` package is needed: python3 -m pip install abnf")

ROOT = pathlib.Path(__file__).resolve().parent.parent
GRAMMAR = (ROOT / "grammar" / "acorn.abnf").read_text(encoding="ascii")
CORE = {"ALPHA", "BIT", "CHAR", "CR", "CRLF", "CTL", "DIGIT", "DQUOTE", "HEXDIG",
        "HTAB", "LF", "LWSP", "OCTET", "SP", "VCHAR", "WSP"}

# Error kinds that are syntax errors: the grammar must not match such a case.
SYNTAX = {"start-line", "method", "target", "quoted-string", "version", "status",
          "status-text", "header-name", "missing-colon", "header-value",
          "obs-fold", "bare-cr", "bare-lf", "unterminated-head"}

# Header (lower case) -> the rule its value follows.
VALUE_RULE = {
    "seq": "seq-value", "ack-seq": "seq-value", "need-seq": "need-seq-value",
    "ignore-seq": "ignore-seq-value", "request-session-mode": "session-mode",
    "set-session-mode": "session-mode", "session-status": "session-status",
    "tx-id": "opaque-id", "message-id": "opaque-id", "ack-message-id": "opaque-id",
    "session-id": "opaque-id", "segment-id": "opaque-id", "from": "identity",
    "to": "identity", "reply-to": "identity", "ack-to": "identity",
    "content-type": "content-type-value", "content-encoding": "coding-list",
    "content-length": "content-length-value", "ts": "unix-time",
    "expire-at": "unix-time", "date": "date-time", "expire-date": "date-time",
    "timeout": "duration", "attempt": "attempt-value",
    "retry-attempt": "retry-attempt-value", "segment": "segment-value",
    "payload-length": "byte-count", "segment-index": "segment-number",
    "segment-count": "segment-number",
}


def rule_names_and_references(text):
    """(defined names, {rule: referenced names}) by a small RFC 5234 scan."""
    defs, refs, current = set(), {}, None
    for line in text.splitlines():
        body = strip_comment(line)
        if not body.strip():
            continue
        m = re.match(r"([A-Za-z][A-Za-z0-9-]*)\s*=/?(.*)", body)
        if m and not line[0].isspace():
            current = m.group(1).lower()
            defs.add(current)
            refs.setdefault(current, set())
            body = m.group(2)
        body = re.sub(r'%[sSiI]?"[^"]*"|"[^"]*"|%[xXdDbB][0-9A-Fa-f.-]+|<[^>]*>', " ", body)
        refs[current] |= {n.lower() for n in re.findall(r"[A-Za-z][A-Za-z0-9-]*", body)}
    return defs, refs


def strip_comment(line):
    quoted = False
    for i, c in enumerate(line):
        if c == '"':
            quoted = not quoted
        elif c == ";" and not quoted:
            return line[:i]
    return line


class Strict(Rule):
    pass


class Lenient(Rule):
    pass


def matches(cls, rule, data):
    try:
        cls(rule).parse_all(data)
        return True
    except Exception:  # the library raises ParseError (and friends)
        return False


def headers(head):
    """(name, value) of each header line of a head that matched acorn-pdu."""
    lines = re.split(r"\r?\n", head)[1:]
    out = []
    for line in lines:
        if not line:
            break
        name, _, value = line.partition(":")
        out.append((name, value.strip(" \t")))
    return out


def typed_content(value):
    if len(value) >= 2 and value[0] == '"':
        return value[1:-1]
    return value


def value_problems(cls, hs, only=None):
    """Headers with meaning whose value does not match its rule."""
    bad = []
    for name, value in hs:
        key = name.lower()
        if only is not None and key != only and not key.startswith(only):
            continue
        if key.startswith(("content-hash-", "payload-hash-")):
            checks = [("hash-header-name", name), ("hash-value", typed_content(value))]
        elif key in VALUE_RULE:
            checks = [(VALUE_RULE[key], typed_content(value))]
        else:
            continue
        for rule, text in checks:
            if not matches(cls, rule, text):
                bad.append(f"{name}: {value!r} is not {rule}")
    return bad


def case_tags(stem):
    """The leading words after accept-/reject- that say how a case is parsed
    (corpus/pdu/README.md): lenient, stream, datagram, interop."""
    words = stem.split("-")[1:]
    tags = set()
    for w in words:
        if w not in ("lenient", "stream", "datagram", "interop"):
            break
        tags.add(w)
    return tags


def main():
    failures = []
    defs, refs = rule_names_and_references(GRAMMAR)
    for rule, names in sorted(refs.items()):
        for n in sorted(names - defs - {c.lower() for c in CORE}):
            failures.append(f"rule {rule} names undefined rule {n}")
    Strict.load_grammar(GRAMMAR)
    Lenient.load_grammar(GRAMMAR.replace("line-end = CRLF\n", "line-end = CRLF / LF\n"))
    print(f"{len(defs)} rules load")

    cases = sorted((ROOT / "corpus" / "pdu").glob("*.acorn"))
    semantic = []
    for path in cases:
        name = path.stem
        data = path.read_bytes().decode("latin-1")
        tags = case_tags(name)
        cls = Lenient if "lenient" in tags else Strict
        # A datagram may end its head without the empty line; a stream not.
        top = "acorn-pdu" if "stream" in tags else "datagram-pdu"
        ok = matches(cls, top, data)
        head = data.split("\r\n\r\n", 1)[0] if "\r\n\r\n" in data else data
        if name.startswith("accept-"):
            if not ok:
                failures.append(f"{name}: accepted by the parser, not by {top}")
            else:
                failures += [f"{name}: {b}" for b in value_problems(cls, headers(head))]
        else:
            kind = path.with_suffix(".error").read_text().strip()
            if kind in SYNTAX and ok:
                failures.append(f"{name}: a {kind} error, yet {top} matches")
            if kind.startswith("invalid-value:") and ok:
                header = kind.split(":", 1)[1].lower().rstrip("*")
                if not value_problems(cls, headers(head), only=header):
                    semantic.append(name)
    print(f"{len(cases)} corpus cases checked")
    if semantic:
        print("rejected for a reason the grammar states in a comment only:")
        for name in semantic:
            print(f"  {name}")
    for f in failures:
        print(f"FAIL {f}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
