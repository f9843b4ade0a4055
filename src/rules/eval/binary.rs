//! Binary operators: arithmetic and comparisons between scalars and vectors, the set operators,
//! and vector matching (`on`, `ignoring`, `group_left`, `group_right`).

use std::collections::{BTreeMap, BTreeSet};

use promql_parser::parser::{BinaryExpr, LabelModifier, VectorMatchFillValues};

use super::{Context, LabelSet, Value, drop_name};

impl Context<'_> {
    pub(super) fn binary(&self, bin: &BinaryExpr, ts: i64) -> Result<Value, String> {
        let op = bin.op.to_string();
        let modifier = bin.modifier.as_ref();
        if modifier.is_some_and(|m| m.fill_values != VectorMatchFillValues::default()) {
            return Err(format!("the fill modifiers are not supported (in `{bin}`)"));
        }
        let return_bool = modifier.is_some_and(|m| m.return_bool);
        let comparison = bin.op.is_comparison_operator();
        let apply = |a: f64, b: f64| -> Option<f64> {
            let value = match op.as_str() {
                "+" => a + b,
                "-" => a - b,
                "*" => a * b,
                "/" => a / b,
                "%" => a % b,
                "^" => a.powf(b),
                "atan2" => a.atan2(b),
                "==" => f64::from(u8::from(a == b)),
                "!=" => f64::from(u8::from(a != b)),
                ">" => f64::from(u8::from(a > b)),
                "<" => f64::from(u8::from(a < b)),
                ">=" => f64::from(u8::from(a >= b)),
                "<=" => f64::from(u8::from(a <= b)),
                _ => return None,
            };
            Some(value)
        };
        let lhs = self.eval(&bin.lhs, ts)?;
        let rhs = self.eval(&bin.rhs, ts)?;
        // Comparison without bool filters (keeping the left value); with bool it yields 0/1.
        let result = |left: f64, right: f64, keep: f64| -> Option<f64> {
            let value = apply(left, right)?;
            if comparison && !return_bool {
                (value == 1.0).then_some(keep)
            } else {
                Some(value)
            }
        };
        match (lhs, rhs) {
            (Value::Scalar(a), Value::Scalar(b)) => apply(a, b)
                .map(Value::Scalar)
                .ok_or_else(|| format!("operator {op} between scalars")),
            (Value::Vector(v), Value::Scalar(s)) => Ok(scalar_vector(
                v,
                |x| result(x, s, x),
                comparison && !return_bool,
            )),
            (Value::Scalar(s), Value::Vector(v)) => Ok(scalar_vector(
                v,
                |x| result(s, x, x),
                comparison && !return_bool,
            )),
            (Value::Vector(left), Value::Vector(right)) => {
                vector_vector(&op, bin, left, right, &result)
            }
            _ => Err(format!("operator {op} on range vectors")),
        }
    }
}

/// Applies a vector-and-scalar operation to each sample; a filtering comparison keeps the
/// sample's labels, anything else drops the metric name.
fn scalar_vector(v: Vec<(LabelSet, f64)>, f: impl Fn(f64) -> Option<f64>, filter: bool) -> Value {
    Value::Vector(
        v.into_iter()
            .filter_map(|(l, x)| f(x).map(|r| (if filter { l } else { drop_name(l) }, r)))
            .collect(),
    )
}

pub(super) fn signature(labels: &LabelSet, matching: Option<&LabelModifier>) -> LabelSet {
    match matching {
        Some(LabelModifier::Include(names)) => labels
            .iter()
            .filter(|(k, _)| names.labels.contains(k))
            .cloned()
            .collect(),
        Some(LabelModifier::Exclude(names)) => labels
            .iter()
            .filter(|(k, _)| k != "__name__" && !names.labels.contains(k))
            .cloned()
            .collect(),
        None => labels
            .iter()
            .filter(|(k, _)| k != "__name__")
            .cloned()
            .collect(),
    }
}

