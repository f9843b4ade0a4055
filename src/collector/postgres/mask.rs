//! Masks the literals of a statement text before it is shown anywhere (status API, logs).
//!
//! pg_stat_statements replaces the constants of planned statements with `$1`, `$2`, ... but
//! keeps utility statements as written, so `ALTER ROLE app PASSWORD 'secret'` or
//! `SET app.tenant = 'tenant-42'` would otherwise be shown verbatim. This scanner follows
//! PostgreSQL's lexer closely enough to find every literal: quoted strings (with the `E`, `B`,
//! `X`, `N` and `U&` prefixes, `''` and backslash escapes), dollar-quoted strings, numbers
//! (with fractions, exponents, `0x`/`0o`/`0b` and `_` separators), and comments, which can
//! hold anything. Quoted identifiers and `$n` parameters are kept. An unterminated literal (a
//! text cut at its length limit) is masked to the end. Pure.

/// What a string or dollar-quoted literal becomes.
pub const MASKED_STRING: &str = "'?'";
/// What a number becomes.
pub const MASKED_NUMBER: &str = "?";
/// What a comment becomes.
pub const MASKED_COMMENT: &str = "/*?*/";

/// Returns `sql` with every literal and comment replaced by a mask.
pub fn mask_literals(sql: &str) -> String {
    let bytes = sql.as_bytes();
    let mut out = String::with_capacity(sql.len());
    let mut index = 0;
    // Copies `sql[from..to]` unchanged; every boundary used is an ASCII byte, so a char boundary.
    let copy_until = |out: &mut String, from: usize, to: usize| out.push_str(&sql[from..to]);
    while index < bytes.len() {
        let byte = bytes[index];
        match byte {
            b'\'' => {
                let backslashes = string_prefix_allows_backslash(bytes, index);
                index = skip_quoted(bytes, index + 1, backslashes);
                trim_prefix(&mut out);
                out.push_str(MASKED_STRING);
            }
            b'"' => {
                let end = skip_quoted_identifier(bytes, index + 1);
                copy_until(&mut out, index, end);
                index = end;
            }
            b'-' if bytes.get(index + 1) == Some(&b'-') => {
                index = bytes[index..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(bytes.len(), |p| index + p);
                out.push_str(MASKED_COMMENT);
            }
            b'/' if bytes.get(index + 1) == Some(&b'*') => {
                index = skip_block_comment(bytes, index + 2);
                out.push_str(MASKED_COMMENT);
            }
            b'$' => {
                if let Some(tag_end) = dollar_tag_end(bytes, index) {
                    let tag = &bytes[index..=tag_end];
                    index = find(bytes, tag_end + 1, tag).map_or(bytes.len(), |p| p + tag.len());
                    out.push_str(MASKED_STRING);
                } else {
                    // A parameter such as `$1`, or a `$` inside an identifier: kept.
                    let end = index
                        + 1
                        + bytes[index + 1..]
                            .iter()
                            .take_while(|b| b.is_ascii_digit())
                            .count();
                    copy_until(&mut out, index, end);
                    index = end;
                }
            }
            b'0'..=b'9' | b'.'
                if starts_number(bytes, index) && !follows_identifier(bytes, index) =>
            {
                index = skip_number(bytes, index);
                out.push_str(MASKED_NUMBER);
            }
            _ if is_identifier_byte(byte) => {
                // A whole word at once, so digits inside identifiers (`t1`) stay.
                let end = index
                    + bytes[index..]
                        .iter()
                        .take_while(|&&b| is_identifier_byte(b) || b == b'$')
                        .count();
                copy_until(&mut out, index, end);
                index = end;
            }
            _ => {
                let width = utf8_width(byte);
                let end = (index + width).min(bytes.len());
                copy_until(&mut out, index, end);
                index = end;
            }
        }
    }
    out
}

/// Whether the word just before the quote at `quote` is a prefix that turns on backslash
/// escapes (`E'...'`, `e'...'`).
fn string_prefix_allows_backslash(bytes: &[u8], quote: usize) -> bool {
    quote >= 1
        && matches!(bytes[quote - 1], b'E' | b'e')
        && (quote == 1 || !is_identifier_byte(bytes[quote - 2]))
}

/// Removes a string prefix (`E`, `B`, `X`, `N`, `U&`) just written before a masked string, so
/// the mask reads the same whatever the literal's kind.
fn trim_prefix(out: &mut String) {
    let bytes = out.as_bytes();
    let length = bytes.len();
    let standalone = |at: usize| at == 0 || !is_identifier_byte(bytes[at - 1]);
    if length >= 2 && bytes[length - 1] == b'&' && matches!(bytes[length - 2], b'U' | b'u') {
        if standalone(length - 2) {
            out.truncate(length - 2);
        }
    } else if length >= 1
        && matches!(
            bytes[length - 1],
            b'E' | b'e' | b'B' | b'b' | b'X' | b'x' | b'N' | b'n'
        )
        && standalone(length - 1)
    {
        out.truncate(length - 1);
    }
}

/// The index after the closing quote of a string starting at `from` (after its opening quote).
fn skip_quoted(bytes: &[u8], mut index: usize, backslashes: bool) -> usize {
    while index < bytes.len() {
        match bytes[index] {
            b'\\' if backslashes => index += 2,
            b'\'' if bytes.get(index + 1) == Some(&b'\'') => index += 2,
            b'\'' => return index + 1,
            _ => index += 1,
        }
    }
    bytes.len()
}

fn skip_quoted_identifier(bytes: &[u8], mut index: usize) -> usize {
    while index < bytes.len() {
        if bytes[index] == b'"' {
            if bytes.get(index + 1) == Some(&b'"') {
                index += 2;
                continue;
            }
            return index + 1;
        }
        index += 1;
    }
    bytes.len()
}

/// Block comments nest in PostgreSQL.
fn skip_block_comment(bytes: &[u8], mut index: usize) -> usize {
    let mut depth = 1;
    while index < bytes.len() {
        if bytes[index] == b'/' && bytes.get(index + 1) == Some(&b'*') {
            depth += 1;
            index += 2;
        } else if bytes[index] == b'*' && bytes.get(index + 1) == Some(&b'/') {
            depth -= 1;
            index += 2;
            if depth == 0 {
                return index;
            }
        } else {
            index += 1;
        }
    }
    bytes.len()
}

/// If a dollar-quote tag (`$$` or `$tag$`) starts at `start`, the index of its closing `$`.
fn dollar_tag_end(bytes: &[u8], start: usize) -> Option<usize> {
    if follows_identifier(bytes, start) {
        return None;
    }
    let first = *bytes.get(start + 1)?;
    if first == b'$' {
        return Some(start + 1);
    }
    if first.is_ascii_digit() || !is_identifier_byte(first) {
        return None;
    }
    let length = bytes[start + 1..]
        .iter()
        .take_while(|&&b| is_identifier_byte(b))
        .count();
    (bytes.get(start + 1 + length) == Some(&b'$')).then_some(start + 1 + length)
}

fn find(bytes: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    bytes
        .get(from..)?
        .windows(needle.len())
        .position(|window| window == needle)
        .map(|p| from + p)
}

fn starts_number(bytes: &[u8], index: usize) -> bool {
    bytes[index].is_ascii_digit()
        || (bytes[index] == b'.' && bytes.get(index + 1).is_some_and(u8::is_ascii_digit))
}

/// Whether the byte before `index` continues an identifier or parameter (`t1`, `$1`).
fn follows_identifier(bytes: &[u8], index: usize) -> bool {
    index > 0 && (is_identifier_byte(bytes[index - 1]) || bytes[index - 1] == b'$')
}

/// The index after a number: digits, `_`, one `.`, an exponent, or a `0x`/`0o`/`0b` integer.
fn skip_number(bytes: &[u8], start: usize) -> usize {
    let mut index = start;
    if bytes[index] == b'0'
        && matches!(
            bytes.get(index + 1),
            Some(b'x' | b'X' | b'o' | b'O' | b'b' | b'B')
        )
    {
        index += 2;
        while bytes
            .get(index)
            .is_some_and(|b| b.is_ascii_hexdigit() || *b == b'_')
        {
            index += 1;
        }
        return index;
    }
    let digits = |index: &mut usize| {
        while bytes
            .get(*index)
            .is_some_and(|b| b.is_ascii_digit() || *b == b'_')
        {
            *index += 1;
        }
    };
    digits(&mut index);
    if bytes.get(index) == Some(&b'.') && bytes.get(index + 1) != Some(&b'.') {
        index += 1;
        digits(&mut index);
    }
    if matches!(bytes.get(index), Some(b'e' | b'E')) {
        let mut exponent = index + 1;
        if matches!(bytes.get(exponent), Some(b'+' | b'-')) {
            exponent += 1;
        }
        if bytes.get(exponent).is_some_and(u8::is_ascii_digit) {
            index = exponent;
            digits(&mut index);
        }
    }
    index
}

/// Letters, digits, `_` and any non-ASCII byte, as PostgreSQL's identifiers allow.
fn is_identifier_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_' || byte >= 0x80
}

