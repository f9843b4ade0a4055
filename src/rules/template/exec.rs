//! Execution: walks the syntax tree over one alert's data, with Go's variable scoping, control
//! flow, field lookup and argument typing, and Go's error positions and wording.

use super::functions::call_function;
use super::parse::{Command, Constant, Node, Pipeline, Term, TermKind};
use super::printf::{format_value, print_value};
use super::{DATA_TYPE, PROMETHEUS_PREFIX_LEN, TemplateData};

#[derive(Clone)]
pub(super) enum Value<'d> {
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
    pub(super) fn type_name(&self) -> &'static str {
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
    pub(super) fn is_true(&self) -> bool {
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

pub(super) struct ExecError {
    position: usize,
    pub(super) context: String,
    pub(super) message: String,
}

impl ExecError {
    /// Go's line and byte column, counting Prometheus' definitions on the first line.
    pub(super) fn location(&self, template: &str) -> (usize, usize) {
        let before = &template[..self.position.min(template.len())];
        let line = before.matches('\n').count() + 1;
        let column = match before.rfind('\n') {
            Some(newline) => self.position - newline - 1,
            None => self.position + PROMETHEUS_PREFIX_LEN,
        };
        (line, column)
    }
}

pub(super) struct Data {
    pub(super) labels: Vec<(String, String)>,
    pub(super) external_labels: Vec<(String, String)>,
    pub(super) value: f64,
    pub(super) external_url: String,
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

pub(super) fn execute(nodes: &[Node], data: &TemplateData<'_>) -> Result<String, ExecError> {
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

pub(super) fn lookup(map: &[(String, String)], key: &str) -> String {
    map.binary_search_by(|(n, _)| n.as_str().cmp(key))
        .map_or_else(|_| String::new(), |i| map[i].1.clone())
}
