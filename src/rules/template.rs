//! Alert label and annotation templates: Go `text/template` as Prometheus runs it, with the
//! Prometheus function set. `check` parses at load time so a typo fails `rules check`, not the
//! first alert at 3 a.m.; `render` expands a template byte-identically to Prometheus, because
//! `promtool test rules` and `prismwatch rules test` must agree on the same `exp_annotations`.
//!
//! The evaluation model copies Go's: values are typed (`string`, `float64`, `int`, `bool`,
//! `map[string]string` and the data struct), printing uses Go's `fmt` rules (`1e+06`, `+Inf`),
//! comparisons are `lt`/`eq` with `gt = !le` (so `gt NaN 1.0` is true, as in Go), and missing
//! label keys render as the empty string (Prometheus sets `missingkey=zero`).

use std::fmt::Write as _;

/// What a template sees: Prometheus' `AlertTemplateData` plus the external URL.
#[derive(Clone, Copy, Debug)]
pub struct TemplateData<'a> {
    /// The labels of the sample that fired, as Prometheus passes them: the expression's output
    /// labels (with `__name__` when the expression kept it), without the rule's own labels.
    pub labels: &'a [(String, String)],
    /// The configured external labels (`$externalLabels`).
    pub external_labels: &'a [(String, String)],
    /// The sample value (`$value`).
    pub value: f64,
    /// The configured external URL (`$externalURL`); promtool 2.42 passes the empty string.
    pub external_url: &'a str,
}

/// Functions prismwatch renders: the Go builtins and Prometheus functions that need no query
/// engine.
pub const SUPPORTED_FUNCTIONS: [&str; 30] = [
    "and",
    "or",
    "not",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "index",
    "len",
    "print",
    "printf",
    "println",
    "humanize",
    "humanize1024",
    "humanizePercentage",
    "humanizeDuration",
    "humanizeTimestamp",
    "toUpper",
    "toLower",
    "title",
    "reReplaceAll",
    "match",
    "stripPort",
    "safeHtml",
    "externalURL",
    "html",
    "urlquery",
    "js",
];

/// Functions Go or Prometheus define that prismwatch refuses at load time, with the reason.
const REFUSED_FUNCTIONS: [(&str, &str); 12] = [
    ("query", QUERY_REASON),
    ("first", QUERY_REASON),
    ("label", QUERY_REASON),
    ("value", QUERY_REASON),
    ("strvalue", QUERY_REASON),
    ("sortByLabel", QUERY_REASON),
    (
        "args",
        "it only feeds `template` calls, which alert templates cannot define",
    ),
    (
        "graphLink",
        "links to the Prometheus UI have no prismwatch equivalent",
    ),
    (
        "tableLink",
        "links to the Prometheus UI have no prismwatch equivalent",
    ),
    ("pathPrefix", "prismwatch has no web path prefix"),
    (
        "parseDuration",
        "it is not used by alert rules; open an issue if you need it",
    ),
    ("call", "alert template data has no function values"),
];

const QUERY_REASON: &str = "it runs a PromQL query while rendering, and templates have no query \
                            engine in prismwatch; compute the value in the rule expression instead";

/// Prometheus prepends these definitions to every alert template; error columns on the first
/// line count them, so we add their length to match Go's messages.
const PROMETHEUS_PREFIX_LEN: usize = "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}\
     {{$externalURL := .ExternalURL}}{{$value := .Value}}"
    .len();

/// The Go type name of Prometheus' template data struct, as it appears in Go's errors.
const DATA_TYPE: &str = "struct { Labels map[string]string; ExternalLabels map[string]string; \
                         ExternalURL string; Value float64 }";

/// Checks that a template parses and uses only functions prismwatch renders.
pub fn check(template: &str) -> Result<(), String> {
    parse(template).map(|_| ())
}

/// Renders a template against one alert's data. The error names the failing action as Go does
/// (`line:column: executing at <gt $value 1>: error calling gt: ...`).
pub fn render(template: &str, data: &TemplateData<'_>) -> Result<String, String> {
    let nodes = parse(template)?;
    execute(&nodes, data).map_err(|error| {
        let (line, column) = error.location(template);
        format!(
            "{line}:{column}: executing at <{}>: {}",
            error.context, error.message
        )
    })
}

