//! Where in an expression an error is. promql-parser's messages carry no position, so the
//! position is recovered from the message and the text: the construct it names in quotes or
//! backticks, an unmatched bracket, the end of input, or else the end of the longest prefix
//! that still parses. Messages then read like promtool's: `1:14: unknown function ...`.

/// The error message with a `line:column:` prefix and a caret under the position, or as it
/// was when no position can be found.
pub fn annotate(expr: &str, message: &str) -> String {
    let Some(offset) = locate(expr, message) else {
        return format!("{message} in `{}`", expr.trim());
    };
    let before = &expr[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = expr[line_start..offset].chars().count() + 1;
    let line_text = expr[line_start..].lines().next().unwrap_or("");
    format!(
        "{line}:{column}: {message}\n      {line_text}\n      {}^",
        " ".repeat(column - 1)
    )
}

/// The byte offset the message points at.
pub fn locate(expr: &str, message: &str) -> Option<usize> {
    if message.contains("unclosed left") {
        return unmatched_opener(expr);
    }
    if message.contains("unexpected right") || message.contains("unexpected \"}\"") {
        return unmatched_closer(expr);
    }
    if message.contains("end of input") {
        return Some(expr.trim_end().len());
    }
    if message.contains("for @ modifier") {
        return out_of_range_at(expr);
    }
    for (open, close) in [('`', '`'), ('\'', '\''), ('"', '"')] {
        if let Some(named) = quoted(message, open, close)
            && !named.is_empty()
        {
            let key = named.split(['(', ' ', '{', '[']).next().unwrap_or(named);
            if let Some(at) = expr.find(named).or_else(|| expr.find(key)) {
                return Some(at);
            }
        }
    }
    valid_prefix(expr)
}

fn quoted(message: &str, open: char, close: char) -> Option<&str> {
    let start = message.find(open)? + open.len_utf8();
    let len = message[start..].find(close)?;
    Some(&message[start..start + len])
}

/// The characters of an expression outside its string literals, with their offsets.
pub(super) fn code_chars(expr: &str) -> Vec<(usize, char)> {
    let mut out = Vec::new();
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in expr.char_indices() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '"' | '\'' | '`' => quote = Some(c),
            _ => out.push((i, c)),
        }
    }
    out
}

/// Brackets outside string literals, with their offsets.
fn brackets(expr: &str) -> Vec<(usize, char)> {
    code_chars(expr)
        .into_iter()
        .filter(|(_, c)| "()[]{}".contains(*c))
        .collect()
}

fn unmatched_opener(expr: &str) -> Option<usize> {
    let mut stack = Vec::new();
    for (i, c) in brackets(expr) {
        match c {
            '(' | '[' | '{' => stack.push(i),
            _ => {
                stack.pop();
            }
        }
    }
    stack.last().copied()
}

fn unmatched_closer(expr: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (i, c) in brackets(expr) {
        match c {
            '(' | '[' | '{' => depth += 1,
            _ if depth == 0 => return Some(i),
            _ => depth -= 1,
        }
    }
    None
}

/// The `@` whose time lies outside Prometheus' range, else the first `@`.
fn out_of_range_at(expr: &str) -> Option<usize> {
    let ats: Vec<usize> = code_chars(expr)
        .into_iter()
        .filter(|(_, c)| *c == '@')
        .map(|(i, _)| i)
        .collect();
    let out_of_range = |&at: &usize| {
        let rest = expr[at + 1..].trim_start();
        let number: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || "+-.".contains(*c))
            .collect();
        number.parse::<f64>().is_ok_and(|seconds| {
            let ms = seconds * 1000.0;
            !(ms >= super::eval::MIN_TIME_MS as f64 && ms <= super::eval::MAX_TIME_MS as f64)
        })
    };
    ats.iter()
        .copied()
        .find(out_of_range)
        .or(ats.first().copied())
}

/// The first token after the longest prefix that parses on its own: the parser gave up at or
/// after it.
fn valid_prefix(expr: &str) -> Option<usize> {
    let boundaries: Vec<usize> = expr
        .char_indices()
        .filter(|(_, c)| c.is_whitespace() || "()[]{},+-*/%^=!<>".contains(*c))
        .map(|(i, _)| i)
        .chain(std::iter::once(expr.len()))
        .collect();
    let end = boundaries
        .iter()
        .rev()
        .find(|&&i| i > 0 && promql_parser::parser::parse(&expr[..i]).is_ok())?;
    let rest = &expr[*end..];
    Some(end + (rest.len() - rest.trim_start().len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(expr: &str) -> Option<usize> {
        let message = promql_parser::parser::parse(expr).err()?;
        locate(expr, &message).map(|at| at + 1)
    }

    #[test]
    fn positions_point_at_the_problem() {
        assert_eq!(column("rate(x[5m]) > on(a) group_left(b"), Some(31));
        assert_eq!(column("holt_winters(x[5m], 0.5, 0.5) > 1"), Some(1));
        assert_eq!(column("up{a=\"b\"} + sumx(up)"), Some(13));
        assert_eq!(column("foo + bar baz"), Some(11));
        assert_eq!(column("sum(up))"), Some(8));
        let shown = annotate("a +\n  nosuch(b)", "unknown function with name 'nosuch'");
        assert!(shown.starts_with("2:3: unknown function"), "{shown}");
        assert!(shown.ends_with("\n        ^"), "{shown:?}");
    }

    #[test]
    fn an_out_of_range_at_is_pointed_at() {
        let expr = "up @ 100 + up @ 9223372036854775";
        let shown = annotate(expr, "timestamp out of bounds for @ modifier: 9e15");
        assert!(
            shown.starts_with("1:15: timestamp out of bounds"),
            "{shown}"
        );
    }
}
