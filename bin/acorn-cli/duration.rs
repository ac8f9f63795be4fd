//! Durations on the command line: `300ms`, `5s`, `1.5s`, `2m`, `1h`.

use std::time::Duration;

/// Parse `NUMBER[UNIT]` where UNIT is `ms`, `s` (the default), `m` or `h`
/// and NUMBER is a decimal that may have a fraction (`0.25s`). Used as a
/// clap `value_parser`, so the message is what the user sees after
/// `invalid value '...' for '--timeout <DURATION>'`.
pub(crate) fn parse(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let scale = match unit {
        "ms" => 0.001,
        "" | "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return Err(format!("unknown unit `{unit}` (use ms, s, m or h)")),
    };
    if number.is_empty() || number.starts_with('.') || number.ends_with('.') {
        return Err("expected a number followed by ms, s, m or h (e.g. 300ms, 5s)".to_owned());
    }
    let n: f64 = number
        .parse()
        .map_err(|_| format!("`{number}` is not a number"))?;
    Duration::try_from_secs_f64(n * scale).map_err(|_| "duration out of range".to_owned())
}

#[cfg(test)]
mod tests {
    use super::parse;
    use std::time::Duration;

    #[test]
    fn units() {
        assert_eq!(parse("300ms"), Ok(Duration::from_millis(300)));
        assert_eq!(parse("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse("5"), Ok(Duration::from_secs(5)));
        assert_eq!(parse("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
    }

    #[test]
    fn refused() {
        for bad in [
            "", "s", "ms", "-1s", "1.s", ".5s", "5 s", "5x", "1e3s", "1..2s",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