/// Renders a template for an alert exactly as Prometheus fills the label or annotation: a
/// failure becomes the text `<error expanding template: ...>` with Go's wording, which is what
/// `promtool test rules` compares against `exp_annotations`.
pub fn expand_for_alert(rule_name: &str, template: &str, data: &TemplateData<'_>) -> String {
    let name = format!("__alert_{rule_name}");
    let nodes = match parse(template) {
        Ok(nodes) => nodes,
        Err(message) => {
            return format!(
                "<error expanding template: error parsing template {name}: template: {name}: \
                 {message}>"
            );
        }
    };
    match execute(&nodes, data) {
        Ok(text) => text,
        Err(error) => {
            let (line, column) = error.location(template);
            format!(
                "<error expanding template: error executing template {name}: template: \
                 {name}:{line}:{column}: executing \"{name}\" at <{}>: {}>",
                error.context, error.message
            )
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Syntax tree.

#[derive(Clone, Debug)]
enum Node {
    Text(String),
    Action(Pipeline),
    /// `if` and `with`: the branches' pipelines and lists, then the `else` list.
    If(Vec<(Pipeline, Vec<Node>)>, Vec<Node>),
    With(Pipeline, Vec<Node>, Vec<Node>),
    Range(Pipeline, Vec<Node>, Vec<Node>),
}

#[derive(Clone, Debug)]
struct Pipeline {
    declarations: Vec<String>,
    is_assignment: bool,
    commands: Vec<Command>,
}

#[derive(Clone, Debug)]
struct Command {
    position: usize,
    arguments: Vec<Term>,
}

#[derive(Clone, Debug)]
struct Term {
    /// Where Go places the node: the first chained field if there is one.
    position: usize,
    kind: TermKind,
    fields: Vec<String>,
}

#[derive(Clone, Debug)]
enum TermKind {
    Dot,
    Variable(String),
    Function(String),
    String { value: String, raw: String },
    Number { value: Constant, raw: String },
    Bool(bool),
    Nil,
    Pipeline(Box<Pipeline>),
}

#[derive(Clone, Copy, Debug)]
enum Constant {
    Int(i64),
    Float(f64),
}

impl Pipeline {
    fn source(&self) -> String {
        let mut text = String::new();
        if !self.declarations.is_empty() {
            text.push_str(&self.declarations.join(", "));
            text.push_str(if self.is_assignment { " = " } else { " := " });
        }
        let commands: Vec<String> = self.commands.iter().map(Command::source).collect();
        text.push_str(&commands.join(" | "));
        text
    }
}

impl Command {
    /// Go's `CommandNode.String()`, used as the error context.
    fn source(&self) -> String {
        let terms: Vec<String> = self.arguments.iter().map(Term::source).collect();
        terms.join(" ")
    }
}

impl Term {
    fn source(&self) -> String {
        let mut text = match &self.kind {
            TermKind::Dot if !self.fields.is_empty() => String::new(),
            TermKind::Dot => ".".to_owned(),
            TermKind::Variable(name) | TermKind::Function(name) => name.clone(),
            TermKind::String { raw, .. } | TermKind::Number { raw, .. } => raw.clone(),
            TermKind::Bool(value) => value.to_string(),
            TermKind::Nil => "nil".to_owned(),
            TermKind::Pipeline(pipeline) => format!("({})", pipeline.source()),
        };
        for field in &self.fields {
            text.push('.');
            text.push_str(field);
        }
        text
    }
}

// ---------------------------------------------------------------------------------------------
// Lexer: splits the template into text and actions, then actions into tokens.

#[derive(Clone, Debug)]
enum Item {
    Text(String),
    Action(Vec<Token>, usize),
}

#[derive(Clone, Debug, PartialEq)]
struct Token {
    start: usize,
    end: usize,
    kind: TokenKind,
}

#[derive(Clone, Debug, PartialEq)]
enum TokenKind {
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

fn lex(src: &str) -> Result<Vec<Item>, String> {
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

// ---------------------------------------------------------------------------------------------
// Parser.

/// Variables Prometheus defines before the template text.
const PREDEFINED_VARIABLES: [&str; 5] =
    ["$", "$labels", "$externalLabels", "$externalURL", "$value"];

fn parse(template: &str) -> Result<Vec<Node>, String> {
    let items = lex(template)?;
    let mut parser = Parser {
        items,
        next: 0,
        variables: PREDEFINED_VARIABLES
            .iter()
            .map(|v| (*v).to_owned())
            .collect(),
        src: template,
    };
    let (nodes, end) = parser.list()?;
    match end {
        ListEnd::Eof => Ok(nodes),
        ListEnd::End(line) => Err(format!("{line}: unexpected {{{{end}}}}")),
        ListEnd::Else(_, line) => Err(format!("{line}: unexpected {{{{else}}}}")),
    }
}

struct Parser<'s> {
    items: Vec<Item>,
    next: usize,
    variables: Vec<String>,
    src: &'s str,
}

enum ListEnd {
    Eof,
    End(usize),
    /// The tokens after `else`, and the line.
    Else(Vec<Token>, usize),
}

impl Parser<'_> {
    fn line_of(&self, offset: usize) -> usize {
        self.src[..offset.min(self.src.len())].matches('\n').count() + 1
    }

    fn list(&mut self) -> Result<(Vec<Node>, ListEnd), String> {
        let mut nodes = Vec::new();
        while let Some(item) = self.items.get(self.next).cloned() {
            self.next += 1;
            let (tokens, offset) = match item {
                Item::Text(text) => {
                    nodes.push(Node::Text(text));
                    continue;
                }
                Item::Action(tokens, offset) => (tokens, offset),
            };
            let line = self.line_of(offset);
            let keyword = match tokens.first() {
                Some(Token {
                    kind: TokenKind::Identifier(word),
                    ..
                }) => word.as_str(),
                None => return Err(format!("{line}: missing value for command")),
                _ => "",
            };
            let rest = tokens[1.min(tokens.len())..].to_vec();
            match keyword {
                "end" if rest.is_empty() => return Ok((nodes, ListEnd::End(line))),
                "end" => return Err(format!("{line}: unexpected tokens after end")),
                "else" => return Ok((nodes, ListEnd::Else(rest, line))),
                "if" => nodes.push(self.if_node(rest, line)?),
                "with" | "range" => nodes.push(self.with_or_range(keyword, rest, line)?),
                "define" | "template" | "block" | "break" | "continue" => {
                    return Err(format!(
                        "{line}: `{keyword}` is not supported in alert templates by prismwatch"
                    ));
                }
                _ => {
                    let pipeline = self.pipeline(&tokens, "command", line, false)?;
                    nodes.push(Node::Action(pipeline));
                }
            }
        }
        Ok((nodes, ListEnd::Eof))
    }

    /// Parses `if` after its keyword; an `else if` chain shares the single `end`.
    fn if_node(&mut self, tokens: Vec<Token>, line: usize) -> Result<Node, String> {
        let mark = self.variables.len();
        let pipeline = self.pipeline(&tokens, "if", line, false)?;
        let (list, end) = self.list()?;
        let else_list = match end {
            ListEnd::Eof => return Err(format!("{line}: unexpected EOF")),
            ListEnd::End(_) => Vec::new(),
            ListEnd::Else(rest, else_line) => self.else_list(rest, else_line)?,
        };
        self.variables.truncate(mark);
        Ok(Node::If(vec![(pipeline, list)], else_list))
    }

    fn else_list(&mut self, rest: Vec<Token>, line: usize) -> Result<Vec<Node>, String> {
        if let Some(Token {
            kind: TokenKind::Identifier(word),
            ..
        }) = rest.first()
            && word == "if"
        {
            return Ok(vec![self.if_node(rest[1..].to_vec(), line)?]);
        }
        if !rest.is_empty() {
            return Err(format!("{line}: unexpected tokens after else"));
        }
        let (list, end) = self.list()?;
        match end {
            ListEnd::End(_) => Ok(list),
            ListEnd::Eof => Err(format!("{line}: unexpected EOF")),
            ListEnd::Else(_, else_line) => Err(format!("{else_line}: expected end; found else")),
        }
    }

    fn with_or_range(
        &mut self,
        keyword: &str,
        tokens: Vec<Token>,
        line: usize,
    ) -> Result<Node, String> {
        let mark = self.variables.len();
        let pipeline = self.pipeline(&tokens, keyword, line, keyword == "range")?;
        let (list, end) = self.list()?;
        let else_list = match end {
            ListEnd::Eof => return Err(format!("{line}: unexpected EOF")),
            ListEnd::End(_) => Vec::new(),
            ListEnd::Else(rest, else_line) => {
                if !rest.is_empty() {
                    return Err(format!("{else_line}: unexpected tokens after else"));
                }
                let (list, end) = self.list()?;
                match end {
                    ListEnd::End(_) => list,
                    ListEnd::Eof => return Err(format!("{line}: unexpected EOF")),
                    ListEnd::Else(_, l) => return Err(format!("{l}: expected end; found else")),
                }
            }
        };
        self.variables.truncate(mark);
        Ok(if keyword == "range" {
            Node::Range(pipeline, list, else_list)
        } else {
            Node::With(pipeline, list, else_list)
        })
    }

    fn pipeline(
        &mut self,
        tokens: &[Token],
        context: &str,
        line: usize,
        allow_two: bool,
    ) -> Result<Pipeline, String> {
        let mut rest = tokens;
        let mut declarations = Vec::new();
        let mut is_assignment = false;
        // `$x :=`, `$x =` or (range only) `$k, $v :=`.
        let declared = |t: &[Token]| -> Option<(Vec<String>, bool, usize)> {
            let var = |i: usize| match t.get(i).map(|t| &t.kind) {
                Some(TokenKind::Variable(v)) => Some(v.clone()),
                _ => None,
            };
            let first = var(0)?;
            match t.get(1).map(|t| &t.kind) {
                Some(TokenKind::Declare) => Some((vec![first], false, 2)),
                Some(TokenKind::Assign) => Some((vec![first], true, 2)),
                Some(TokenKind::Comma) => {
                    let second = var(2)?;
                    match t.get(3).map(|t| &t.kind) {
                        Some(TokenKind::Declare) => Some((vec![first, second], false, 4)),
                        Some(TokenKind::Assign) => Some((vec![first, second], true, 4)),
                        _ => None,
                    }
                }
                _ => None,
            }
        };
        if let Some((names, assign, used)) = declared(rest) {
            if names.len() == 2 && !allow_two {
                return Err(format!("{line}: too many declarations in {context}"));
            }
            for name in &names {
                if assign {
                    if !self.variables.contains(name) {
                        return Err(format!("{line}: undefined variable {name:?}"));
                    }
                } else {
                    self.variables.push(name.clone());
                }
            }
            declarations = names;
            is_assignment = assign;
            rest = &rest[used..];
        }
        let (commands, used) = self.commands(rest, line)?;
        if used != rest.len() {
            return Err(format!("{line}: unexpected right paren"));
        }
        if commands.is_empty() {
            return Err(format!("{line}: missing value for {context}"));
        }
        Ok(Pipeline {
            declarations,
            is_assignment,
            commands,
        })
    }

    /// Parses `cmd | cmd ...` until a `)` or the end; returns the tokens consumed.
    fn commands(&mut self, tokens: &[Token], line: usize) -> Result<(Vec<Command>, usize), String> {
        let mut commands = Vec::new();
        let mut i = 0;
        loop {
            let position = tokens.get(i).map_or(0, |t| t.start);
            let mut arguments = Vec::new();
            while let Some(token) = tokens.get(i) {
                if matches!(token.kind, TokenKind::Pipe | TokenKind::RightParen) {
                    break;
                }
                let (term, used) = self.operand(&tokens[i..], line)?;
                arguments.push(term);
                i += used;
            }
            if arguments.is_empty() {
                if commands.is_empty() && tokens.get(i).is_none_or(|t| t.kind != TokenKind::Pipe) {
                    return Ok((commands, i));
                }
                return Err(format!("{line}: missing command in pipeline"));
            }
            if !commands.is_empty()
                && matches!(
                    arguments[0].kind,
                    TermKind::Bool(_)
                        | TermKind::Dot
                        | TermKind::Nil
                        | TermKind::Number { .. }
                        | TermKind::String { .. }
                )
                && arguments[0].fields.is_empty()
            {
                return Err(format!(
                    "{line}: non executable command in pipeline stage {}",
                    commands.len() + 1
                ));
            }
            commands.push(Command {
                position,
                arguments,
            });
            match tokens.get(i).map(|t| &t.kind) {
                Some(TokenKind::Pipe) => i += 1,
                _ => return Ok((commands, i)),
            }
        }
    }

    /// A term and any fields chained directly onto it (`$labels.job`, `(x).y`).
    fn operand(&mut self, tokens: &[Token], line: usize) -> Result<(Term, usize), String> {
        let first = &tokens[0];
        let mut used = 1;
        let mut fields = Vec::new();
        let kind = match &first.kind {
            TokenKind::Identifier(word) => match word.as_str() {
                "true" => TermKind::Bool(true),
                "false" => TermKind::Bool(false),
                "nil" => TermKind::Nil,
                "if" | "else" | "end" | "range" | "with" | "define" | "template" | "block"
                | "break" | "continue" => {
                    return Err(format!("{line}: unexpected <{word}> in operand"));
                }
                name => {
                    check_function(name).map_err(|m| format!("{line}: {m}"))?;
                    TermKind::Function(name.to_owned())
                }
            },
            TokenKind::Variable(name) => {
                if !self.variables.contains(name) {
                    return Err(format!("{line}: undefined variable {name:?}"));
                }
                TermKind::Variable(name.clone())
            }
            TokenKind::Field(name) => {
                fields.push(name.clone());
                TermKind::Dot
            }
            TokenKind::Dot => TermKind::Dot,
            TokenKind::String { value, raw } => TermKind::String {
                value: value.clone(),
                raw: raw.clone(),
            },
            TokenKind::Char(value, raw) => TermKind::Number {
                value: Constant::Int(*value),
                raw: raw.clone(),
            },
            TokenKind::Number(raw) => TermKind::Number {
                value: parse_number(raw).map_err(|m| format!("{line}: {m}"))?,
                raw: raw.clone(),
            },
            TokenKind::LeftParen => {
                let (commands, inner) = self.commands(&tokens[1..], line)?;
                if commands.is_empty() {
                    return Err(format!("{line}: missing value for parenthesized pipeline"));
                }
                if tokens.get(1 + inner).map(|t| &t.kind) != Some(&TokenKind::RightParen) {
                    return Err(format!("{line}: unclosed left paren"));
                }
                used = inner + 2;
                TermKind::Pipeline(Box::new(Pipeline {
                    declarations: Vec::new(),
                    is_assignment: false,
                    commands,
                }))
            }
            other => return Err(format!("{line}: unexpected {other:?} in operand")),
        };
        let mut end = tokens[used - 1].end;
        let mut position = first.start;
        while let Some(Token {
            kind: TokenKind::Field(name),
            start,
            end: field_end,
        }) = tokens.get(used)
        {
            if *start != end {
                break;
            }
            if matches!(
                kind,
                TermKind::Function(_) | TermKind::Nil | TermKind::Bool(_)
            ) || matches!(kind, TermKind::Number { .. } | TermKind::String { .. })
            {
                return Err(format!("{line}: unexpected . after term {:?}", first.kind));
            }
            if fields.is_empty() || (matches!(kind, TermKind::Dot) && fields.len() == 1) {
                position = *start;
            }
            fields.push(name.clone());
            end = *field_end;
            used += 1;
        }
        Ok((
            Term {
                position,
                kind,
                fields,
            },
            used,
        ))
    }
}

/// Accepts the functions prismwatch renders and explains the rest.
fn check_function(name: &str) -> Result<(), String> {
    if SUPPORTED_FUNCTIONS.contains(&name) {
        return Ok(());
    }
    if let Some((_, reason)) = REFUSED_FUNCTIONS.iter().find(|(f, _)| *f == name) {
        return Err(format!(
            "template function `{name}` is not supported by prismwatch: {reason}"
        ));
    }
    Err(format!(
        "function {name:?} not defined (template functions: {})",
        SUPPORTED_FUNCTIONS.join(", ")
    ))
}

/// Go's rules for an untyped constant in an `interface{}` position: a float if written with a
/// point or exponent, an int otherwise.
fn parse_number(raw: &str) -> Result<Constant, String> {
    let bad = || format!("bad number syntax: {raw:?}");
    let text = raw.replace('_', "");
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text.as_str()),
    };
    let lower = digits.to_ascii_lowercase();
    let (radix, body) = if let Some(hex) = lower.strip_prefix("0x") {
        (16, hex.to_owned())
    } else if let Some(octal) = lower.strip_prefix("0o") {
        (8, octal.to_owned())
    } else if let Some(binary) = lower.strip_prefix("0b") {
        (2, binary.to_owned())
    } else if lower.contains(['.', 'e']) {
        let value: f64 = text.parse().map_err(|_| bad())?;
        return Ok(Constant::Float(value));
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, lower[1..].to_owned())
    } else {
        (10, lower)
    };
    if radix == 16 && body.contains('.') {
        return Err(format!("hexadecimal floats are not supported: {raw:?}"));
    }
    let magnitude = i128::from_str_radix(&body, radix).map_err(|_| bad())?;
    let value = if negative { -magnitude } else { magnitude };
    i64::try_from(value)
        .map(Constant::Int)
        .map_err(|_| format!("{raw} overflows int"))
}

