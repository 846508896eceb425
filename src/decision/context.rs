//! JSON values typed by the schema's declared shapes into Cedar restricted expressions.
//! Attributes the schema does not declare are dropped: no validated policy can read them.

use std::net::IpAddr;

use cedar_policy::{EntityId, EntityUid, RestrictedExpression};
use serde_json::{Map, Value};

use crate::policy::{AttrType, RecordShape};

pub use crate::wire::MAX_CONTEXT_DEPTH;
/// Largest caller context accepted, counted as its JSON size.
pub const MAX_CONTEXT_BYTES: usize = 64 * 1024;

/// How strictly values must match their declared type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The caller's context: a mismatch is an invalid request.
    Strict,
    /// Verified token claims: a scalar fills a `Set`, and a mismatched optional attribute is
    /// left out rather than failing the request.
    Lenient,
}

/// Checks a caller's context against the size and depth bounds.
pub fn check_bounds(context: &Map<String, Value>) -> Result<(), String> {
    let mut budget = MAX_CONTEXT_BYTES as isize;
    fn walk(v: &Value, depth: usize, budget: &mut isize) -> Result<(), String> {
        if depth > MAX_CONTEXT_DEPTH {
            return Err(format!("context is nested deeper than {MAX_CONTEXT_DEPTH}"));
        }
        *budget -= match v {
            Value::String(s) => s.len() as isize + 2,
            Value::Number(_) => 24,
            _ => 5,
        };
        if *budget < 0 {
            return Err(format!("context is larger than {MAX_CONTEXT_BYTES} bytes"));
        }
        match v {
            Value::Array(a) => a.iter().try_for_each(|x| walk(x, depth + 1, budget)),
            Value::Object(o) => o.iter().try_for_each(|(k, x)| {
                *budget -= k.len() as isize + 3;
                walk(x, depth + 1, budget)
            }),
            _ => Ok(()),
        }
    }
    for (k, v) in context {
        budget -= k.len() as isize + 3;
        walk(v, 2, &mut budget)?;
    }
    Ok(())
}

/// Converts a JSON object into record fields by a declared shape.
pub fn record_fields(
    value: &Map<String, Value>,
    shape: &RecordShape,
    mode: Mode,
    field: &str,
) -> Result<Vec<(String, RestrictedExpression)>, String> {
    record_fields_except(value, shape, mode, field, None)
}

/// Like [`record_fields`], leaving out the declared attribute `except` (read, typed and
/// required as if the shape did not declare it).
pub fn record_fields_except(
    value: &Map<String, Value>,
    shape: &RecordShape,
    mode: Mode,
    field: &str,
    except: Option<&str>,
) -> Result<Vec<(String, RestrictedExpression)>, String> {
    let mut out = Vec::with_capacity(shape.attrs.len());
    for (name, ty, required) in &shape.attrs {
        if except == Some(name.as_str()) {
            continue;
        }
        match value.get(name) {
            Some(v) => match to_expr(v, ty, mode, &join(field, name)) {
                Ok(e) => out.push((name.clone(), e)),
                Err(_) if mode == Mode::Lenient && !required => {}
                Err(e) => return Err(e),
            },
            None if *required => {
                return Err(format!("`{}` is required by the schema", join(field, name)))
            }
            None => {}
        }
    }
    Ok(out)
}

/// Converts one JSON value to the declared type.
pub fn to_expr(
    v: &Value,
    ty: &AttrType,
    mode: Mode,
    field: &str,
) -> Result<RestrictedExpression, String> {
    let mismatch = |what: &str| format!("`{field}` must be {what}");
    match ty {
        AttrType::String => v
            .as_str()
            .map(|s| RestrictedExpression::new_string(s.to_owned()))
            .ok_or_else(|| mismatch("a string")),
        AttrType::Bool => v
            .as_bool()
            .map(RestrictedExpression::new_bool)
            .ok_or_else(|| mismatch("a boolean")),
        AttrType::Long => whole_number(v)
            .map(RestrictedExpression::new_long)
            .ok_or_else(|| mismatch("a whole number")),
        AttrType::Set(element) => match v {
            Value::Array(items) => items
                .iter()
                .map(|x| to_expr(x, element, mode, field))
                .collect::<Result<Vec<_>, _>>()
                .map(RestrictedExpression::new_set),
            scalar if mode == Mode::Lenient => Ok(RestrictedExpression::new_set([to_expr(
                scalar, element, mode, field,
            )?])),
            _ => Err(mismatch("a list")),
        },
        AttrType::Record(shape) => match v {
            Value::Object(map) => {
                RestrictedExpression::new_record(record_fields(map, shape, mode, field)?)
                    .map_err(|e| format!("`{field}`: {e}"))
            }
            _ => Err(mismatch("an object")),
        },
        AttrType::Entity(type_name) => {
            let id = v.as_str().ok_or_else(|| mismatch("an entity id string"))?;
            Ok(RestrictedExpression::new_entity_uid(entity_uid(
                type_name, id,
            )?))
        }
        AttrType::Extension(name) => {
            let text: std::borrow::Cow<'_, str> = match v {
                Value::String(s) => s.as_str().into(),
                Value::Number(n) if name == "decimal" => decimal_from_number(n)
                    .ok_or_else(|| mismatch("a decimal"))?
                    .into(),
                _ => return Err(mismatch(&format!("a string holding an `{name}`"))),
            };
            let kind = match name.as_str() {
                "ipaddr" if is_ip_or_cidr(&text) => Extension::Ip,
                "ipaddr" => return Err(mismatch("an IP address or CIDR range")),
                "decimal" if is_decimal(&text) => Extension::Decimal,
                "decimal" => return Err(mismatch("a decimal with at most 4 fractional digits")),
                "datetime" => Extension::Datetime,
                "duration" => Extension::Duration,
                other => {
                    return Err(format!(
                        "`{field}`: extension type `{other}` is not supported"
                    ))
                }
            };
            Ok(EXTENSION_VALUES.get(kind, &text))
        }
    }
}