fn vector_vector(
    op: &str,
    bin: &BinaryExpr,
    left: Vec<(LabelSet, f64)>,
    right: Vec<(LabelSet, f64)>,
    result: &dyn Fn(f64, f64, f64) -> Option<f64>,
) -> Result<Value, String> {
    use promql_parser::parser::VectorMatchCardinality;
    let modifier = bin.modifier.as_ref();
    let matching = modifier.and_then(|m| m.matching.as_ref());
    let filter = bin.op.is_comparison_operator() && !modifier.is_some_and(|m| m.return_bool);
    // Many-to-one (group_left) and one-to-many (group_right): the "many" side keeps its labels,
    // plus the listed labels copied from the "one" side, whose signatures must be unique.
    if let Some(m) = modifier
        && let VectorMatchCardinality::ManyToOne(include)
        | VectorMatchCardinality::OneToMany(include) = &m.card
    {
        let left_is_many = matches!(m.card, VectorMatchCardinality::ManyToOne(_));
        let (many, one) = if left_is_many {
            (left, right)
        } else {
            (right, left)
        };
        let mut one_by: BTreeMap<LabelSet, (LabelSet, f64)> = BTreeMap::new();
        for (labels, value) in one {
            let key = signature(&labels, matching);
            if one_by.insert(key, (labels, value)).is_some() {
                return Err(format!(
                    "{op}: many-to-many matching not allowed: the \"one\" side has duplicate series for a match group"
                ));
            }
        }
        let mut out = Vec::new();
        for (labels, value) in many {
            let Some((one_labels, one_value)) = one_by.get(&signature(&labels, matching)) else {
                continue;
            };
            let (l, r) = if left_is_many {
                (value, *one_value)
            } else {
                (*one_value, value)
            };
            let Some(v) = result(l, r, l) else { continue };
            let mut labels = if filter { labels } else { drop_name(labels) };
            for name in &include.labels {
                labels.retain(|(k, _)| k != name);
                if let Some((_, copied)) = one_labels.iter().find(|(k, _)| k == name) {
                    labels.push((name.clone(), copied.clone()));
                }
            }
            labels.sort();
            out.push((labels, v));
        }
        return Ok(Value::Vector(out));
    }
    match op {
        "and" | "unless" => {
            let right_signatures: BTreeSet<LabelSet> =
                right.iter().map(|(l, _)| signature(l, matching)).collect();
            let keep = op == "and";
            Ok(Value::Vector(
                left.into_iter()
                    .filter(|(l, _)| right_signatures.contains(&signature(l, matching)) == keep)
                    .collect(),
            ))
        }
        "or" => {
            let left_signatures: BTreeSet<LabelSet> =
                left.iter().map(|(l, _)| signature(l, matching)).collect();
            let mut out = left;
            out.extend(
                right
                    .into_iter()
                    .filter(|(l, _)| !left_signatures.contains(&signature(l, matching))),
            );
            Ok(Value::Vector(out))
        }
        _ => {
            let mut right_by: BTreeMap<LabelSet, f64> = BTreeMap::new();
            for (labels, value) in right {
                if right_by
                    .insert(signature(&labels, matching), value)
                    .is_some()
                {
                    return Err(format!(
                        "{op}: found duplicate series for the match group on the right hand-side of the operation; many-to-many matching not allowed: matching labels must be unique on one side"
                    ));
                }
            }
            let mut matched = BTreeSet::new();
            let mut out = Vec::new();
            for (labels, value) in left {
                let signature = signature(&labels, matching);
                let Some(other) = right_by.get(&signature) else {
                    continue;
                };
                let Some(v) = result(value, *other, value) else {
                    continue;
                };
                // Only samples the operation keeps count, as in Prometheus.
                if !matched.insert(signature) {
                    return Err(format!(
                        "{op}: multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)"
                    ));
                }
                // Prometheus' resultMetric: the left side's labels, without the name unless
                // filtering, then only the `on` labels or without the `ignoring` ones.
                let mut labels = if filter { labels } else { drop_name(labels) };
                match matching {
                    Some(LabelModifier::Include(on)) => {
                        labels.retain(|(k, _)| on.labels.contains(k))
                    }
                    Some(LabelModifier::Exclude(ignoring)) => {
                        labels.retain(|(k, _)| !ignoring.labels.contains(k))
                    }
                    None => {}
                }
                out.push((labels, v));
            }
            Ok(Value::Vector(out))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::eval;
    use super::super::test_support::*;

    #[test]
    fn aggregation_comparison_and_set_operators() {
        let at = 20 * 60_000 + 7_500;
        assert_eq!(
            check("sum by (job) (rate(http_requests_total[5m]))", at),
            vec![(r#"[("job", "api")]"#.to_string(), 3.0)]
        );
        assert_eq!(check("up == 0", at).len(), 1);
        assert_eq!(
            check("up == bool 0", at)
                .iter()
                .map(|(_, v)| *v)
                .collect::<Vec<_>>(),
            vec![0.0, 1.0]
        );
        assert_eq!(check("count(up)", at)[0].1, 2.0);
        assert_eq!(
            check(
                r#"rate(http_requests_total[5m]) > 1.5 and on (instance) up == 0"#,
                at
            )
            .len(),
            1
        );
        assert_eq!(
            check(
                r#"up unless on (instance) rate(http_requests_total[5m]) > 1.5"#,
                at
            )
            .len(),
            1
        );
        assert_eq!(check("time()", at)[0].1, at as f64 / 1000.0);
        assert_eq!(
            check(r#"{__name__=~"up|http_requests_total", instance="a"}"#, at).len(),
            2
        );
        assert_eq!(check(r#"{__name__=~"up.*", __name__!="up"}"#, at).len(), 0);
    }

    #[test]
    fn group_left_copies_labels_from_the_one_side() {
        let at = 20 * 60_000 + 7_500;
        // Each rate (many side, by instance) joined with a one-side series per job.
        let joined = check(
            r#"rate(http_requests_total[5m]) * on (job) group_left (team) label_set_is_missing"#,
            at,
        );
        assert!(joined.is_empty(), "no one-side series, no result");
        let joined = check(
            r#"rate(http_requests_total[5m]) * on (instance) group_left () up"#,
            at,
        );
        assert_eq!(
            joined.iter().map(|x| x.1).collect::<Vec<_>>(),
            vec![1.0, 0.0]
        );
        let parsed =
            promql_parser::parser::parse("rate(http_requests_total[5m]) * on (job) group_left up")
                .unwrap_or_else(|e| panic!("{e}"));
        assert!(eval(&history(), &parsed, at).is_err_and(|e| e.contains("many-to-many")));
    }

    #[test]
    fn regression_one_to_one_matching_keeps_on_and_drops_ignoring_labels() {
        assert_eq!(
            check("up == on (instance) up", AT),
            vec![
                (r#"[("instance", "a")]"#.to_string(), 1.0),
                (r#"[("instance", "b")]"#.to_string(), 0.0)
            ]
        );
        assert_eq!(
            check("up > ignoring (job) up - 1", AT)[0].0,
            r#"[("__name__", "up"), ("instance", "a")]"#
        );
        assert_eq!(
            check("up + ignoring (job) up", AT)[0].0,
            r#"[("instance", "a")]"#
        );
        assert!(eval_error("up + on (job) up").contains("duplicate series"));
        assert!(eval_error("up + on (job) sum by (job) (up)").contains("multiple matches"));
        // Only kept samples count: b is filtered out, so a alone matches.
        assert_eq!(check("up > on (job) sum by (job) (up) - 1", AT).len(), 1);
    }
}
