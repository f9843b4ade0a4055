//! The template functions: Go's builtins (`eq`, `index`, `len`, `print`...) and Prometheus'
//! (`humanize*`, `reReplaceAll`, `stripPort`...), with Prometheus' argument conversions.

use std::fmt::Write as _;

use super::exec::{Data, Value, lookup};
use super::printf::{format_float, go_quote, print_value, sprint, sprintf};

fn want_args(name: &str, arguments: &[Value<'_>], count: usize) -> Result<(), String> {
    if arguments.len() == count {
        Ok(())
    } else {
        Err(format!(
            "wrong number of args for {name}: want {count} got {}",
            arguments.len()
        ))
    }
}

fn string_arg(value: &Value<'_>) -> Result<String, String> {
    match value {
        Value::Str(s) => Ok(s.clone()),
        other => Err(format!(
            "wrong type for value; expected string; got {}",
            other.type_name()
        )),
    }
}

/// Prometheus' `convertToFloat`.
fn float_arg(value: &Value<'_>) -> Result<f64, String> {
    match value {
        Value::Float(f) => Ok(*f),
        Value::Int(i) => Ok(*i as f64),
        Value::Str(s) => parse_go_float(s).ok_or_else(|| {
            format!(
                "strconv.ParseFloat: parsing {}: invalid syntax",
                go_quote(s)
            )
        }),
        other => Err(format!("can't convert {} to float", other.type_name())),
    }
}

/// `strconv.ParseFloat` for the decimal forms label values use.
fn parse_go_float(text: &str) -> Option<f64> {
    let unsigned = text.trim_start_matches(['+', '-']);
    let lower = unsigned.to_ascii_lowercase();
    if text.len() - unsigned.len() > 1 || lower.starts_with("0x") || lower.contains('_') {
        return None;
    }
    if matches!(lower.as_str(), "inf" | "infinity" | "nan") {
        if lower == "nan" && unsigned.len() != text.len() {
            return None;
        }
        return text.parse().ok();
    }
    if !unsigned.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
        return None;
    }
    text.parse().ok()
}

pub(super) fn call_function<'d>(
    name: &str,
    args: &[Value<'d>],
    data: &'d Data,
) -> Result<Value<'d>, String> {
    let one = |args: &[Value<'d>]| -> Result<f64, String> {
        want_args(name, args, 1)?;
        float_arg(&args[0])
    };
    let text = |args: &[Value<'d>]| -> Result<String, String> {
        want_args(name, args, 1)?;
        string_arg(&args[0])
    };
    Ok(match name {
        "not" => {
            want_args(name, args, 1)?;
            Value::Bool(!args[0].is_true())
        }
        "eq" => {
            let (first, rest) = args
                .split_first()
                .ok_or_else(|| "missing argument for comparison".to_owned())?;
            if rest.is_empty() {
                return Err("missing argument for comparison".to_owned());
            }
            let mut truth = false;
            for other in rest {
                truth |= equal(first, other)?;
            }
            Value::Bool(truth)
        }
        "ne" | "lt" | "le" | "gt" | "ge" => {
            want_args(name, args, 2)?;
            let (a, b) = (&args[0], &args[1]);
            Value::Bool(match name {
                "ne" => !equal(a, b)?,
                "lt" => less(a, b)?,
                "le" => less(a, b)? || equal(a, b)?,
                "gt" => !(less(a, b)? || equal(a, b)?),
                _ => !less(a, b)?,
            })
        }
        "index" => {
            let (item, keys) = args.split_first().ok_or_else(|| {
                "wrong number of args for index: want at least 1 got 0".to_owned()
            })?;
            let mut value = item.clone();
            for key in keys {
                value = match (&value, key) {
                    (Value::Map(map), Value::Str(key)) => Value::Str(lookup(map, key)),
                    (Value::Map(_), other) => {
                        return Err(format!(
                            "value has type {}; should be string",
                            other.type_name()
                        ));
                    }
                    (other, _) => {
                        return Err(format!("can't index item of type {}", other.type_name()));
                    }
                };
            }
            value
        }
        "len" => {
            want_args(name, args, 1)?;
            match &args[0] {
                Value::Str(s) => Value::Int(s.len() as i64),
                Value::Map(m) => Value::Int(m.len() as i64),
                other => return Err(format!("len of type {}", other.type_name())),
            }
        }
        "print" => Value::Str(sprint(args)),
        "println" => {
            let mut out = String::new();
            for (i, arg) in args.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                print_value(&mut out, arg);
            }
            out.push('\n');
            Value::Str(out)
        }
        "printf" => {
            let (format, rest) = args.split_first().ok_or_else(|| {
                "wrong number of args for printf: want at least 1 got 0".to_owned()
            })?;
            Value::Str(sprintf(&string_arg(format)?, rest))
        }
        "humanize" => Value::Str(humanize(one(args)?)),
        "humanize1024" => Value::Str(humanize1024(one(args)?)),
        "humanizePercentage" => Value::Str(format!(
            "{}%",
            format_float(one(args)? * 100.0, 'g', Some(4))
        )),
        "humanizeDuration" => Value::Str(humanize_duration(one(args)?)),
        "humanizeTimestamp" => Value::Str(humanize_timestamp(one(args)?)?),
        "toUpper" => Value::Str(map_chars(&text(args)?, char::to_uppercase)),
        "toLower" => Value::Str(map_chars(&text(args)?, char::to_lowercase)),
        "title" => Value::Str(title(&text(args)?)),
        "stripPort" => Value::Str(strip_port(&text(args)?)),
        "safeHtml" => Value::Str(text(args)?),
        "html" => Value::Str(html_escape(&sprint(args))),
        "urlquery" => Value::Str(query_escape(&sprint(args))),
        "js" => Value::Str(js_escape(&sprint(args))),
        "externalURL" => {
            want_args(name, args, 0)?;
            Value::Str(data.external_url.clone())
        }
        "reReplaceAll" => {
            want_args(name, args, 3)?;
            let pattern = string_arg(&args[0])?;
            let replacement = string_arg(&args[1])?;
            let input = string_arg(&args[2])?;
            let regex = compile_regex(&pattern)?;
            Value::Str(regex.replace_all(&input, replacement.as_str()).into_owned())
        }
        "match" => {
            want_args(name, args, 2)?;
            let regex = compile_regex(&string_arg(&args[0])?)?;
            Value::Bool(regex.is_match(&string_arg(&args[1])?))
        }
        other => return Err(format!("function {other:?} not defined")),
    })
}

