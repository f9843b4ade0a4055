//! The file as a tree of nodes that keep their line, so validation can name the line of any
//! key and report every problem instead of stopping at serde's first.

use serde::Deserialize;
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

/// A YAML node and the line it starts on (1-based).
#[derive(Clone, Debug)]
pub struct Node {
    pub line: usize,
    pub value: Value,
}

#[derive(Clone, Debug)]
pub enum Value {
    Null,
    Bool(bool),
    /// Numbers and strings, as written.
    Scalar(String),
    Seq(Vec<Node>),
    /// Keys with their lines, in file order.
    Map(Vec<(String, usize, Node)>),
}

impl Node {
    /// Parses a YAML document; an empty document is a null node.
    pub fn parse(text: &str) -> Result<Node, String> {
        if text.trim().is_empty() {
            return Ok(Node {
                line: 1,
                value: Value::Null,
            });
        }
        let spanned: Spanned<Value> = serde_saphyr::from_str(text).map_err(|e| e.to_string())?;
        Ok(from_spanned(spanned))
    }

    pub fn is_null(&self) -> bool {
        matches!(self.value, Value::Null)
    }
}

fn from_spanned(spanned: Spanned<Value>) -> Node {
    Node {
        line: usize::try_from(spanned.referenced.line()).unwrap_or(0),
        value: spanned.value,
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a YAML value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Scalar(v.to_string()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Scalar(v.to_string()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Scalar(v.to_string()))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Scalar(v.to_string()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::Scalar(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<Value>>()? {
            items.push(from_spanned(item));
        }
        Ok(Value::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<Value>>()? {
            let line = usize::try_from(key.referenced.line()).unwrap_or(0);
            let name = match key.value {
                Value::Scalar(s) => s,
                Value::Bool(b) => b.to_string(),
                Value::Null => String::new(),
                _ => return Err(de::Error::custom("a mapping key must be a plain value")),
            };
            let value: Spanned<Value> = map.next_value()?;
            entries.push((name, line, from_spanned(value)));
        }
        Ok(Value::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_keep_their_lines() {
        let node = Node::parse("route:\n  receiver: a\nreceivers:\n  - name: a\n").expect("yaml");
        let Value::Map(entries) = node.value else {
            panic!("map")
        };
        assert_eq!((entries[0].0.as_str(), entries[0].1), ("route", 1));
        assert_eq!((entries[1].0.as_str(), entries[1].1), ("receivers", 3));
        let Value::Seq(items) = &entries[1].2.value else {
            panic!("seq")
        };
        assert_eq!(items[0].line, 4);
    }
}