fn utf8_width(first: u8) -> usize {
    match first {
        0xF0..=0xFF => 4,
        0xE0..=0xEF => 3,
        0xC0..=0xDF => 2,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::mask_literals;

    fn check(input: &str, expected: &str) {
        assert_eq!(mask_literals(input), expected, "input: {input}");
    }

    #[test]
    fn utility_statements_lose_their_literals() {
        check(
            "ALTER ROLE appuser PASSWORD 'apppass'",
            "ALTER ROLE appuser PASSWORD '?'",
        );
        check(
            "SET myapp.tenant='tenant-secret-42'",
            "SET myapp.tenant='?'",
        );
        check(
            "CREATE USER u WITH PASSWORD 'it''s secret' VALID UNTIL '2030-01-01'",
            "CREATE USER u WITH PASSWORD '?' VALID UNTIL '?'",
        );
        check("SET statement_timeout = 5000", "SET statement_timeout = ?");
    }

    #[test]
    fn every_kind_of_string_is_masked() {
        check(r"SELECT E'a\'b' || 'c'", "SELECT '?' || '?'");
        check(r"SELECT e'x\\' , 1", "SELECT '?' , ?");
        check(
            "SELECT B'1010', X'1F', N'nat', U&'d\\0061t'",
            "SELECT '?', '?', '?', '?'",
        );
        check("DO $$BEGIN RAISE NOTICE 'x'; END$$", "DO '?'");
        check("SELECT $tag$ a $$ b $tag$, $1", "SELECT '?', $1");
        // Without E, a backslash is an ordinary character: the string ends at the quote.
        check(r"SELECT 'a\' , 'b'", "SELECT '?' , '?'");
    }

    #[test]
    fn numbers_are_masked_but_not_identifiers_or_parameters() {
        check(
            "SELECT 42, 3.14, .5, 1e10, 2.5E-3, 0x1F, 1_000 FROM t1 WHERE c2 = $2",
            "SELECT ?, ?, ?, ?, ?, ?, ? FROM t1 WHERE c2 = $2",
        );
        check("SELECT a.b, x$1 FROM s.t", "SELECT a.b, x$1 FROM s.t");
        check("SELECT arr[1:2]", "SELECT arr[?:?]");
    }

    #[test]
    fn quoted_identifiers_stay_and_comments_go() {
        check(
            r#"SELECT "it's 1" FROM "t""1""#,
            r#"SELECT "it's 1" FROM "t""1""#,
        );
        check(
            "SELECT 1 -- password=hunter2\nFROM t /* key 'k' /* nested */ 7 */",
            "SELECT ? /*?*/\nFROM t /*?*/",
        );
    }

    #[test]
    fn unterminated_literals_are_masked_to_the_end() {
        check(
            "ALTER ROLE a PASSWORD 'cut-at-the-lim",
            "ALTER ROLE a PASSWORD '?'",
        );
        check("DO $body$ secret", "DO '?'");
        check("SELECT 1 /* unfinished secret", "SELECT ? /*?*/");
    }

    #[test]
    fn non_ascii_text_is_kept() {
        check(
            "SELECT 'é' AS «名前», naïve1",
            "SELECT '?' AS «名前», naïve1",
        );
    }
}
