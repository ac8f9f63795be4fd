//! Ladder diagrams: an exchange of PDUs between two parties drawn as two
//! vertical lanes with one arrow per PDU, time going down — the diagrams
//! of the protocol notes, for a browser.
//!
//! The output is one self-contained HTML page: inline CSS and inline SVG,
//! no script, no font, no image and no link to fetch, so a report opens
//! offline, from a CI artifact or a mail attachment, and cannot leak that
//! it was opened. Everything drawn from the wire is escaped
//! ([`escape`]): a PDU is hostile input and the page must not become
//! markup it chose.
//!
//! Each arrow carries its PDU's start line as a label and the whole PDU
//! (shown escaped) as a tooltip and in a listing under the diagram.
//! An arrow's [`Mark`] says how it is drawn: a normal PDU, one that failed
//! its expectation (red, thick), an expected PDU that never came (red,
//! dashed), or one nobody expected.

use std::fmt::Write as _;
use std::time::Duration;

/// Which way a PDU went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the left lane to the right lane.
    Right,
    /// From the right lane to the left lane.
    Left,
}

/// How an arrow is drawn: what the reader should notice about its PDU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Mark {
    /// A PDU that was sent or received as expected (or with nothing
    /// expected of it, in a plain log).
    Normal,
    /// A PDU that arrived but failed its expectation: red, thick.
    Failed,
    /// A PDU that was expected but never arrived: red, dashed.
    Missing,
    /// A PDU that arrived with nothing expecting it: orange.
    Unexpected,
}

impl Mark {
    fn class(self) -> &'static str {
        match self {
            Mark::Normal => "normal",
            Mark::Failed => "failed",
            Mark::Missing => "missing",
            Mark::Unexpected => "unexpected",
        }
    }
}

/// One PDU of an exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arrow {
    /// Which lane it left from.
    pub direction: Direction,
    /// When it was sent or seen, from the start of the exchange, if known
    /// (a log without timestamps still draws in order).
    pub at: Option<Duration>,
    /// The short label on the arrow: the PDU's start line.
    pub label: String,
    /// The whole PDU as text (e.g. [`crate::scenario::show_bytes`]), shown
    /// as the arrow's tooltip and in the listing.
    pub detail: String,
    /// How to draw it.
    pub mark: Mark,
    /// Why it is marked (the failure message), shown beside the arrow.
    pub note: Option<String>,
}

/// An exchange between two parties, in the order it happened.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ladder {
    /// The diagram's heading (a case id, a log file name).
    pub title: String,
    /// The left party's name (e.g. "runner", "127.0.0.1:5000").
    pub left: String,
    /// The right party's name (e.g. "peer under test").
    pub right: String,
    /// The PDUs, top to bottom.
    pub arrows: Vec<Arrow>,
    /// Lines of text shown under the title (what the exchange is, counts
    /// of log lines that were not PDUs).
    pub notes: Vec<String>,
}

/// Pixels between two arrows.
const ROW: usize = 34;
/// Where the lanes are, and how wide the drawing is.
const LEFT_X: usize = 160;
const RIGHT_X: usize = 560;
const WIDTH: usize = 1000;
/// The longest label drawn on an arrow; longer start lines are cut (the
/// full text is in the tooltip and the listing).
const LABEL_CHARS: usize = 52;