fn compile_regex(pattern: &str) -> Result<regex::Regex, String> {
    // The regex crate's message spans lines; its last line says what is wrong.
    regex::Regex::new(pattern).map_err(|e| {
        let message = e.to_string();
        let last = message
            .lines()
            .last()
            .unwrap_or_default()
            .trim_start_matches("error: ");
        format!("error parsing regexp: {last}")
    })
}

/// Go's `strings.ToUpper`/`ToLower` map each rune to one rune; a multi-rune Unicode mapping
/// (`ß` to `SS`) keeps the rune, as Go does.
fn map_chars<I: Iterator<Item = char>>(text: &str, map: fn(char) -> I) -> String {
    text.chars()
        .map(|c| {
            let mut mapped = map(c);
            match (mapped.next(), mapped.next()) {
                (Some(single), None) => single,
                _ => c,
            }
        })
        .collect()
}

/// Go's deprecated `strings.Title`, which Prometheus still calls.
fn title(text: &str) -> String {
    let is_separator = |c: char| {
        if c.is_ascii() {
            !(c.is_ascii_alphanumeric() || c == '_')
        } else if c.is_alphanumeric() {
            false
        } else {
            c.is_whitespace()
        }
    };
    let mut previous = ' ';
    text.chars()
        .map(|c| {
            let out = if is_separator(previous) {
                map_chars(&c.to_string(), char::to_uppercase)
                    .chars()
                    .next()
                    .unwrap_or(c)
            } else {
                c
            };
            previous = c;
            out
        })
        .collect()
}

/// `net.SplitHostPort`'s host, or the input unchanged when it does not split.
fn strip_port(host_port: &str) -> String {
    let split = || -> Option<&str> {
        let colon = host_port.rfind(':')?;
        let (host, j, k) = if host_port.starts_with('[') {
            let end = host_port.find(']')?;
            if end + 1 != colon {
                return None;
            }
            (&host_port[1..end], 1, end + 1)
        } else {
            let host = &host_port[..colon];
            if host.contains(':') {
                return None;
            }
            (host, 0, 0)
        };
        if host_port[j..].contains('[') || host_port[k..].contains(']') {
            return None;
        }
        Some(host)
    };
    split().unwrap_or(host_port).to_owned()
}

fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\0' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

fn query_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(byte));
            }
            b' ' => out.push('+'),
            other => {
                let _ = write!(out, "%{other:02X}");
            }
        }
    }
    out
}

fn js_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            '&' => out.push_str("\\u0026"),
            '=' => out.push_str("\\u003D"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Bool,
    Int,
    Float,
    String,
}

fn basic_kind(value: &Value<'_>) -> Result<Kind, String> {
    match value {
        Value::Bool(_) => Ok(Kind::Bool),
        Value::Int(_) => Ok(Kind::Int),
        Value::Float(_) => Ok(Kind::Float),
        Value::Str(_) => Ok(Kind::String),
        _ => Err("invalid type for comparison".to_owned()),
    }
}