/// The extension types a context value can have.
#[derive(Debug, Clone, Copy)]
enum Extension {
    Ip,
    Decimal,
    Datetime,
    Duration,
}

/// Extension values by their text. cedar-policy's `RestrictedExpression::new_ip` (and
/// `new_decimal`, `new_datetime`, `new_duration`) parses the extension function's *name*
/// with the full Cedar grammar on every call: 8.7 % of the server's samples under
/// `benches/wire.sh` (18 % in issue 15's profile) when every request carries an `ip`, as
/// gateways send. The same few addresses come again and again, so each
/// value is built once and then cloned (reference-count bumps); the caches are bounded and
/// evict in O(1), so made-up values cost a build each, never memory.
struct ExtensionValues {
    by_kind: [quick_cache::sync::Cache<Box<str>, RestrictedExpression>; 4],
}

/// Values kept per extension type.
const EXTENSION_VALUES_KEPT: usize = 4096;

static EXTENSION_VALUES: std::sync::LazyLock<ExtensionValues> =
    std::sync::LazyLock::new(|| ExtensionValues {
        by_kind: std::array::from_fn(|_| quick_cache::sync::Cache::new(EXTENSION_VALUES_KEPT)),
    });

impl ExtensionValues {
    /// The expression constructing `text` as a `kind` value (validated by the caller).
    fn get(&self, kind: Extension, text: &str) -> RestrictedExpression {
        let cache = &self.by_kind[kind as usize];
        if let Some(value) = cache.get(text) {
            return value;
        }
        let value = match kind {
            Extension::Ip => RestrictedExpression::new_ip(text),
            Extension::Decimal => RestrictedExpression::new_decimal(text),
            Extension::Datetime => RestrictedExpression::new_datetime(text),
            Extension::Duration => RestrictedExpression::new_duration(text),
        };
        cache.insert(text.into(), value.clone());
        value
    }
}

/// `Type::"id"`.
pub fn entity_uid(type_name: &str, id: &str) -> Result<EntityUid, String> {
    let ty = type_name
        .parse()
        .map_err(|_| format!("`{type_name}` is not a valid entity type name"))?;
    Ok(EntityUid::from_type_name_and_id(ty, EntityId::new(id)))
}

fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_owned()
    } else {
        format!("{parent}.{name}")
    }
}

fn whole_number(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| {
            let f = n.as_f64()?;
            // protobuf Struct numbers are doubles: accept exact integers in i64 range
            (f.fract() == 0.0 && (-9.2e18..=9.2e18).contains(&f)).then_some(f as i64)
        }),
        _ => None,
    }
}

fn decimal_from_number(n: &serde_json::Number) -> Option<String> {
    let f = n.as_f64()?;
    let s = format!("{f:.4}");
    let trimmed = s.trim_end_matches('0');
    Some(if trimmed.ends_with('.') {
        format!("{trimmed}0")
    } else {
        trimmed.to_owned()
    })
}

fn is_decimal(s: &str) -> bool {
    let digits = s.strip_prefix('-').unwrap_or(s);
    match digits.split_once('.') {
        Some((int, frac)) => {
            !int.is_empty()
                && int.bytes().all(|b| b.is_ascii_digit())
                && (1..=4).contains(&frac.len())
                && frac.bytes().all(|b| b.is_ascii_digit())
        }
        None => false,
    }
}

fn is_ip_or_cidr(s: &str) -> bool {
    match s.split_once('/') {
        Some((addr, len)) => match (addr.parse::<IpAddr>(), len.parse::<u8>()) {
            (Ok(IpAddr::V4(_)), Ok(l)) => l <= 32,
            (Ok(IpAddr::V6(_)), Ok(l)) => l <= 128,
            _ => false,
        },
        None => s.parse::<IpAddr>().is_ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn types_values_by_shape() {
        assert!(to_expr(&json!(42.0), &AttrType::Long, Mode::Strict, "n").is_ok());
        assert!(to_expr(&json!(4.5), &AttrType::Long, Mode::Strict, "n").is_err());
        assert!(to_expr(
            &json!("10.0.0.1"),
            &AttrType::Extension("ipaddr".into()),
            Mode::Strict,
            "ip"
        )
        .is_ok());
        assert!(to_expr(
            &json!("10.0.0.0/8"),
            &AttrType::Extension("ipaddr".into()),
            Mode::Strict,
            "ip"
        )
        .is_ok());
        assert!(to_expr(
            &json!("not-an-ip"),
            &AttrType::Extension("ipaddr".into()),
            Mode::Strict,
            "ip"
        )
        .is_err());
        let set = AttrType::Set(Box::new(AttrType::String));
        assert!(to_expr(&json!("api"), &set, Mode::Strict, "aud").is_err());
        assert!(to_expr(&json!("api"), &set, Mode::Lenient, "aud").is_ok());
        assert!(to_expr(
            &json!(1.5),
            &AttrType::Extension("decimal".into()),
            Mode::Strict,
            "d"
        )
        .is_ok());
    }

    #[test]
    fn enforces_depth_and_size() {
        let mut deep = json!(1);
        for _ in 0..9 {
            deep = json!({ "x": deep });
        }
        let Value::Object(map) = deep else {
            unreachable!()
        };
        assert!(check_bounds(&map).unwrap_err().contains("deeper"));
        let big = json!({ "x": "a".repeat(70_000) });
        let Value::Object(map) = big else {
            unreachable!()
        };
        assert!(check_bounds(&map).unwrap_err().contains("larger"));
    }
}
