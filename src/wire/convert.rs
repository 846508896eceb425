//! JSON ⇄ `google.protobuf.Struct`, the shape of a caller's free-form context on the wire.

use prost_types::value::Kind;
use serde_json::{Map, Number, Value};

/// Converts a protobuf `Struct` to JSON, refusing nesting past the context bound early (the
/// precise size and depth checks follow in the decision service).
pub fn struct_to_json(s: &prost_types::Struct) -> Result<Map<String, Value>, String> {
    fn value(v: &prost_types::Value, depth: usize) -> Result<Value, String> {
        if depth > super::MAX_CONTEXT_DEPTH {
            return Err(format!(
                "context is nested deeper than {}",
                super::MAX_CONTEXT_DEPTH
            ));
        }
        Ok(match &v.kind {
            None | Some(Kind::NullValue(_)) => Value::Null,
            Some(Kind::BoolValue(b)) => Value::Bool(*b),
            Some(Kind::StringValue(s)) => Value::String(s.clone()),
            Some(Kind::NumberValue(n)) => {
                if n.fract() == 0.0 && n.abs() < 9.0e15 {
                    Value::Number(Number::from(*n as i64))
                } else {
                    Number::from_f64(*n).map_or(Value::Null, Value::Number)
                }
            }
            Some(Kind::ListValue(l)) => Value::Array(
                l.values
                    .iter()
                    .map(|x| value(x, depth + 1))
                    .collect::<Result<_, _>>()?,
            ),
            Some(Kind::StructValue(s)) => Value::Object(object(s, depth)?),
        })
    }
    fn object(s: &prost_types::Struct, depth: usize) -> Result<Map<String, Value>, String> {
        s.fields
            .iter()
            .map(|(k, v)| Ok((k.clone(), value(v, depth + 1)?)))
            .collect()
    }
    object(s, 1)
}

/// Converts a JSON object to a protobuf `Struct` (numbers become doubles, as protobuf has no
/// integers in `Struct`; whole numbers come back as integers in [`struct_to_json`]).
pub fn json_to_struct(map: &Map<String, Value>) -> prost_types::Struct {
    fn value(v: &Value) -> prost_types::Value {
        let kind = match v {
            Value::Null => Kind::NullValue(0),
            Value::Bool(b) => Kind::BoolValue(*b),
            Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
            Value::String(s) => Kind::StringValue(s.clone()),
            Value::Array(a) => Kind::ListValue(prost_types::ListValue {
                values: a.iter().map(value).collect(),
            }),
            Value::Object(o) => Kind::StructValue(json_to_struct(o)),
        };
        prost_types::Value { kind: Some(kind) }
    }
    prost_types::Struct {
        fields: map.iter().map(|(k, v)| (k.clone(), value(v))).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_keeps_whole_numbers_whole() {
        let v = serde_json::json!({ "fraud_score": 12, "ip": "10.0.0.1", "ratio": 0.5, "tags": ["a"], "nested": { "ok": true } });
        let Value::Object(map) = v.clone() else {
            unreachable!()
        };
        assert_eq!(
            Value::Object(struct_to_json(&json_to_struct(&map)).unwrap()),
            v
        );
    }
}