/// Go's `eq` for two operands: same basic kind or an error, never a numeric conversion.
fn equal(a: &Value<'_>, b: &Value<'_>) -> Result<bool, String> {
    let (ka, kb) = (basic_kind(a)?, basic_kind(b)?);
    if ka != kb {
        return Err("incompatible types for comparison".to_owned());
    }
    Ok(match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Int(x), Value::Int(y)) => x == y,
        (Value::Float(x), Value::Float(y)) => x == y,
        (Value::Str(x), Value::Str(y)) => x == y,
        _ => false,
    })
}

fn less(a: &Value<'_>, b: &Value<'_>) -> Result<bool, String> {
    let (ka, kb) = (basic_kind(a)?, basic_kind(b)?);
    if ka != kb {
        return Err("incompatible types for comparison".to_owned());
    }
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => Ok(x < y),
        (Value::Float(x), Value::Float(y)) => Ok(x < y),
        (Value::Str(x), Value::Str(y)) => Ok(x < y),
        _ => Err("invalid type for comparison".to_owned()),
    }
}

// ---------------------------------------------------------------------------------------------
// Prometheus' humanize functions.

fn humanize(mut v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format_float(v, 'g', Some(4));
    }
    let mut prefix = "";
    if v.abs() >= 1.0 {
        for p in ["k", "M", "G", "T", "P", "E", "Z", "Y"] {
            if v.abs() < 1000.0 {
                break;
            }
            prefix = p;
            v /= 1000.0;
        }
    } else {
        for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
            if v.abs() >= 1.0 {
                break;
            }
            prefix = p;
            v *= 1000.0;
        }
    }
    format!("{}{prefix}", format_float(v, 'g', Some(4)))
}

fn humanize1024(mut v: f64) -> String {
    if v.abs() <= 1.0 || !v.is_finite() {
        return format_float(v, 'g', Some(4));
    }
    let mut prefix = "";
    for p in ["ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"] {
        if v.abs() < 1024.0 {
            break;
        }
        prefix = p;
        v /= 1024.0;
    }
    format!("{}{prefix}", format_float(v, 'g', Some(4)))
}

/// 2^63, where Go's float64 comparisons with `math.MaxInt64` land.
const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;

/// Go's float64-to-int64 conversion on amd64: out of range (and NaN) gives the minimum.
fn go_int64(v: f64) -> i64 {
    if v.is_nan() || !(-TWO_POW_63..TWO_POW_63).contains(&v) {
        i64::MIN
    } else {
        v as i64
    }
}

fn humanize_duration(mut v: f64) -> String {
    if !v.is_finite() {
        return format_float(v, 'g', Some(4));
    }
    if v == 0.0 {
        return format!("{}s", format_float(v, 'g', Some(4)));
    }
    if v.abs() >= 1.0 {
        let mut sign = "";
        if v < 0.0 {
            sign = "-";
            v = -v;
        }
        let duration = go_int64(v);
        let seconds = duration % 60;
        let minutes = (duration / 60) % 60;
        let hours = (duration / 60 / 60) % 24;
        let days = duration / 60 / 60 / 24;
        if days != 0 {
            return format!("{sign}{days}d {hours}h {minutes}m {seconds}s");
        }
        if hours != 0 {
            return format!("{sign}{hours}h {minutes}m {seconds}s");
        }
        if minutes != 0 {
            return format!("{sign}{minutes}m {seconds}s");
        }
        return format!("{sign}{}s", format_float(v, 'g', Some(4)));
    }
    let mut prefix = "";
    for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
        if v.abs() >= 1.0 {
            break;
        }
        prefix = p;
        v *= 1000.0;
    }
    format!("{}{prefix}s", format_float(v, 'g', Some(4)))
}

/// Seconds since the epoch as Go prints a UTC `time.Time`, truncated to milliseconds as
/// Prometheus' `model.Time` does.
fn humanize_timestamp(v: f64) -> Result<String, String> {
    if !v.is_finite() {
        return Ok(format_float(v, 'g', Some(4)));
    }
    let nanos = v * 1e9;
    if !(-TWO_POW_63..=TWO_POW_63).contains(&nanos) {
        return Err(format!(
            "{} cannot be represented as a nanoseconds timestamp since it overflows int64",
            format_float(v, 'v', None)
        ));
    }
    let millis = go_int64(nanos) / 1_000_000;
    let seconds = millis.div_euclid(1000);
    let fraction_millis = millis.rem_euclid(1000);
    let days = seconds.div_euclid(86_400);
    let of_day = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let mut text = format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60
    );
    if fraction_millis != 0 {
        let fraction = format!("{fraction_millis:03}");
        text.push('.');
        text.push_str(fraction.trim_end_matches('0'));
    }
    text.push_str(" +0000 UTC");
    Ok(text)
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}