// ---------------------------------------------------------------------------------------------
// Values and execution.

#[derive(Clone)]
enum Value<'d> {
    Str(String),
    Float(f64),
    Int(i64),
    Bool(bool),
    Map(&'d [(String, String)]),
    /// The data struct itself (`.` at the top level, `$`).
    Root(&'d Data),
    Nil,
}

impl Value<'_> {
    fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
            Value::Float(_) => "float64",
            Value::Int(_) => "int",
            Value::Bool(_) => "bool",
            Value::Map(_) => "map[string]string",
            Value::Root(_) => DATA_TYPE,
            Value::Nil => "<nil>",
        }
    }

    /// Go's `template.IsTrue`.
    fn is_true(&self) -> bool {
        match self {
            Value::Str(s) => !s.is_empty(),
            Value::Float(f) => *f != 0.0,
            Value::Int(i) => *i != 0,
            Value::Bool(b) => *b,
            Value::Map(m) => !m.is_empty(),
            Value::Root(_) => true,
            Value::Nil => false,
        }
    }
}

struct ExecError {
    position: usize,
    context: String,
    message: String,
}

impl ExecError {
    /// Go's line and byte column, counting Prometheus' definitions on the first line.
    fn location(&self, template: &str) -> (usize, usize) {
        let before = &template[..self.position.min(template.len())];
        let line = before.matches('\n').count() + 1;
        let column = match before.rfind('\n') {
            Some(newline) => self.position - newline - 1,
            None => self.position + PROMETHEUS_PREFIX_LEN,
        };
        (line, column)
    }
}

struct Data {
    labels: Vec<(String, String)>,
    external_labels: Vec<(String, String)>,
    value: f64,
    external_url: String,
}

/// Sorts by name as Go prints maps, keeping the last of duplicate names as a map would.
fn sorted_labels(labels: &[(String, String)]) -> Vec<(String, String)> {
    let mut sorted: Vec<(String, String)> = Vec::with_capacity(labels.len());
    for (name, value) in labels {
        match sorted.binary_search_by(|(n, _)| n.as_str().cmp(name)) {
            Ok(i) => sorted[i].1.clone_from(value),
            Err(i) => sorted.insert(i, (name.clone(), value.clone())),
        }
    }
    sorted
}

