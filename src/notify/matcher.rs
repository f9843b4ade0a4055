//! Label matchers with Alertmanager's semantics: `name="value"`, `!=`, `=~`, `!~`, regexes
//! anchored, a missing label matching as the empty string, and Alertmanager's parser for
//! matcher lists such as `{severity="critical", team=~"db|cache"}`.

use std::cmp::Ordering;
use std::fmt;

use regex::Regex;

use crate::model::Labels;

/// The comparison a matcher makes, in Alertmanager's order (it sorts matchers by it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MatchOp {
    Equal,
    NotEqual,
    Regexp,
    NotRegexp,
}

impl MatchOp {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Regexp => "=~",
            MatchOp::NotRegexp => "!~",
        }
    }
}

/// One label matcher.
#[derive(Clone, Debug)]
pub struct Matcher {
    pub name: String,
    pub op: MatchOp,
    pub value: String,
    /// The anchored regex, for `=~` and `!~`.
    regex: Option<Regex>,
}

impl Matcher {
    /// A matcher; a regex value is compiled anchored as `^(?:value)$`.
    pub fn new(name: &str, op: MatchOp, value: &str) -> Result<Matcher, String> {
        let regex = match op {
            MatchOp::Regexp | MatchOp::NotRegexp => Some(
                Regex::new(&format!("^(?:{value})$"))
                    .map_err(|e| format!("invalid regular expression `{value}`: {e}"))?,
            ),
            MatchOp::Equal | MatchOp::NotEqual => None,
        };
        Ok(Matcher {
            name: name.to_string(),
            op,
            value: value.to_string(),
            regex,
        })
    }

    /// True when the label's value (empty when absent) satisfies the matcher.
    pub fn matches_value(&self, value: &str) -> bool {
        match (self.op, &self.regex) {
            (MatchOp::Equal, _) => value == self.value,
            (MatchOp::NotEqual, _) => value != self.value,
            (MatchOp::Regexp, Some(regex)) => regex.is_match(value),
            (MatchOp::NotRegexp, Some(regex)) => !regex.is_match(value),
            (MatchOp::Regexp | MatchOp::NotRegexp, None) => false,
        }
    }

    /// True when the label set satisfies the matcher.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.matches_value(labels.get(&self.name).unwrap_or(""))
    }
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Matcher) -> bool {
        self.name == other.name && self.op == other.op && self.value == other.value
    }
}

impl Eq for Matcher {}

impl PartialOrd for Matcher {
    fn partial_cmp(&self, other: &Matcher) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Alertmanager's order: by name, then value, then operator.
impl Ord for Matcher {
    fn cmp(&self, other: &Matcher) -> Ordering {
        (&self.name, &self.value, self.op).cmp(&(&other.name, &other.value, other.op))
    }
}

/// Alertmanager's form: `name="value"` with `\`, newline and `"` escaped.
impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut escaped = String::with_capacity(self.value.len());
        for c in self.value.chars() {
            match c {
                '\\' => escaped.push_str("\\\\"),
                '\n' => escaped.push_str("\\n"),
                '"' => escaped.push_str("\\\""),
                c => escaped.push(c),
            }
        }
        write!(f, "{}{}\"{}\"", self.name, self.op.as_str(), escaped)
    }
}

/// True when every matcher matches (an empty list matches everything).
pub fn matches_all(matchers: &[Matcher], labels: &Labels) -> bool {
    matchers.iter().all(|m| m.matches(labels))
}

/// Alertmanager's `Matchers.String()`: `{a="b",c=~"d"}`.
pub fn display_list(matchers: &[Matcher]) -> String {
    let inner: Vec<String> = matchers.iter().map(Matcher::to_string).collect();
    format!("{{{}}}", inner.join(","))
}

/// Parses a matcher list as Alertmanager does: optional braces, comma-separated matchers, values
/// quoted or not. Alertmanager 0.27 tries its newer parser first and falls back to the classic
/// one; every input the newer one accepts with the same meaning the classic one accepts too,
/// except quoted label names, which this accepts as well.
pub fn parse_matchers(text: &str) -> Result<Vec<Matcher>, String> {
    let trimmed = text.trim();
    let inner = trimmed.strip_prefix('{').unwrap_or(trimmed);
    let inner = inner.strip_suffix('}').unwrap_or(inner);
    let mut tokens: Vec<String> = Vec::new();
    let mut token = String::new();
    let (mut inside_quotes, mut escaped) = (false, false);
    for c in inner.chars() {
        match c {
            ',' if !inside_quotes => {
                tokens.push(std::mem::take(&mut token));
                continue;
            }
            ',' => {}
            '"' => {
                if escaped {
                    escaped = false;
                } else {
                    inside_quotes = !inside_quotes;
                }
            }
            '\\' => escaped = !escaped,
            _ => escaped = false,
        }
        token.push(c);
    }
    if !token.trim().is_empty() {
        tokens.push(token);
    }
    tokens.iter().map(|t| parse_matcher(t)).collect()
}

