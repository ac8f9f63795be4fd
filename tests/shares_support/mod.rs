//! Header lines the shares tests (engine and loopback) send.

/// A `GET` with its own TX-ID and a Message-ID per attempt (`N/MAX`).
pub fn get(tx: &str, attempt: &str) -> Vec<String> {
    vec![
        "GET /x ACORN/1.0".into(),
        format!("TX-ID: {tx}"),
        format!("Message-ID: {tx}-{attempt}"),
        format!("Attempt: {attempt}"),
    ]
}
