//! Prometheus durations (`0m`, `90s`, `1h30m`, `1w`, `1y` = 365 days, `500ms`): units in
//! descending order, each at most once, no fractions, no months. Not humantime's syntax.

use std::time::Duration;

/// Parses a Prometheus duration, or says what a valid one looks like.
pub fn parse(text: &str) -> Result<Duration, String> {
    const UNITS: [(&str, u64); 7] = [
        ("y", 365 * 24 * 3600 * 1000),
        ("w", 7 * 24 * 3600 * 1000),
        ("d", 24 * 3600 * 1000),
        ("h", 3600 * 1000),
        ("m", 60 * 1000),
        ("s", 1000),
        ("ms", 1),
    ];
    let invalid = || {
        format!(
            "invalid duration `{text}`: write whole numbers with units in descending order, e.g. 30s, 5m, 1h30m, 7d, 1w"
        )
    };
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = text;
    let mut total: u64 = 0;
    let mut last_unit = usize::MAX;
    if rest.is_empty() {
        return Err(invalid());
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(invalid());
        }
        let number: u64 = rest[..digits].parse().map_err(|_| invalid())?;
        rest = &rest[digits..];
        // "ms" must be tried before "m".
        let unit = [6usize, 0, 1, 2, 3, 4, 5]
            .into_iter()
            .find(|&i| rest.starts_with(UNITS[i].0))
            .ok_or_else(invalid)?;
        if last_unit != usize::MAX && unit <= last_unit {
            return Err(invalid());
        }
        last_unit = unit;
        rest = &rest[UNITS[unit].0.len()..];
        total = number
            .checked_mul(UNITS[unit].1)
            .and_then(|ms| total.checked_add(ms))
            .ok_or_else(invalid)?;
    }
    Ok(Duration::from_millis(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_forms_parse_and_others_do_not() {
        assert_eq!(parse("0m"), Ok(Duration::ZERO));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("1w"), Ok(Duration::from_secs(7 * 86400)));
        assert_eq!(parse("1y"), Ok(Duration::from_secs(365 * 86400)));
        assert_eq!(parse("1m500ms"), Ok(Duration::from_millis(60_500)));
        for bad in ["", "1.5h", "5", "30m1h", "1M", "m", "1h1h", "10 s"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
