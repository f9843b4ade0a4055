//! The parser: tokens to a syntax tree, with variables resolved in scope and functions checked
//! against the supported list, so that `check` catches at load time what Go would refuse.

use super::lex::{Item, Token, TokenKind, lex};
use super::{REFUSED_FUNCTIONS, SUPPORTED_FUNCTIONS};

#[derive(Clone, Debug)]
pub(super) enum Node {
    Text(String),
    Action(Pipeline),
    /// `if` and `with`: the branches' pipelines and lists, then the `else` list.
    If(Vec<(Pipeline, Vec<Node>)>, Vec<Node>),
    With(Pipeline, Vec<Node>, Vec<Node>),
    Range(Pipeline, Vec<Node>, Vec<Node>),
}

#[derive(Clone, Debug)]
pub(super) struct Pipeline {
    pub(super) declarations: Vec<String>,
    pub(super) is_assignment: bool,
    pub(super) commands: Vec<Command>,
}

#[derive(Clone, Debug)]
pub(super) struct Command {
    pub(super) position: usize,
    pub(super) arguments: Vec<Term>,
}

#[derive(Clone, Debug)]
pub(super) struct Term {
    /// Where Go places the node: the first chained field if there is one.
    pub(super) position: usize,
    pub(super) kind: TermKind,
    pub(super) fields: Vec<String>,
}

#[derive(Clone, Debug)]
pub(super) enum TermKind {
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
pub(super) enum Constant {
    Int(i64),
    Float(f64),
}

impl Pipeline {
    pub(super) fn source(&self) -> String {
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
    pub(super) fn source(&self) -> String {
        let terms: Vec<String> = self.arguments.iter().map(Term::source).collect();
        terms.join(" ")
    }
}

impl Term {
    pub(super) fn source(&self) -> String {
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

/// Variables Prometheus defines before the template text.
const PREDEFINED_VARIABLES: [&str; 5] =
    ["$", "$labels", "$externalLabels", "$externalURL", "$value"];

pub(super) fn parse(template: &str) -> Result<Vec<Node>, String> {
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