fn execute(nodes: &[Node], data: &TemplateData<'_>) -> Result<String, ExecError> {
    let data = Data {
        labels: sorted_labels(data.labels),
        external_labels: sorted_labels(data.external_labels),
        value: data.value,
        external_url: data.external_url.to_owned(),
    };
    let mut exec = Exec {
        data: &data,
        variables: vec![
            ("$".to_owned(), Value::Root(&data)),
            ("$labels".to_owned(), Value::Map(&data.labels)),
            (
                "$externalLabels".to_owned(),
                Value::Map(&data.external_labels),
            ),
            (
                "$externalURL".to_owned(),
                Value::Str(data.external_url.clone()),
            ),
            ("$value".to_owned(), Value::Float(data.value)),
        ],
        out: String::new(),
    };
    exec.walk(nodes, &Value::Root(&data))?;
    Ok(exec.out)
}

struct Exec<'d> {
    data: &'d Data,
    variables: Vec<(String, Value<'d>)>,
    out: String,
}

fn error(position: usize, context: String, message: String) -> ExecError {
    ExecError {
        position,
        context,
        message,
    }
}

impl<'d> Exec<'d> {
    fn walk(&mut self, nodes: &[Node], dot: &Value<'d>) -> Result<(), ExecError> {
        for node in nodes {
            match node {
                Node::Text(text) => self.out.push_str(text),
                Node::Action(pipeline) => {
                    let value = self.pipeline(pipeline, dot)?;
                    if pipeline.declarations.is_empty() {
                        print_value(&mut self.out, &value);
                    }
                }
                Node::If(branches, else_list) => {
                    let mark = self.variables.len();
                    let mut taken = false;
                    for (pipeline, list) in branches {
                        if self.pipeline(pipeline, dot)?.is_true() {
                            self.walk(list, dot)?;
                            taken = true;
                            break;
                        }
                    }
                    if !taken {
                        self.walk(else_list, dot)?;
                    }
                    self.variables.truncate(mark);
                }
                Node::With(pipeline, list, else_list) => {
                    let mark = self.variables.len();
                    let value = self.pipeline(pipeline, dot)?;
                    if value.is_true() {
                        self.walk(list, &value)?;
                    } else {
                        self.walk(else_list, dot)?;
                    }
                    self.variables.truncate(mark);
                }
                Node::Range(pipeline, list, else_list) => {
                    self.range(pipeline, list, else_list, dot)?
                }
            }
        }
        Ok(())
    }

    fn range(
        &mut self,
        pipeline: &Pipeline,
        list: &[Node],
        else_list: &[Node],
        dot: &Value<'d>,
    ) -> Result<(), ExecError> {
        let mark = self.variables.len();
        let value = self.pipeline(pipeline, dot)?;
        let Value::Map(map) = value else {
            let command = &pipeline.commands[0];
            return Err(error(
                command.position,
                command.source(),
                format!("range can't iterate over {}", format_value(&value, 'v')),
            ));
        };
        if map.is_empty() {
            self.walk(else_list, dot)?;
        }
        let inner = self.variables.len();
        for (key, element) in map {
            let element = Value::Str(element.clone());
            match pipeline.declarations.len() {
                1 => self.set_top(1, element.clone()),
                2 => {
                    self.set_top(1, element.clone());
                    self.set_top(2, Value::Str(key.clone()));
                }
                _ => {}
            }
            self.walk(list, &element)?;
            self.variables.truncate(inner);
        }
        self.variables.truncate(mark);
        Ok(())
    }

    fn set_top(&mut self, from_top: usize, value: Value<'d>) {
        let len = self.variables.len();
        if let Some(slot) = len
            .checked_sub(from_top)
            .and_then(|i| self.variables.get_mut(i))
        {
            slot.1 = value;
        }
    }

    fn variable(&self, name: &str) -> Value<'d> {
        self.variables
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map_or(Value::Nil, |(_, v)| v.clone())
    }

    fn pipeline(&mut self, pipeline: &Pipeline, dot: &Value<'d>) -> Result<Value<'d>, ExecError> {
        let mut value: Option<Value<'d>> = None;
        for command in &pipeline.commands {
            value = Some(self.command(command, dot, value)?);
        }
        let value = value.unwrap_or(Value::Nil);
        for name in &pipeline.declarations {
            if pipeline.is_assignment {
                if let Some(slot) = self.variables.iter_mut().rev().find(|(n, _)| n == name) {
                    slot.1 = value.clone();
                }
            } else {
                self.variables.push((name.clone(), value.clone()));
            }
        }
        Ok(value)
    }

    fn command(
        &mut self,
        command: &Command,
        dot: &Value<'d>,
        last: Option<Value<'d>>,
    ) -> Result<Value<'d>, ExecError> {
        let first = &command.arguments[0];
        if let TermKind::Function(name) = &first.kind {
            return self.call(name, command, dot, last);
        }
        if command.arguments.len() > 1 || last.is_some() {
            return Err(error(
                first.position,
                first.source(),
                format!("can't give argument to non-function {}", first.source()),
            ));
        }
        if matches!(first.kind, TermKind::Nil) {
            return Err(error(
                command.position,
                command.source(),
                "nil is not a command".to_owned(),
            ));
        }
        self.term(first, dot)
    }

    fn term(&mut self, term: &Term, dot: &Value<'d>) -> Result<Value<'d>, ExecError> {
        let mut value = match &term.kind {
            TermKind::Dot => dot.clone(),
            TermKind::Variable(name) => self.variable(name),
            TermKind::String { value, .. } => Value::Str(value.clone()),
            TermKind::Number { value, .. } => match value {
                Constant::Int(i) => Value::Int(*i),
                Constant::Float(f) => Value::Float(*f),
            },
            TermKind::Bool(b) => Value::Bool(*b),
            TermKind::Nil => Value::Nil,
            TermKind::Pipeline(pipeline) => {
                let mark = self.variables.len();
                let value = self.pipeline(pipeline, dot)?;
                self.variables.truncate(mark);
                value
            }
            TermKind::Function(name) => {
                let command = Command {
                    position: term.position,
                    arguments: vec![Term {
                        position: term.position,
                        kind: term.kind.clone(),
                        fields: Vec::new(),
                    }],
                };
                self.call(name, &command, dot, None)?
            }
        };
        for field in &term.fields {
            value = self.field(value, field, term)?;
        }
        Ok(value)
    }

    fn field(&self, value: Value<'d>, name: &str, term: &Term) -> Result<Value<'d>, ExecError> {
        let found = match &value {
            Value::Root(_) => match name {
                "Labels" => Some(Value::Map(&self.data.labels)),
                "ExternalLabels" => Some(Value::Map(&self.data.external_labels)),
                "ExternalURL" => Some(Value::Str(self.data.external_url.clone())),
                "Value" => Some(Value::Float(self.data.value)),
                _ => None,
            },
            // Prometheus sets missingkey=zero: an absent label is the empty string.
            Value::Map(map) => Some(Value::Str(lookup(map, name))),
            _ => None,
        };
        found.ok_or_else(|| {
            let message = if matches!(value, Value::Nil) {
                format!("nil data; no entry for key {name:?}")
            } else {
                format!("can't evaluate field {name} in type {}", value.type_name())
            };
            error(term.position, term.source(), message)
        })
    }

    fn call(
        &mut self,
        name: &str,
        command: &Command,
        dot: &Value<'d>,
        last: Option<Value<'d>>,
    ) -> Result<Value<'d>, ExecError> {
        let fail = |message: String| {
            error(
                command.position,
                command.source(),
                format!("error calling {name}: {message}"),
            )
        };
        let argument_terms = &command.arguments[1..];
        // `and` and `or` evaluate lazily and return an operand, not a bool.
        if name == "and" || name == "or" {
            let count = argument_terms.len() + usize::from(last.is_some());
            if count < 2 {
                return Err(error(
                    command.position,
                    command.source(),
                    format!("wrong number of args for {name}: want at least 1 got {count}"),
                ));
            }
            let mut value = Value::Nil;
            for term in argument_terms {
                value = self.term(term, dot)?;
                if value.is_true() == (name == "or") {
                    return Ok(value);
                }
            }
            return Ok(last.unwrap_or(value));
        }
        let mut arguments = Vec::with_capacity(argument_terms.len() + 1);
        for (index, term) in argument_terms.iter().enumerate() {
            let value = self.term(term, dot)?;
            // Go converts arguments to the parameter types before the call, at the argument.
            if is_string_parameter(name, index) && !matches!(value, Value::Str(_)) {
                let literal = term.fields.is_empty()
                    && matches!(
                        term.kind,
                        TermKind::Number { .. } | TermKind::Bool(_) | TermKind::Nil
                    );
                let message = if literal {
                    format!("expected string; found {}", term.source())
                } else {
                    format!(
                        "wrong type for value; expected string; got {}",
                        value.type_name()
                    )
                };
                return Err(error(term.position, term.source(), message));
            }
            arguments.push(value);
        }
        if let Some(value) = last {
            if is_string_parameter(name, argument_terms.len()) && !matches!(value, Value::Str(_)) {
                let (position, context) = argument_terms
                    .last()
                    .map_or((command.position, name.to_owned()), |t| {
                        (t.position, t.source())
                    });
                return Err(error(
                    position,
                    context,
                    format!(
                        "wrong type for value; expected string; got {}",
                        value.type_name()
                    ),
                ));
            }
            arguments.push(value);
        }
        call_function(name, &arguments, self.data).map_err(fail)
    }
}

