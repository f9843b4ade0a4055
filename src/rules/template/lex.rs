//! The lexer: splits a template into text and actions, then actions into tokens, with Go's
//! rules for trim markers, comments, strings, characters and numbers.

#[derive(Clone, Debug)]
pub(super) enum Item {
    Text(String),
    Action(Vec<Token>, usize),
}

#[derive(Clone, Debug, PartialEq)]
pub(super) struct Token {
    pub(super) start: usize,
    pub(super) end: usize,
    pub(super) kind: TokenKind,
}

#[derive(Clone, Debug, PartialEq)]
pub(super) enum TokenKind {
    Identifier(String),
    Variable(String),
    Field(String),
    Dot,
    String { value: String, raw: String },
    Char(i64, String),
    Number(String),
    LeftParen,
    RightParen,
    Pipe,
    Declare,
    Assign,
    Comma,
}

fn is_go_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_word_char(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

pub(super) fn lex(src: &str) -> Result<Vec<Item>, String> {
    let bytes = src.as_bytes();
    let mut items = Vec::new();
    let mut pos = 0;
    let mut trim_next = false;
    loop {
        let text_end = src[pos..].find("{{").map_or(src.len(), |i| pos + i);
        let mut text = &src[pos..text_end];
        if trim_next {
            text = text.trim_start_matches([' ', '\t', '\r', '\n']);
        }
        let mut action_start = text_end + 2;
        let trim_left = text_end < src.len()
            && bytes.get(action_start) == Some(&b'-')
            && bytes.get(action_start + 1).is_some_and(|b| is_go_space(*b));
        if trim_left {
            text = text.trim_end_matches([' ', '\t', '\r', '\n']);
            action_start += 2;
        }
        if !text.is_empty() {
            items.push(Item::Text(text.to_owned()));
        }
        if text_end >= src.len() {
            return Ok(items);
        }
        let line = src[..text_end].matches('\n').count() + 1;
        // A comment must close right after `*/`, optionally with a trim marker.
        let after_space = action_start
            + src[action_start..]
                .bytes()
                .take_while(|b| is_go_space(*b))
                .count();
        if src[after_space..].starts_with("/*") {
            let close = src[after_space + 2..]
                .find("*/")
                .ok_or_else(|| format!("{line}: unclosed comment"))?
                + after_space
                + 4;
            let rest = &src[close..];
            if rest.starts_with("}}") {
                pos = close + 2;
                trim_next = false;
            } else if rest.len() > 3
                && is_go_space(rest.as_bytes()[0])
                && rest[1..].starts_with("-}}")
            {
                pos = close + 4;
                trim_next = true;
            } else {
                return Err(format!("{line}: comment ends before closing delimiter"));
            }
            continue;
        }
        let (tokens, end, trim_right) = lex_action(src, action_start, line)?;
        items.push(Item::Action(tokens, text_end));
        pos = end;
        trim_next = trim_right;
    }
}

/// Lexes one action from `start`; returns its tokens, the offset after `}}` and whether the
/// action ended with ` -}}`.
fn lex_action(src: &str, start: usize, line: usize) -> Result<(Vec<Token>, usize, bool), String> {
    let bytes = src.as_bytes();
    let mut tokens = Vec::new();
    let mut pos = start;
    let mut depth = 0usize;
    loop {
        while pos < bytes.len() && is_go_space(bytes[pos]) {
            if src[pos + 1..].starts_with("-}}") && pos > start {
                if depth > 0 {
                    return Err(format!("{line}: unclosed left paren"));
                }
                return Ok((tokens, pos + 4, true));
            }
            pos += 1;
        }
        if src[pos..].starts_with("}}") {
            if depth > 0 {
                return Err(format!("{line}: unclosed left paren"));
            }
            return Ok((tokens, pos + 2, false));
        }
        let Some(c) = src[pos..].chars().next() else {
            return Err(format!("{line}: unclosed action"));
        };
        let token_start = pos;
        let next = src[pos + c.len_utf8()..].chars().next();
        let kind = match c {
            '(' => {
                depth += 1;
                pos += 1;
                TokenKind::LeftParen
            }
            ')' => {
                depth = depth
                    .checked_sub(1)
                    .ok_or_else(|| format!("{line}: unexpected right paren"))?;
                pos += 1;
                TokenKind::RightParen
            }
            '|' => {
                pos += 1;
                TokenKind::Pipe
            }
            ',' => {
                pos += 1;
                TokenKind::Comma
            }
            '=' => {
                pos += 1;
                TokenKind::Assign
            }
            ':' if next == Some('=') => {
                pos += 2;
                TokenKind::Declare
            }
            '"' => {
                let (value, end) = lex_quoted(src, pos, line)?;
                pos = end;
                TokenKind::String {
                    value,
                    raw: src[token_start..end].to_owned(),
                }
            }
            '`' => {
                let close = src[pos + 1..]
                    .find('`')
                    .ok_or_else(|| format!("{line}: unterminated raw quoted string"))?;
                pos += close + 2;
                TokenKind::String {
                    value: src[token_start + 1..pos - 1].to_owned(),
                    raw: src[token_start..pos].to_owned(),
                }
            }
            '\'' => {
                let close = src[pos + 1..]
                    .find('\'')
                    .ok_or_else(|| format!("{line}: unterminated character constant"))?;
                let raw = &src[pos..pos + close + 2];
                let quoted = format!("\"{}\"", &raw[1..raw.len() - 1]);
                let (value, _) = lex_quoted(&quoted, 0, line)?;
                let mut chars = value.chars();
                let (Some(ch), None) = (chars.next(), chars.next()) else {
                    return Err(format!("{line}: malformed character constant: {raw}"));
                };
                pos += close + 2;
                TokenKind::Char(i64::from(u32::from(ch)), raw.to_owned())
            }
            '$' => {
                pos += 1;
                pos += word_len(&src[pos..]);
                TokenKind::Variable(src[token_start..pos].to_owned())
            }
            '.' if next.is_some_and(|n| n.is_ascii_digit()) => {
                pos = lex_number(src, pos, line)?;
                TokenKind::Number(src[token_start..pos].to_owned())
            }
            '.' => {
                pos += 1;
                let len = word_len(&src[pos..]);
                pos += len;
                if len == 0 {
                    TokenKind::Dot
                } else {
                    TokenKind::Field(src[token_start + 1..pos].to_owned())
                }
            }
            '+' | '-' | '0'..='9' => {
                pos = lex_number(src, pos, line)?;
                TokenKind::Number(src[token_start..pos].to_owned())
            }
            c if is_word_char(c) => {
                pos += word_len(&src[pos..]);
                TokenKind::Identifier(src[token_start..pos].to_owned())
            }
            other => {
                return Err(format!("{line}: unexpected {other:?} in command"));
            }
        };
        tokens.push(Token {
            start: token_start,
            end: pos,
            kind,
        });
    }
}

fn word_len(text: &str) -> usize {
    text.char_indices()
        .find(|(_, c)| !is_word_char(*c))
        .map_or(text.len(), |(i, _)| i)
}

/// Scans a number the way Go's lexer does, so `1e3`, `0x10` and `-1.5` are single tokens.
fn lex_number(src: &str, start: usize, line: usize) -> Result<usize, String> {
    let bytes = src.as_bytes();
    let mut pos = start;
    let accept = |pos: &mut usize, set: &[u8]| {
        if bytes.get(*pos).is_some_and(|b| set.contains(b)) {
            *pos += 1;
            true
        } else {
            false
        }
    };
    let run = |pos: &mut usize, set: &[u8]| {
        while bytes.get(*pos).is_some_and(|b| set.contains(b)) {
            *pos += 1;
        }
    };
    accept(&mut pos, b"+-");
    let mut digits: &[u8] = b"0123456789_";
    if accept(&mut pos, b"0") {
        if accept(&mut pos, b"xX") {
            digits = b"0123456789abcdefABCDEF_";
        } else if accept(&mut pos, b"oO") {
            digits = b"01234567_";
        } else if accept(&mut pos, b"bB") {
            digits = b"01_";
        }
    }
    run(&mut pos, digits);
    if accept(&mut pos, b".") {
        run(&mut pos, digits);
    }
    if digits.len() == 11 && accept(&mut pos, b"eE") {
        accept(&mut pos, b"+-");
        run(&mut pos, b"0123456789_");
    }
    if src[pos..].chars().next().is_some_and(is_word_char) {
        let end = pos + word_len(&src[pos..]);
        return Err(format!("{line}: bad number syntax: {:?}", &src[start..end]));
    }
    Ok(pos)
}

/// Decodes a Go interpreted string literal starting at the opening quote.
fn lex_quoted(src: &str, start: usize, line: usize) -> Result<(String, usize), String> {
    let mut value = String::new();
    let mut chars = src[start + 1..].char_indices();
    let unterminated = || format!("{line}: unterminated quoted string");
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((value, start + 1 + i + 1)),
            '\n' => return Err(unterminated()),
            '\\' => {
                let (_, escape) = chars.next().ok_or_else(unterminated)?;
                let simple = match escape {
                    'a' => Some('\x07'),
                    'b' => Some('\x08'),
                    'f' => Some('\x0c'),
                    'n' => Some('\n'),
                    'r' => Some('\r'),
                    't' => Some('\t'),
                    'v' => Some('\x0b'),
                    '\\' => Some('\\'),
                    '"' => Some('"'),
                    _ => None,
                };
                if let Some(ch) = simple {
                    value.push(ch);
                    continue;
                }
                let (count, radix) = match escape {
                    'x' => (2, 16),
                    'u' => (4, 16),
                    'U' => (8, 16),
                    '0'..='7' => (2, 8),
                    _ => return Err(format!("{line}: unknown escape sequence \\{escape}")),
                };
                let mut digits = String::new();
                if radix == 8 {
                    digits.push(escape);
                }
                for _ in 0..count {
                    digits.push(chars.next().ok_or_else(unterminated)?.1);
                }
                let code = u32::from_str_radix(&digits, radix)
                    .map_err(|_| format!("{line}: invalid escape \\{escape}{digits}"))?;
                let ch = char::from_u32(code)
                    .ok_or_else(|| format!("{line}: invalid escape \\{escape}{digits}"))?;
                value.push(ch);
            }
            c => value.push(c),
        }
    }
    Err(unterminated())
}
