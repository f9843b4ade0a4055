//! Go's `fmt` as text/template uses it: printing values (`%v`) and `Sprintf`, with Go's float
//! formatting (`1e+06`, `+Inf`) so output matches Prometheus byte for byte.

use std::fmt::Write as _;

use super::exec::Value;

/// How text/template prints an action's value: `fmt.Fprint`, i.e. `%v`.
pub(super) fn print_value(out: &mut String, value: &Value<'_>) {
    if matches!(value, Value::Nil) {
        out.push_str("<no value>");
        return;
    }
    out.push_str(&format_value(value, 'v'));
}

/// `fmt.Sprint`: a space between operands when neither is a string.
pub(super) fn sprint(args: &[Value<'_>]) -> String {
    let mut out = String::new();
    for (i, arg) in args.iter().enumerate() {
        let is_string = matches!(arg, Value::Str(_));
        let previous_string = i > 0 && matches!(args[i - 1], Value::Str(_));
        if i > 0 && !is_string && !previous_string {
            out.push(' ');
        }
        print_value(&mut out, arg);
    }
    out
}

pub(super) fn format_value(value: &Value<'_>, verb: char) -> String {
    let mut out = String::new();
    format_arg(&mut out, value, verb, &Spec::default());
    out
}

#[derive(Clone, Copy, Default)]
struct Spec {
    minus: bool,
    plus: bool,
    sharp: bool,
    space: bool,
    zero: bool,
    width: Option<usize>,
    precision: Option<usize>,
}

/// `fmt.Sprintf` for the verbs and flags templates use; mismatches print Go's `%!verb(...)`.
pub(super) fn sprintf(format: &str, args: &[Value<'_>]) -> String {
    let mut out = String::new();
    let mut next_arg = 0;
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = Spec::default();
        while let Some(&flag) = chars.peek() {
            match flag {
                '-' => {
                    spec.minus = true;
                    spec.zero = false;
                }
                '+' => spec.plus = true,
                '#' => spec.sharp = true,
                ' ' => spec.space = true,
                '0' => spec.zero = !spec.minus,
                _ => break,
            }
            chars.next();
        }
        let number = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
                      next_arg: &mut usize,
                      out: &mut String|
         -> Option<usize> {
            if chars.peek() == Some(&'*') {
                chars.next();
                let value = args.get(*next_arg);
                *next_arg += 1;
                return match value {
                    Some(Value::Int(i)) if *i >= 0 => usize::try_from(*i).ok(),
                    _ => {
                        out.push_str("%!(BADWIDTH)");
                        None
                    }
                };
            }
            let mut digits = String::new();
            while let Some(&d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                digits.push(d);
                chars.next();
            }
            digits.parse().ok()
        };
        spec.width = number(&mut chars, &mut next_arg, &mut out);
        if chars.peek() == Some(&'.') {
            chars.next();
            spec.precision = Some(number(&mut chars, &mut next_arg, &mut out).unwrap_or(0));
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(next_arg) else {
            let _ = write!(out, "%!{verb}(MISSING)");
            continue;
        };
        next_arg += 1;
        format_arg(&mut out, arg, verb, &spec);
    }
    if next_arg < args.len() {
        out.push_str("%!(EXTRA ");
        for (i, arg) in args[next_arg..].iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            let _ = write!(out, "{}={}", arg.type_name(), format_value(arg, 'v'));
        }
        out.push(')');
    }
    out
}

fn format_arg(out: &mut String, value: &Value<'_>, verb: char, spec: &Spec) {
    if verb == 'T' {
        pad(out, value.type_name(), spec, false);
        return;
    }
    let handled = match value {
        Value::Str(s) => format_string(out, s, verb, spec),
        Value::Float(f) => format_float_arg(out, *f, verb, spec),
        Value::Int(i) => format_int(out, *i, verb, spec),
        Value::Bool(b) => {
            matches!(verb, 'v' | 't') && {
                pad(out, if *b { "true" } else { "false" }, spec, false);
                true
            }
        }
        Value::Map(map) => {
            out.push_str("map[");
            for (i, (key, element)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                format_arg(out, &Value::Str(key.clone()), verb, spec);
                out.push(':');
                format_arg(out, &Value::Str(element.clone()), verb, spec);
            }
            out.push(']');
            true
        }
        Value::Root(data) => {
            out.push('{');
            format_arg(out, &Value::Map(&data.labels), verb, spec);
            out.push(' ');
            format_arg(out, &Value::Map(&data.external_labels), verb, spec);
            out.push(' ');
            format_arg(out, &Value::Str(data.external_url.clone()), verb, spec);
            out.push(' ');
            format_arg(out, &Value::Float(data.value), verb, spec);
            out.push('}');
            true
        }
        Value::Nil => {
            let _ = write!(out, "%!{verb}(<nil>)");
            true
        }
    };
    if !handled {
        let _ = write!(out, "%!{verb}({}=", value.type_name());
        format_arg(out, value, 'v', spec);
        out.push(')');
    }
}

/// Pads to the width in runes; `zero` pads with zeros on the left.
fn pad(out: &mut String, text: &str, spec: &Spec, allow_zero: bool) {
    let len = text.chars().count();
    let fill = spec.width.unwrap_or(0).saturating_sub(len);
    if spec.minus {
        out.push_str(text);
        out.extend(std::iter::repeat_n(' ', fill));
    } else {
        let c = if spec.zero && allow_zero { '0' } else { ' ' };
        out.extend(std::iter::repeat_n(c, fill));
        out.push_str(text);
    }
}

fn format_string(out: &mut String, s: &str, verb: char, spec: &Spec) -> bool {
    match verb {
        'v' | 's' if !(verb == 'v' && spec.sharp) => {
            let truncated: String = match spec.precision {
                Some(p) => s.chars().take(p).collect(),
                None => s.to_owned(),
            };
            pad(out, &truncated, spec, true);
        }
        'q' | 'v' => pad(out, &go_quote(s), spec, true),
        'x' | 'X' => {
            let mut hex = String::new();
            for byte in s.bytes() {
                if verb == 'x' {
                    let _ = write!(hex, "{byte:02x}");
                } else {
                    let _ = write!(hex, "{byte:02X}");
                }
            }
            pad(out, &hex, spec, true);
        }
        _ => return false,
    }
    true
}

/// `strconv.Quote`.
pub(super) fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\x7f' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_control() => {
                if (c as u32) < 0x10000 {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                } else {
                    let _ = write!(out, "\\U{:08x}", c as u32);
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn format_int(out: &mut String, i: i64, verb: char, spec: &Spec) -> bool {
    let magnitude = i.unsigned_abs();
    let mut digits = match verb {
        'v' | 'd' => magnitude.to_string(),
        'b' => format!("{magnitude:b}"),
        'o' | 'O' => format!("{magnitude:o}"),
        'x' => format!("{magnitude:x}"),
        'X' => format!("{magnitude:X}"),
        'c' => {
            let c = u32::try_from(i)
                .ok()
                .and_then(char::from_u32)
                .unwrap_or('\u{FFFD}');
            pad(out, &c.to_string(), spec, false);
            return true;
        }
        'q' => {
            let c = u32::try_from(i)
                .ok()
                .and_then(char::from_u32)
                .unwrap_or('\u{FFFD}');
            let quoted = go_quote(&c.to_string());
            let inner = &quoted[1..quoted.len() - 1];
            let inner = if inner == "\\\"" { "\"" } else { inner };
            let single = if c == '\'' {
                "'\\''".to_owned()
            } else {
                format!("'{inner}'")
            };
            pad(out, &single, spec, false);
            return true;
        }
        _ => return false,
    };
    let negative = i < 0;
    let has_sign = negative || spec.plus || spec.space;
    let min_digits = match spec.precision {
        Some(0) if i == 0 => {
            pad(out, "", spec, false);
            return true;
        }
        Some(p) => p,
        None if spec.zero && !spec.minus => spec
            .width
            .unwrap_or(0)
            .saturating_sub(usize::from(has_sign)),
        None => 0,
    };
    while digits.len() < min_digits {
        digits.insert(0, '0');
    }
    if spec.sharp {
        match verb {
            'x' => digits.insert_str(0, "0x"),
            'X' => digits.insert_str(0, "0X"),
            'o' if !digits.starts_with('0') => digits.insert(0, '0'),
            'b' => digits.insert_str(0, "0b"),
            _ => {}
        }
    }
    if verb == 'O' {
        digits.insert_str(0, "0o");
    }
    if negative {
        digits.insert(0, '-');
    } else if spec.plus {
        digits.insert(0, '+');
    } else if spec.space {
        digits.insert(0, ' ');
    }
    pad(out, &digits, spec, false);
    true
}

fn format_float_arg(out: &mut String, f: f64, verb: char, spec: &Spec) -> bool {
    let (verb, default_precision) = match verb {
        'v' => ('g', None),
        'g' | 'G' => (verb, None),
        'e' | 'E' | 'f' => (verb, Some(6)),
        'F' => ('f', Some(6)),
        _ => return false,
    };
    let precision = spec.precision.or(default_precision);
    let mut number = format_float(f, verb, precision);
    if !number.starts_with(['-', '+']) {
        number.insert(0, '+');
    }
    if spec.space && number.starts_with('+') && !spec.plus {
        number.replace_range(0..1, " ");
    }
    // Infinities and NaN are not zero padded; NaN loses the sign unless asked for.
    if number[1..].starts_with(['I', 'N']) {
        if number[1..].starts_with('N') && !spec.space && !spec.plus {
            number.remove(0);
        }
        pad(out, &number, spec, false);
        return true;
    }
    if spec.plus || !number.starts_with('+') {
        let len = number.chars().count();
        if spec.zero && !spec.minus && spec.width.is_some_and(|w| w > len) {
            out.push_str(&number[..1]);
            let width = spec.width.unwrap_or(0);
            out.extend(std::iter::repeat_n('0', width - len));
            out.push_str(&number[1..]);
            return true;
        }
        pad(out, &number, spec, false);
        return true;
    }
    pad(out, &number[1..], spec, true);
    true
}

/// `strconv.FormatFloat(f, verb, precision, 64)` for `e`, `E`, `f`, `g`, `G` and `v` (`%v` is
/// `g` with the shortest precision), including Go's `+Inf`.
pub(super) fn format_float(f: f64, verb: char, precision: Option<usize>) -> String {
    if f.is_nan() {
        return "NaN".to_owned();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.to_owned();
    }
    let sign = if f.is_sign_negative() { "-" } else { "" };
    let abs = f.abs();
    let body = match verb {
        'f' => format!("{:.*}", precision.unwrap_or(6), abs),
        'e' | 'E' => {
            let p = precision.unwrap_or(6);
            let (digits, point) = decimal_digits(abs, Some(p + 1));
            format_e(&digits, point, p, verb)
        }
        _ => {
            let exp_char = if verb == 'G' { 'E' } else { 'e' };
            let shortest = precision.is_none();
            let significant = precision.map(|p| p.max(1));
            let (digits, point) = decimal_digits(abs, significant);
            let nd = digits.len() as i64;
            let mut prec = significant.map_or(nd, |p| p as i64);
            let mut eprec = prec;
            if eprec > nd && nd >= point {
                eprec = nd;
            }
            if shortest {
                eprec = 6;
            }
            let exp = point - 1;
            if exp < -4 || exp >= eprec {
                if prec > nd {
                    prec = nd;
                }
                format_e(&digits, point, (prec - 1).max(0) as usize, exp_char)
            } else {
                if prec > point {
                    prec = nd;
                }
                format_f(&digits, point, (prec - point).max(0) as usize)
            }
        }
    };
    format!("{sign}{body}")
}

/// The decimal digits (no trailing zeros) and decimal point position of a finite, non-negative
/// float, shortest or rounded to `significant` digits half-to-even, as Go's strconv does.
fn decimal_digits(abs: f64, significant: Option<usize>) -> (Vec<u8>, i64) {
    if abs == 0.0 {
        return (Vec::new(), 0);
    }
    let text = match significant {
        Some(n) => format!("{:.*e}", n.saturating_sub(1), abs),
        None => format!("{abs:e}"),
    };
    let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
    let exponent: i64 = exponent.parse().unwrap_or(0);
    let mut digits: Vec<u8> = mantissa.bytes().filter(u8::is_ascii_digit).collect();
    while digits.len() > 1 && digits.last() == Some(&b'0') {
        digits.pop();
    }
    if digits == [b'0'] {
        return (Vec::new(), 0);
    }
    (digits, exponent + 1)
}

fn format_e(digits: &[u8], point: i64, precision: usize, exp_char: char) -> String {
    let mut out = String::new();
    out.push(char::from(digits.first().copied().unwrap_or(b'0')));
    if precision > 0 {
        out.push('.');
        for i in 1..=precision {
            out.push(char::from(digits.get(i).copied().unwrap_or(b'0')));
        }
    }
    let exp = if digits.is_empty() { 0 } else { point - 1 };
    out.push(exp_char);
    out.push(if exp < 0 { '-' } else { '+' });
    let magnitude = exp.unsigned_abs();
    if magnitude < 10 {
        out.push('0');
    }
    let _ = write!(out, "{magnitude}");
    out
}

fn format_f(digits: &[u8], point: i64, precision: usize) -> String {
    let mut out = String::new();
    if point > 0 {
        for i in 0..point as usize {
            out.push(char::from(digits.get(i).copied().unwrap_or(b'0')));
        }
    } else {
        out.push('0');
    }
    if precision > 0 {
        out.push('.');
        for i in 1..=precision as i64 {
            let j = point + i - 1;
            let digit = usize::try_from(j)
                .ok()
                .and_then(|j| digits.get(j).copied())
                .unwrap_or(b'0');
            out.push(char::from(digit));
        }
    }
    out
}