/// Parses one matcher such as `severity=~"warn|crit"` (the classic parser's rules).
pub fn parse_matcher(text: &str) -> Result<Matcher, String> {
    let bad = || format!("bad matcher format: {text}");
    let trimmed = text.trim();
    let (name, rest) = split_name(trimmed).ok_or_else(bad)?;
    let rest = rest.trim_start();
    let op = [
        ("=~", MatchOp::Regexp),
        ("!~", MatchOp::NotRegexp),
        ("!=", MatchOp::NotEqual),
        ("=", MatchOp::Equal),
    ]
    .into_iter()
    .find(|(symbol, _)| rest.starts_with(symbol))
    .ok_or_else(bad)?;
    let raw = rest[op.0.len()..].trim();
    let value = unescape_value(raw)?;
    Matcher::new(&name, op.1, &value)
}

/// The label name at the start (a Prometheus label name, or a double-quoted string), and
/// what follows it.
fn split_name(text: &str) -> Option<(String, &str)> {
    if let Some(quoted) = text.strip_prefix('"') {
        let mut name = String::new();
        let mut chars = quoted.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => name.push(chars.next()?.1),
                '"' => return Some((name, &quoted[i + 1..])).filter(|(n, _)| !n.is_empty()),
                c => name.push(c),
            }
        }
        return None;
    }
    let end = text
        .char_indices()
        .find(|&(i, c)| {
            !(c == '_' || c == ':' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit()))
        })
        .map_or(text.len(), |(i, _)| i);
    (end > 0).then(|| (text[..end].to_string(), &text[end..]))
}

/// The classic parser's unescaping: an optional surrounding pair of quotes, `\n`, `\"` and
/// `\\` escapes, any other backslash literal, and no unescaped quote inside.
fn unescape_value(raw: &str) -> Result<String, String> {
    let (body, mut expect_quote) = match raw.strip_prefix('"') {
        Some(body) => (body, true),
        None => (raw, false),
    };
    let unescaped_quote = || format!("matcher value contains unescaped double quote: {raw}");
    let mut value = String::with_capacity(body.len());
    let mut escaped = false;
    for (i, c) in body.char_indices() {
        let last = i + c.len_utf8() == body.len();
        if escaped {
            escaped = false;
            match c {
                'n' => value.push('\n'),
                '"' | '\\' => value.push(c),
                c => {
                    value.push('\\');
                    value.push(c);
                }
            }
            continue;
        }
        match c {
            '\\' if !last => escaped = true,
            '\\' => value.push('\\'),
            '"' => {
                if !expect_quote || !last {
                    return Err(unescaped_quote());
                }
                expect_quote = false;
            }
            c => value.push(c),
        }
    }
    if expect_quote {
        return Err(unescaped_quote());
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: Result<&str, &str>) {
        let got = parse_matchers(input).map(|ms| display_list(&ms));
        match expected {
            Ok(want) => assert_eq!(got.as_deref(), Ok(want), "{input}"),
            Err(fragment) => {
                let error = got.expect_err(input);
                assert!(error.contains(fragment), "{input}: {error}");
            }
        }
    }

    #[test]
    fn parses_like_alertmanager() {
        check(r#"foo=bar"#, Ok(r#"{foo="bar"}"#));
        check(
            r#"{foo="bar", baz=~"qu.*"}"#,
            Ok(r#"{foo="bar",baz=~"qu.*"}"#),
        );
        check(r#"  foo != "bar"  "#, Ok(r#"{foo!="bar"}"#));
        check(r#"foo!~bar"#, Ok(r#"{foo!~"bar"}"#));
        check(r#"foo="a,b""#, Ok(r#"{foo="a,b"}"#));
        check(r#"foo="a\"b""#, Ok(r#"{foo="a\"b"}"#));
        check(r#"foo="a\nb""#, Ok(r#"{foo="a\nb"}"#));
        check(r#"foo="a\qb""#, Ok(r#"{foo="a\\qb"}"#));
        check(r#"foo="""#, Ok(r#"{foo=""}"#));
        check(r#"foo="#, Ok(r#"{foo=""}"#));
        check(r#"{}"#, Ok(r#"{}"#));
        check(r#""service name"="x""#, Ok(r#"{service name="x"}"#));
        check(r#"foo="a"b""#, Err("unescaped double quote"));
        check(r#"foo="bar"#, Err("unescaped double quote"));
        check(r#"foo=~"(""#, Err("invalid regular expression"));
        check(r#"1foo=bar"#, Err("bad matcher format"));
        check(r#"foo"#, Err("bad matcher format"));
        check(r#"a=b,,c=d"#, Err("bad matcher format"));
    }

    #[test]
    fn regexes_are_anchored_and_missing_labels_are_empty() {
        let labels = Labels::from_pairs([("severity", "critical")]);
        let m = |text| parse_matcher(text).expect(text);
        assert!(m("severity=~crit.*").matches(&labels));
        assert!(!m("severity=~crit").matches(&labels));
        assert!(!m("severity!~crit.*").matches(&labels));
        assert!(m(r#"team="""#).matches(&labels));
        assert!(m("team=~|db").matches(&labels));
        assert!(m("team!=db").matches(&labels));
        assert!(!m("severity!=critical").matches(&labels));
    }
}