/// The CSS of every page: lane and arrow colours that a test (and a
/// reader) can tell apart.
const STYLE: &str = "\
body{font-family:sans-serif;margin:16px;color:#222;background:#fff}
h1{font-size:20px}h2{font-size:16px;margin-top:28px}
.lane{stroke:#1f4e9c;stroke-width:4}
.lanename{font-weight:bold;fill:#1f4e9c;font-size:14px}
.arrow.normal{stroke:#1a8f3c;stroke-width:2;fill:none}
.head.normal{fill:#1a8f3c}
.arrow.failed{stroke:#d01c1c;stroke-width:4;fill:none}
.head.failed{fill:#d01c1c}
.arrow.missing{stroke:#d01c1c;stroke-width:3;stroke-dasharray:8 6;fill:none}
.head.missing{fill:#d01c1c}
.arrow.unexpected{stroke:#e07b00;stroke-width:3;fill:none}
.head.unexpected{fill:#e07b00}
.label{font-family:monospace;font-size:12px;fill:#222}
.time{font-family:monospace;font-size:11px;fill:#666}
.note{font-size:12px;fill:#d01c1c}
pre{background:#f4f4f4;padding:6px;overflow-x:auto;font-size:12px}
pre.failed,pre.missing{border-left:4px solid #d01c1c}
pre.unexpected{border-left:4px solid #e07b00}
";

/// Text made safe for HTML content and attribute values: `& < > " '`
/// written as entities. Control characters other than tab and line ends
/// are written as `\xNN`, since HTML cannot show them.
pub fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            '\t' | '\n' | '\r' => o.push(c),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(o, "\\x{:02x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o
}

fn cut(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}

impl Ladder {
    /// The diagram alone, as an inline `<svg>` element.
    pub fn svg(&self) -> String {
        let height = 70 + ROW * (self.arrows.len() + 1);
        let mut o = String::new();
        let _ = writeln!(
            o,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" role="img">"#
        );
        let _ = writeln!(o, "<title>{}</title>", escape(&self.title));
        for (x, name) in [(LEFT_X, &self.left), (RIGHT_X, &self.right)] {
            let _ = writeln!(
                o,
                r#"<text class="lanename" x="{x}" y="20" text-anchor="middle">{}</text>"#,
                escape(&cut(name, 40))
            );
            let _ = writeln!(
                o,
                r#"<line class="lane" x1="{x}" y1="30" x2="{x}" y2="{}"/>"#,
                height - 10
            );
        }
        for (i, a) in self.arrows.iter().enumerate() {
            let y = 60 + ROW * i;
            let (x1, x2) = match a.direction {
                Direction::Right => (LEFT_X + 4, RIGHT_X - 4),
                Direction::Left => (RIGHT_X - 4, LEFT_X + 4),
            };
            let class = a.mark.class();
            let _ = writeln!(o, "<g><title>{}</title>", escape(&a.detail));
            let _ = writeln!(
                o,
                r#"<line class="arrow {class}" x1="{x1}" y1="{y}" x2="{x2}" y2="{y}"/>"#
            );
            // The head: a triangle pointing at the receiving lane.
            let (tip, back) = match a.direction {
                Direction::Right => (x2, x2 - 12),
                Direction::Left => (x2, x2 + 12),
            };
            let _ = writeln!(
                o,
                r#"<polygon class="head {class}" points="{tip},{y} {back},{} {back},{}"/>"#,
                y - 6,
                y + 6
            );
            let _ = writeln!(
                o,
                r#"<text class="label" x="{}" y="{}" text-anchor="middle">{}</text>"#,
                (LEFT_X + RIGHT_X) / 2,
                y - 5,
                escape(&cut(&a.label, LABEL_CHARS))
            );
            if let Some(at) = a.at {
                let _ = writeln!(
                    o,
                    r#"<text class="time" x="{}" y="{}" text-anchor="end">+{:.1}ms</text>"#,
                    LEFT_X - 10,
                    y + 4,
                    at.as_secs_f64() * 1000.0
                );
            }
            if let Some(note) = &a.note {
                let _ = writeln!(
                    o,
                    r#"<text class="note" x="{}" y="{}">{}</text>"#,
                    RIGHT_X + 12,
                    y + 4,
                    escape(&cut(note, 60))
                );
            }
            let _ = writeln!(o, "</g>");
        }
        o.push_str("</svg>\n");
        o
    }

    /// The diagram, its notes and a listing of every PDU, as an HTML
    /// fragment (a `<section>`) for a page holding several ladders.
    pub fn section(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(o, "<section>\n<h2>{}</h2>", escape(&self.title));
        for n in &self.notes {
            let _ = writeln!(o, "<p>{}</p>", escape(n));
        }
        o.push_str(&self.svg());
        for (i, a) in self.arrows.iter().enumerate() {
            let arrow = match a.direction {
                Direction::Right => "→",
                Direction::Left => "←",
            };
            let note = a
                .note
                .as_ref()
                .map(|n| format!(" — {}", escape(n)))
                .unwrap_or_default();
            let _ = writeln!(
                o,
                "<pre class=\"{}\">{} {arrow}{note}\n{}</pre>",
                a.mark.class(),
                i + 1,
                escape(&a.detail)
            );
        }
        o.push_str("</section>\n");
        o
    }
}

/// A whole self-contained HTML page holding `body` (sections from
/// [`Ladder::section`] and other escaped HTML) under the heading `title`.
pub fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n\
         <title>{t}</title>\n<style>\n{STYLE}</style>\n</head>\n<body>\n<h1>{t}</h1>\n{body}</body>\n</html>\n",
        t = escape(title)
    )
}

impl Ladder {
    /// This ladder alone as a self-contained HTML page.
    pub fn html(&self) -> String {
        page(&self.title, &self.section())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arrow(direction: Direction, label: &str, mark: Mark) -> Arrow {
        Arrow {
            direction,
            at: Some(Duration::from_millis(3)),
            label: label.to_owned(),
            detail: format!("{label}\nTX-ID: 1"),
            mark,
            note: (mark != Mark::Normal).then(|| "expected 000 ACK".to_owned()),
        }
    }

    #[test]
    fn a_page_draws_one_arrow_per_pdu_and_escapes_the_wire() {
        let ladder = Ladder {
            title: "case <one>".to_owned(),
            left: "runner".to_owned(),
            right: "peer".to_owned(),
            arrows: vec![
                arrow(
                    Direction::Right,
                    "GET /<script>alert(1)</script> ACORN/1.0",
                    Mark::Normal,
                ),
                arrow(Direction::Left, "ACORN/1.0 200 OK", Mark::Failed),
                arrow(Direction::Left, "ACORN/1.0 000 ACK", Mark::Missing),
            ],
            notes: vec!["3 PDUs".to_owned()],
        };
        let html = ladder.html();
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert_eq!(html.matches("<polygon class=\"head").count(), 3);
        assert_eq!(html.matches("class=\"arrow failed\"").count(), 1);
        assert_eq!(html.matches("class=\"arrow missing\"").count(), 1);
        assert!(!html.contains("<script"), "wire text must be escaped");
        assert!(html.contains("&lt;script&gt;"));
        assert!(html.contains("case &lt;one&gt;"));
        // Self-contained: nothing to fetch.
        for fetch in ["src=", "href=", "url(", "@import"] {
            assert!(!html.contains(fetch), "{fetch}");
        }
        // Right-going arrows point right, left-going ones left.
        assert!(html.contains(&format!("points=\"{},60", RIGHT_X - 4)));
        assert!(html.contains(&format!("points=\"{},94", LEFT_X + 4)));
    }

    #[test]
    fn escape_writes_entities_and_control_characters() {
        assert_eq!(escape("a<b&\"c\"'>"), "a&lt;b&amp;&quot;c&quot;&#39;&gt;");
        assert_eq!(escape("x\u{1}y\tz"), "x\\x01y\tz");
        assert_eq!(cut("abcdef", 4), "abc…");
        assert_eq!(cut("abc", 4), "abc");
    }
}