/// Whether Go's signature of the function types this argument `string`.
fn is_string_parameter(function: &str, index: usize) -> bool {
    match function {
        "toUpper" | "toLower" | "title" | "stripPort" | "safeHtml" | "printf" => index == 0,
        "match" => index < 2,
        "reReplaceAll" => index < 3,
        _ => false,
    }
}

fn lookup(map: &[(String, String)], key: &str) -> String {
    map.binary_search_by(|(n, _)| n.as_str().cmp(key))
        .map_or_else(|_| String::new(), |i| map[i].1.clone())
}

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

fn call_function<'d>(name: &str, args: &[Value<'d>], data: &'d Data) -> Result<Value<'d>, String> {
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

// ---------------------------------------------------------------------------------------------
// Go's fmt: printing values and Sprintf.

/// How text/template prints an action's value: `fmt.Fprint`, i.e. `%v`.
fn print_value(out: &mut String, value: &Value<'_>) {
    if matches!(value, Value::Nil) {
        out.push_str("<no value>");
        return;
    }
    out.push_str(&format_value(value, 'v'));
}

/// `fmt.Sprint`: a space between operands when neither is a string.
fn sprint(args: &[Value<'_>]) -> String {
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

fn format_value(value: &Value<'_>, verb: char) -> String {
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
fn sprintf(format: &str, args: &[Value<'_>]) -> String {
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
fn go_quote(s: &str) -> String {
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
fn format_float(f: f64, verb: char, precision: Option<usize>) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// Renders as Prometheus fills an annotation of rule `T` (errors included), the form
    /// promtool printed for the expectations below.
    fn expand(template: &str, labels: &[(String, String)], value: f64) -> String {
        let data = TemplateData {
            labels,
            external_labels: &[],
            value,
            external_url: "",
        };
        expand_for_alert("T", template, &data)
    }

    #[test]
    fn value_formatting_matches_promtool() {
        let labels = labels(&[("__name__", "m"), ("instance", "h:9100"), ("job", "node")]);
        for (template, expected) in VALUE_CASES {
            for (value, expected) in VALUES.iter().zip(expected) {
                assert_eq!(
                    expand(template, &labels, *value),
                    *expected,
                    "{template} with $value {value}"
                );
            }
        }
    }

    #[test]
    fn templates_match_promtool() {
        let node = labels(&[("__name__", "m"), ("instance", "h3:9100"), ("job", "node")]);
        for (template, expected) in NODE_CASES {
            assert_eq!(expand(template, &node, 3.5), *expected, "{template}");
        }
        let num = labels(&[
            ("__name__", "m"),
            ("instance", "h1:9100"),
            ("job", "node"),
            ("num", "2.5"),
        ]);
        for (template, expected) in NUM_CASES {
            assert_eq!(expand(template, &num, 2.5), *expected, "{template}");
        }
    }

    #[test]
    fn render_reports_the_failing_action() {
        let data = TemplateData {
            labels: &[],
            external_labels: &[],
            value: 1.0,
            external_url: "http://prom:9090",
        };
        assert_eq!(
            render("{{ $externalURL }}/x", &data).as_deref(),
            Ok("http://prom:9090/x")
        );
        assert_eq!(
            render("{{ if gt $value 1 }}x{{ end }}", &data),
            Err(
                "1:118: executing at <gt $value 1>: error calling gt: incompatible types \
                 for comparison"
                    .to_owned()
            )
        );
    }

    #[test]
    fn labels_are_sorted_and_external_labels_available() {
        let labels = labels(&[("job", "b"), ("instance", "a")]);
        let external = [("cluster".to_owned(), "prod".to_owned())];
        let data = TemplateData {
            labels: &labels,
            external_labels: &external,
            value: 0.0,
            external_url: "",
        };
        assert_eq!(
            render("{{ $labels }} {{ $externalLabels.cluster }}", &data).as_deref(),
            Ok("map[instance:a job:b] prod")
        );
    }

    #[test]
    fn check_accepts_community_forms_and_refuses_the_rest() {
        assert!(check("{{ $labels.instance }} at {{ $value | humanizePercentage }}").is_ok());
        assert!(check("VALUE = {{ $value }}\n  LABELS = {{ $labels }}").is_ok());
        assert!(check(r#"{{ printf "%.2f" $value }} {{ $value | printf "%.0f" }}"#).is_ok());
        assert!(check("{{ if gt $value 1.0 }}big{{ else if lt $value 0.0 }}neg{{ end }}").is_ok());
        assert!(check("{{ range $k, $v := $labels }}{{ $k }}{{ end }}").is_ok());
        for (template, reason) in [
            ("{{ if nosuch $value }}x{{ end }}", "not defined"),
            ("{{ $value | query }}", "query engine"),
            (
                "{{ with query \"up\" }}{{ . | first | value }}{{ end }}",
                "query engine",
            ),
            ("{{ $value ", "unclosed action"),
            ("{{ if true }}x", "unexpected EOF"),
            ("{{ end }}", "unexpected {{end}}"),
            ("{{ $nosuch }}", "undefined variable"),
            ("{{ template \"x\" }}", "not supported"),
            ("{{ 1x }}", "bad number syntax"),
        ] {
            let error = check(template).expect_err(template);
            assert!(error.contains(reason), "{template}: {error}");
        }
    }

    #[test]
    fn trim_markers_need_a_space_and_numbers_may_be_negative() {
        let data = TemplateData {
            labels: &[],
            external_labels: &[],
            value: 0.0,
            external_url: "",
        };
        assert_eq!(render("a {{- 3 -}} b", &data).as_deref(), Ok("a3b"));
        assert_eq!(render("a {{-3}} b", &data).as_deref(), Ok("a -3 b"));
    }

    /// The values every `VALUE_CASES` template is rendered with.
    const VALUES: [f64; 17] = [
        0.0,
        0.5,
        2.5,
        -1.5,
        59.99,
        1023.0,
        176461.5,
        1000000.0,
        123456789.0,
        1e21,
        1e300,
        0.000012345,
        -0.002,
        -90061.0,
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
    ];
    /// promtool 2.42 output for templates over `$value`, one expectation per `VALUES` entry.
    const VALUE_CASES: &[(&str, [&str; 17])] = &[
        (
            "{{ $value }}",
            [
                "0",
                "0.5",
                "2.5",
                "-1.5",
                "59.99",
                "1023",
                "176461.5",
                "1e+06",
                "1.23456789e+08",
                "1e+21",
                "1e+300",
                "1.2345e-05",
                "-0.002",
                "-90061",
                "NaN",
                "+Inf",
                "-Inf",
            ],
        ),
        (
            "{{ $value | humanize }}",
            [
                "0", "500m", "2.5", "-1.5", "59.99", "1.023k", "176.5k", "1M", "123.5M", "1Z",
                "1e+276Y", "12.35u", "-2m", "-90.06k", "NaN", "+Inf", "-Inf",
            ],
        ),
        (
            "{{ humanize1024 $value }}",
            [
                "0",
                "0.5",
                "2.5",
                "-1.5",
                "59.99",
                "1023",
                "172.3ki",
                "976.6ki",
                "117.7Mi",
                "867.4Ei",
                "8.272e+275Yi",
                "1.234e-05",
                "-0.002",
                "-87.95ki",
                "NaN",
                "+Inf",
                "-Inf",
            ],
        ),
        (
            "{{ $value | humanizePercentage }}",
            [
                "0%",
                "50%",
                "250%",
                "-150%",
                "5999%",
                "1.023e+05%",
                "1.765e+07%",
                "1e+08%",
                "1.235e+10%",
                "1e+23%",
                "1e+302%",
                "0.001234%",
                "-0.2%",
                "-9.006e+06%",
                "NaN%",
                "+Inf%",
                "-Inf%",
            ],
        ),
        (
            "{{ $value | humanizeDuration }}",
            [
                "0s",
                "500ms",
                "2.5s",
                "-1.5s",
                "59.99s",
                "17m 3s",
                "2d 1h 1m 1s",
                "11d 13h 46m 40s",
                "1428d 21h 33m 9s",
                "-106751991167300d -15h -30m -8s",
                "-106751991167300d -15h -30m -8s",
                "12.35us",
                "-2ms",
                "-1d 1h 1m 1s",
                "NaN",
                "+Inf",
                "-Inf",
            ],
        ),
        (
            "{{ $value | humanizeTimestamp }}",
            [
                "1970-01-01 00:00:00 +0000 UTC",
                "1970-01-01 00:00:00.5 +0000 UTC",
                "1970-01-01 00:00:02.5 +0000 UTC",
                "1969-12-31 23:59:58.5 +0000 UTC",
                "1970-01-01 00:00:59.99 +0000 UTC",
                "1970-01-01 00:17:03 +0000 UTC",
                "1970-01-03 01:01:01.5 +0000 UTC",
                "1970-01-12 13:46:40 +0000 UTC",
                "1973-11-29 21:33:09 +0000 UTC",
                "<error expanding template: error executing template __alert_T: template: __alert_T:1:124: executing \"__alert_T\" at <humanizeTimestamp>: error calling humanizeTimestamp: 1e+21 cannot be represented as a nanoseconds timestamp since it overflows int64>",
                "<error expanding template: error executing template __alert_T: template: __alert_T:1:124: executing \"__alert_T\" at <humanizeTimestamp>: error calling humanizeTimestamp: 1e+300 cannot be represented as a nanoseconds timestamp since it overflows int64>",
                "1970-01-01 00:00:00 +0000 UTC",
                "1969-12-31 23:59:59.998 +0000 UTC",
                "1969-12-30 22:58:59 +0000 UTC",
                "NaN",
                "+Inf",
                "-Inf",
            ],
        ),
        (
            "{{ printf \"%.2f\" $value }}",
            [
                "0.00",
                "0.50",
                "2.50",
                "-1.50",
                "59.99",
                "1023.00",
                "176461.50",
                "1000000.00",
                "123456789.00",
                "1000000000000000000000.00",
                "1000000000000000052504760255204420248704468581108159154915854115511802457988908195786371375080447864043704443832883878176942523235360430575644792184786706982848387200926575803737830233794788090059368953234970799945081119038967640880074652742780142494579258788820056842838115669472196386865459400540160.00",
                "0.00",
                "-0.00",
                "-90061.00",
                "NaN",
                "+Inf",
                "-Inf",
            ],
        ),
        (
            "{{ $value | printf \"%.0f\" }}",
            [
                "0",
                "0",
                "2",
                "-2",
                "60",
                "1023",
                "176462",
                "1000000",
                "123456789",
                "1000000000000000000000",
                "1000000000000000052504760255204420248704468581108159154915854115511802457988908195786371375080447864043704443832883878176942523235360430575644792184786706982848387200926575803737830233794788090059368953234970799945081119038967640880074652742780142494579258788820056842838115669472196386865459400540160",
                "0",
                "-0",
                "-90061",
                "NaN",
                "+Inf",
                "-Inf",
            ],
        ),
        (
            "{{ printf \"%v\" $value }}",
            [
                "0",
                "0.5",
                "2.5",
                "-1.5",
                "59.99",
                "1023",
                "176461.5",
                "1e+06",
                "1.23456789e+08",
                "1e+21",
                "1e+300",
                "1.2345e-05",
                "-0.002",
                "-90061",
                "NaN",
                "+Inf",
                "-Inf",
            ],
        ),
        (
            "{{ printf \"%e\" $value }}",
            [
                "0.000000e+00",
                "5.000000e-01",
                "2.500000e+00",
                "-1.500000e+00",
                "5.999000e+01",
                "1.023000e+03",
                "1.764615e+05",
                "1.000000e+06",
                "1.234568e+08",
                "1.000000e+21",
                "1.000000e+300",
                "1.234500e-05",
                "-2.000000e-03",
                "-9.006100e+04",
                "NaN",
                "+Inf",
                "-Inf",
            ],
        ),
        (
            "{{ printf \"%.3e\" $value }}",
            [
                "0.000e+00",
                "5.000e-01",
                "2.500e+00",
                "-1.500e+00",
                "5.999e+01",
                "1.023e+03",
                "1.765e+05",
                "1.000e+06",
                "1.235e+08",
                "1.000e+21",
                "1.000e+300",
                "1.234e-05",
                "-2.000e-03",
                "-9.006e+04",
                "NaN",
                "+Inf",
                "-Inf",
            ],
        ),
        (
            "{{ printf \"%8.2f|%-8.2f|%08.2f|%+.1f\" $value $value $value $value }}",
            [
                "    0.00|0.00    |00000.00|+0.0",
                "    0.50|0.50    |00000.50|+0.5",
                "    2.50|2.50    |00002.50|+2.5",
                "   -1.50|-1.50   |-0001.50|-1.5",
                "   59.99|59.99   |00059.99|+60.0",
                " 1023.00|1023.00 |01023.00|+1023.0",
                "176461.50|176461.50|176461.50|+176461.5",
                "1000000.00|1000000.00|1000000.00|+1000000.0",
                "123456789.00|123456789.00|123456789.00|+123456789.0",
                "1000000000000000000000.00|1000000000000000000000.00|1000000000000000000000.00|+1000000000000000000000.0",
                "1000000000000000052504760255204420248704468581108159154915854115511802457988908195786371375080447864043704443832883878176942523235360430575644792184786706982848387200926575803737830233794788090059368953234970799945081119038967640880074652742780142494579258788820056842838115669472196386865459400540160.00|1000000000000000052504760255204420248704468581108159154915854115511802457988908195786371375080447864043704443832883878176942523235360430575644792184786706982848387200926575803737830233794788090059368953234970799945081119038967640880074652742780142494579258788820056842838115669472196386865459400540160.00|1000000000000000052504760255204420248704468581108159154915854115511802457988908195786371375080447864043704443832883878176942523235360430575644792184786706982848387200926575803737830233794788090059368953234970799945081119038967640880074652742780142494579258788820056842838115669472196386865459400540160.00|+1000000000000000052504760255204420248704468581108159154915854115511802457988908195786371375080447864043704443832883878176942523235360430575644792184786706982848387200926575803737830233794788090059368953234970799945081119038967640880074652742780142494579258788820056842838115669472196386865459400540160.0",
                "    0.00|0.00    |00000.00|+0.0",
                "   -0.00|-0.00   |-0000.00|-0.0",
                "-90061.00|-90061.00|-90061.00|-90061.0",
                "     NaN|NaN     |     NaN|+NaN",
                "    +Inf|+Inf    |    +Inf|+Inf",
                "    -Inf|-Inf    |    -Inf|-Inf",
            ],
        ),
        (
            "{{ printf \"%d\" $value }}",
            [
                "%!d(float64=0)",
                "%!d(float64=0.5)",
                "%!d(float64=2.5)",
                "%!d(float64=-1.5)",
                "%!d(float64=59.99)",
                "%!d(float64=1023)",
                "%!d(float64=176461.5)",
                "%!d(float64=1e+06)",
                "%!d(float64=1.23456789e+08)",
                "%!d(float64=1e+21)",
                "%!d(float64=1e+300)",
                "%!d(float64=1.2345e-05)",
                "%!d(float64=-0.002)",
                "%!d(float64=-90061)",
                "%!d(float64=NaN)",
                "%!d(float64=+Inf)",
                "%!d(float64=-Inf)",
            ],
        ),
        (
            "{{ printf \"%s\" $value }}",
            [
                "%!s(float64=0)",
                "%!s(float64=0.5)",
                "%!s(float64=2.5)",
                "%!s(float64=-1.5)",
                "%!s(float64=59.99)",
                "%!s(float64=1023)",
                "%!s(float64=176461.5)",
                "%!s(float64=1e+06)",
                "%!s(float64=1.23456789e+08)",
                "%!s(float64=1e+21)",
                "%!s(float64=1e+300)",
                "%!s(float64=1.2345e-05)",
                "%!s(float64=-0.002)",
                "%!s(float64=-90061)",
                "%!s(float64=NaN)",
                "%!s(float64=+Inf)",
                "%!s(float64=-Inf)",
            ],
        ),
        (
            "{{ printf \"%.4g\" $value }}",
            [
                "0",
                "0.5",
                "2.5",
                "-1.5",
                "59.99",
                "1023",
                "1.765e+05",
                "1e+06",
                "1.235e+08",
                "1e+21",
                "1e+300",
                "1.234e-05",
                "-0.002",
                "-9.006e+04",
                "NaN",
                "+Inf",
                "-Inf",
            ],
        ),
        (
            "{{ printf \"%10.3g|\" $value }}",
            [
                "         0|",
                "       0.5|",
                "       2.5|",
                "      -1.5|",
                "        60|",
                "  1.02e+03|",
                "  1.76e+05|",
                "     1e+06|",
                "  1.23e+08|",
                "     1e+21|",
                "    1e+300|",
                "  1.23e-05|",
                "    -0.002|",
                " -9.01e+04|",
                "       NaN|",
                "      +Inf|",
                "      -Inf|",
            ],
        ),
        (
            "{{ if gt $value 1.0 }}big{{ else if lt $value 0.0 }}neg{{ else }}small{{ end }}",
            [
                "small", "small", "big", "neg", "big", "big", "big", "big", "big", "big", "big",
                "small", "neg", "neg", "big", "big", "neg",
            ],
        ),
    ];
    /// promtool 2.42 output with the `node` fixture: (template, expected).
    const NODE_CASES: &[(&str, &str)] = &[
        ("{{ .Value }}", "3.5"),
        ("{{ printf \"%g\" $value }}", "3.5"),
        (
            "{{ if gt $value 1 }}x{{ end }}",
            "<error expanding template: error executing template __alert_T: template: __alert_T:1:118: executing \"__alert_T\" at <gt $value 1>: error calling gt: incompatible types for comparison>",
        ),
        ("{{ if eq $labels.job \"node\" }}node{{ end }}", "node"),
        (
            "{{ with $labels.instance }}inst={{ . }}{{ else }}none{{ end }}",
            "inst=h3:9100",
        ),
        ("{{ $labels.instance | stripPort }}", "h3"),
        (
            "{{ toUpper $labels.job }} {{ toLower \"ABC\" }} {{ title \"hello world-foo bar_baz\" }}",
            "NODE abc Hello World-Foo Bar_baz",
        ),
        ("{{ reReplaceAll \":.*\" \"\" $labels.instance }}", "h3"),
        (
            "{{ reReplaceAll \"(.+):(\\\\d+)\" \"$2-$1\" $labels.instance }}",
            "9100-h3",
        ),
        (
            "{{ if match \"^a\" $labels.instance }}starts-a{{ end }}",
            "",
        ),
        ("  {{- $labels.job -}}  x  {{- \"y\" }}  ", "nodexy  "),
        (
            "{{ $externalURL }}|{{ $externalLabels }}|{{ .ExternalURL }}",
            "|map[]|",
        ),
        ("{{ printf \"%q\" $labels.instance }}", "\"h3:9100\""),
        ("{{ $labels.instance }}{{/* comment */}}!", "h3:9100!"),
        ("{{ (printf \"%.1f\" $value) }}", "3.5"),
        ("{{ humanize \"1234567\" }}", "1.235M"),
        ("{{ humanize 1024 }}", "1.024k"),
        (
            "{{ 3 }} {{ 1.5 }} {{ \"s\" }} {{ true }} {{ 1e3 }} {{ 0x10 }}",
            "3 1.5 s true 1000 16",
        ),
        (
            "{{ and $labels.job $labels.instance }}|{{ or $labels.nosuch \"default\" }}|{{ not true }}",
            "h3:9100|default|false",
        ),
        (
            "{{ $x := 5 }}{{ $x }}{{ if true }}{{ $x = 6 }}{{ end }}{{ $x }}",
            "56",
        ),
        (
            "{{ range $k, $v := $labels }}{{ $k }}={{ $v }};{{ end }}",
            "__name__=m;instance=h3:9100;job=node;",
        ),
        ("{{ index $labels \"job\" }}", "node"),
        ("{{ len $labels }}", "3"),
        ("{{ print $value \"a\" 1 2 }}", "3.5a1 2"),
        ("{{ println \"a\" }}", "a\n"),
        ("{{ safeHtml \"<b>\" }}", "<b>"),
        (
            "{{ printf \"%5s|%-5s|%.2s\" \"ab\" \"cd\" \"efgh\" }}",
            "   ab|cd   |ef",
        ),
        ("{{ printf \"%d%%\" 5 }}", "5%"),
        ("{{ printf \"%x %X %o %b\" 255 255 8 5 }}", "ff FF 10 101"),
        (
            "{{ printf \"%v %v\" $labels true }}",
            "map[__name__:m instance:h3:9100 job:node] true",
        ),
        ("{{ printf \"%s\" }}", "%!s(MISSING)"),
        ("{{ printf \"%s\" \"a\" \"b\" }}", "a%!(EXTRA string=b)"),
        ("{{ $value | humanize | printf \"%s!\" }}", "3.5!"),
        ("{{ humanizePercentage 0.123456 }}", "12.35%"),
        ("{{ humanizeDuration 90061.5 }}", "1d 1h 1m 1s"),
        (
            "{{ eq 1 1 }} {{ ne \"a\" \"b\" }} {{ lt 1.5 2.5 }} {{ ge \"b\" \"a\" }} {{ eq \"a\" \"b\" \"a\" }}",
            "true true true true true",
        ),
        ("{{ .Labels.job }}", "node"),
        ("{{ $.Labels.job }}", "node"),
        (
            "{{ if and (gt $value 0.0) (lt $value 10.0) }}in{{ end }}",
            "in",
        ),
        ("{{ with $labels.nosuch }}x{{ end }}", ""),
        ("{{ $value | printf \"%.2f\" | printf \"[%s]\" }}", "[3.50]"),
        ("{{ printf \"%T\" $value }}", "float64"),
        (
            "{{ printf \"%6.2f%%\" (humanizePercentage $value) }}",
            "%!f(string=    35)%",
        ),
        ("{{ printf \"%.1f\" 3 }}", "%!f(int=3)"),
        ("{{ printf \"%d\" 3 }}", "3"),
        ("{{ \"a\\tb\\\"\" }}", "a\tb\""),
        (
            "{{ printf \"%g\" 100000.0 }}|{{ printf \"%g\" 1e21 }}",
            "100000|1e+21",
        ),
        (
            "{{ $labels.instance | toUpper | printf \"%s.\" }}",
            "H3:9100.",
        ),
        ("{{ printf \"%.2f\" $labels.nosuch }}", "%!f(string=)"),
        ("{{ -1 }} {{ -1.5 }}", "-1 -1.5"),
        ("{{ printf \"%+d %05d % d\" 5 -5 5 }}", "+5 -0005  5"),
        ("{{ printf \"%#v\" \"a\" }}", "\"a\""),
        (
            "{{ humanizeTimestamp 1700000000.123 }}",
            "2023-11-14 22:13:20.122 +0000 UTC",
        ),
        (
            "{{ $labels.instance | reReplaceAll \":[0-9]+\" \"\" }}",
            "h3",
        ),
        (
            "{{ printf \"%.2f\" 1.005 }} {{ printf \"%.2f\" 0.125 }} {{ printf \"%.0f\" 2.5 }} {{ printf \"%.0f\" 0.5 }}",
            "1.00 0.12 2 0",
        ),
        (
            "{{ printf \"%s\" $labels }}",
            "map[__name__:m instance:h3:9100 job:node]",
        ),
        ("{{ $externalLabels.cluster }}", ""),
        (
            "{{ . }}",
            "{map[__name__:m instance:h3:9100 job:node] map[]  3.5}",
        ),
        (
            "{{ $labels.job.x }}",
            "<error expanding template: error executing template __alert_T: template: __alert_T:1:122: executing \"__alert_T\" at <$labels.job.x>: can't evaluate field x in type string>",
        ),
        (
            "{{ .Nosuch }}",
            "<error expanding template: error executing template __alert_T: template: __alert_T:1:115: executing \"__alert_T\" at <.Nosuch>: can't evaluate field Nosuch in type struct { Labels map[string]string; ExternalLabels map[string]string; ExternalURL string; Value float64 }>",
        ),
    ];
    /// promtool 2.42 output with the `num` fixture: (template, expected).
    const NUM_CASES: &[(&str, &str)] = &[
        (
            "Instance {{ $labels.instance }}\n  VALUE = {{ $value }}\n  LABELS = {{ $labels }}",
            "Instance h1:9100\n  VALUE = 2.5\n  LABELS = map[__name__:m instance:h1:9100 job:node num:2.5]",
        ),
        (
            "{{ if gt $value 100.0 }}\n  high\n{{- else if gt $value 10.0 }}\n  mid\n{{- else }}\n  low\n{{- end }}",
            "\n  low",
        ),
        (
            "line1\n{{ .Nosuch }}",
            "<error expanding template: error executing template __alert_T: template: __alert_T:2:3: executing \"__alert_T\" at <.Nosuch>: can't evaluate field Nosuch in type struct { Labels map[string]string; ExternalLabels map[string]string; ExternalURL string; Value float64 }>",
        ),
        (
            "line1\n  {{ gt $value 1 }}",
            "<error expanding template: error executing template __alert_T: template: __alert_T:2:5: executing \"__alert_T\" at <gt $value 1>: error calling gt: incompatible types for comparison>",
        ),
        (
            "{{ printf \"%very long format string here %s\" $value 1 2 3 }}",
            "2.5ery long format string here %!s(int=1)%!(EXTRA int=2, int=3)",
        ),
        (
            "{{ humanize $labels.job }}",
            "<error expanding template: error executing template __alert_T: template: __alert_T:1:115: executing \"__alert_T\" at <humanize $labels.job>: error calling humanize: strconv.ParseFloat: parsing \"node\": invalid syntax>",
        ),
        ("{{ humanize $labels.num }}", "2.5"),
        ("{{ $labels.num | humanizePercentage }}", "250%"),
        (
            "{{ with $labels }}{{ .instance }}/{{ .job }}{{ end }}",
            "h1:9100/node",
        ),
        (
            "{{ range $labels }}{{ . }},{{ else }}empty{{ end }}",
            "m,h1:9100,node,2.5,",
        ),
        (
            "{{ range $externalLabels }}{{ . }},{{ else }}empty{{ end }}",
            "empty",
        ),
        (
            "{{ printf \"%.1f%%\" (humanizePercentage $value) }}",
            "%!f(string=2)%",
        ),
        ("{{ printf \"%5.1f%%\" $value }}", "  2.5%"),
        ("{{ $value | humanize1024 }}B", "2.5B"),
        ("{{- /* a comment */ -}}  x  {{- /* c */}}", "x"),
        (
            "{{ toUpper 5 }}",
            "<error expanding template: error executing template __alert_T: template: __alert_T:1:123: executing \"__alert_T\" at <5>: expected string; found 5>",
        ),
        (
            "{{ $x := $value }}{{ if ge $x 2.5 }}ge{{ else }}lt{{ end }}",
            "ge",
        ),
        (
            "{{ eq $value 2.5 }}|{{ ne $value 2.5 }}|{{ le $value 2.5 }}|{{ lt $value 2.5 }}",
            "true|false|true|false",
        ),
        (
            "{{ if or (eq $labels.job \"a\") (eq $labels.job \"node\") }}yes{{ end }}",
            "yes",
        ),
        (
            "{{ $labels.instance | reReplaceAll \"(\\\\w+):.*\" \"${1}\" }}",
            "h1",
        ),
        ("{{ title $labels.job }} {{ toLower \"ÀB\" }}", "Node àb"),
        (
            "{{ stripPort \"[::1]:9100\" }}|{{ stripPort \"::1\" }}|{{ stripPort \"host\" }}|{{ stripPort \"a:b:c\" }}",
            "::1|::1|host|a:b:c",
        ),
        ("{{ printf \"%s %s\" $labels.job }}", "node %!s(MISSING)"),
        (
            "{{ printf \"%-10s|%10s|\" $labels.job \"x\" }}",
            "node      |         x|",
        ),
        (
            "{{ printf \"%05.1f|%+.2e|%G|%E\" $value $value $value $value }}",
            "002.5|+2.50e+00|2.5|2.500000E+00",
        ),
        (
            "{{ printf \"%v\" . }}",
            "{map[__name__:m instance:h1:9100 job:node num:2.5] map[]  2.5}",
        ),
        ("{{ printf \"%d items\" (len $labels) }}", "4 items"),
        ("{{ index $labels \"nosuch\" }}|", "|"),
        (
            "{{ and 1 0 }}|{{ or 0 \"\" }}|{{ and }}",
            "<error expanding template: error executing template __alert_T: template: __alert_T:1:143: executing \"__alert_T\" at <and>: wrong number of args for and: want at least 1 got 0>",
        ),
        ("{{ not $labels.nosuch }}", "true"),
        ("{{ if not (eq $labels.job \"x\") }}notx{{ end }}", "notx"),
        ("{{ $value | humanize | toUpper }}", "2.5"),
        ("{{ 1 | printf \"%d-%d\" 2 }}", "2-1"),
        (
            "{{ humanizeTimestamp $value }}",
            "1970-01-01 00:00:02.5 +0000 UTC",
        ),
        ("{{ printf \"%.3f\" $value }}", "2.500"),
        ("{{ printf \"%q\" \"a\\u00e9\\x01\" }}", "\"aé\\x01\""),
        (
            "{{ print 1 2 \"x\" 3 4.5 true false }}",
            "1 2x3 4.5 true false",
        ),
        (
            "{{ if eq $labels.job \"node\" \"db\" }}multi{{ end }}",
            "multi",
        ),
        ("{{ humanize 0.000000000000000000000000001 }}", "0.001y"),
        ("{{ \"}}\" }}", "}}"),
        ("{{ `raw\\n` }}", "raw\\n"),
    ];
}
