//! The shapes the schema declares for each action's context and each entity type's
//! attributes, read once at load time. The decision path uses them to type the caller's
//! free-form context (a JSON number becomes a Long, a string an `ipaddr`, …) and to drop
//! what no validated policy can read.

use std::collections::HashMap;

use cedar_policy::SchemaFragment;
use serde_json::{Map, Value};

/// Common-type references deeper than this are treated as a schema error (cycles).
const MAX_TYPE_DEPTH: usize = 32;

/// One attribute type, as far as building a request needs to know it.
#[derive(Debug, Clone, PartialEq)]
pub enum AttrType {
    /// `String`
    String,
    /// `Long`
    Long,
    /// `Bool`
    Bool,
    /// `Set<T>`
    Set(Box<AttrType>),
    /// A record with declared attributes.
    Record(RecordShape),
    /// A reference to an entity of the named type.
    Entity(String),
    /// An extension type: `ipaddr`, `decimal`, `datetime` or `duration`.
    Extension(String),
}

/// A record's declared attributes (records in Cedar are closed: nothing else may appear).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RecordShape {
    /// Attribute name, type, and whether it is required.
    pub attrs: Vec<(String, AttrType, bool)>,
}

impl RecordShape {
    /// The declared type of an attribute.
    pub fn get(&self, name: &str) -> Option<(&AttrType, bool)> {
        self.attrs
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, t, r)| (t, *r))
    }
}

/// Context shapes by action id and attribute shapes by entity type, for the empty namespace.
#[derive(Debug, Clone, Default)]
pub struct SchemaShapes {
    /// `"GET"` → the declared shape of its context.
    pub contexts: HashMap<String, RecordShape>,
    /// `"User"` → the declared attributes of a `User`.
    pub entities: HashMap<String, RecordShape>,
}

impl SchemaShapes {
    /// Reads the shapes from a parsed schema fragment.
    pub fn from_fragment(fragment: SchemaFragment) -> Result<Self, String> {
        let json = fragment
            .to_json_value()
            .map_err(|e| format!("cannot read schema shapes: {e}"))?;
        let Some(ns) = json.get("") else {
            return Ok(Self::default());
        };
        let empty = Map::new();
        let common = ns
            .get("commonTypes")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let entity_types = ns
            .get("entityTypes")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let resolver = Resolver {
            common,
            entity_types,
        };
        let mut shapes = Self::default();
        for (name, def) in entity_types {
            let shape = match def.get("shape") {
                Some(t) => match resolver.resolve(t, 0)? {
                    AttrType::Record(r) => r,
                    _ => RecordShape::default(),
                },
                None => RecordShape::default(),
            };
            shapes.entities.insert(name.clone(), shape);
        }
        if let Some(actions) = ns.get("actions").and_then(Value::as_object) {
            for (name, def) in actions {
                let shape = match def.pointer("/appliesTo/context") {
                    Some(t) => match resolver.resolve(t, 0)? {
                        AttrType::Record(r) => r,
                        _ => return Err(format!("context of action `{name}` is not a record")),
                    },
                    None => RecordShape::default(),
                };
                shapes.contexts.insert(name.clone(), shape);
            }
        }
        Ok(shapes)
    }
}

struct Resolver<'a> {
    common: &'a Map<String, Value>,
    entity_types: &'a Map<String, Value>,
}

impl Resolver<'_> {
    fn resolve(&self, ty: &Value, depth: usize) -> Result<AttrType, String> {
        if depth > MAX_TYPE_DEPTH {
            return Err("schema common types nest too deeply (a cycle?)".into());
        }
        let kind = ty.get("type").and_then(Value::as_str).unwrap_or_default();
        match kind {
            "Record" => {
                let mut attrs = Vec::new();
                if let Some(map) = ty.get("attributes").and_then(Value::as_object) {
                    for (name, attr) in map {
                        let required = attr
                            .get("required")
                            .and_then(Value::as_bool)
                            .unwrap_or(true);
                        attrs.push((name.clone(), self.resolve(attr, depth + 1)?, required));
                    }
                }
                Ok(AttrType::Record(RecordShape { attrs }))
            }
            "Set" => {
                let element = ty.get("element").ok_or("set type without element")?;
                Ok(AttrType::Set(Box::new(self.resolve(element, depth + 1)?)))
            }
            "Entity" => Ok(AttrType::Entity(name_of(ty)?.to_owned())),
            "Extension" => Ok(AttrType::Extension(name_of(ty)?.to_owned())),
            "EntityOrCommon" => self.named(name_of(ty)?, depth),
            other => self.named(other, depth),
        }
    }

    fn named(&self, name: &str, depth: usize) -> Result<AttrType, String> {
        let bare = name.strip_prefix("__cedar::").unwrap_or(name);
        if let Some(def) = self.common.get(name) {
            return self.resolve(def, depth + 1);
        }
        match bare {
            "String" => Ok(AttrType::String),
            "Long" => Ok(AttrType::Long),
            "Bool" | "Boolean" => Ok(AttrType::Bool),
            "ipaddr" | "decimal" | "datetime" | "duration" => {
                Ok(AttrType::Extension(bare.to_owned()))
            }
            _ if self.entity_types.contains_key(name) => Ok(AttrType::Entity(name.to_owned())),
            _ => Err(format!("unknown type `{name}` in schema")),
        }
    }
}

fn name_of(ty: &Value) -> Result<&str, String> {
    ty.get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| "schema type without a name".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_common_types_extensions_and_entities() {
        let src = r#"
            entity Client { name?: String };
            type Claims = { iss: String, exp: Long, aud?: Set<String> };
            action GET appliesTo { principal: [Client], resource: [Client],
              context: { scopes: Set<String>, token?: Claims, ip?: ipaddr, client?: Client, ok?: Bool } };
        "#;
        let (fragment, _) = SchemaFragment::from_cedarschema_str(src).unwrap();
        let shapes = SchemaShapes::from_fragment(fragment).unwrap();
        let ctx = &shapes.contexts["GET"];
        assert_eq!(
            ctx.get("scopes"),
            Some((&AttrType::Set(Box::new(AttrType::String)), true))
        );
        assert_eq!(
            ctx.get("ip"),
            Some((&AttrType::Extension("ipaddr".into()), false))
        );
        assert_eq!(
            ctx.get("client"),
            Some((&AttrType::Entity("Client".into()), false))
        );
        assert_eq!(ctx.get("ok"), Some((&AttrType::Bool, false)));
        let Some((AttrType::Record(token), false)) = ctx.get("token") else {
            panic!("token should be an optional record");
        };
        assert_eq!(token.get("exp"), Some((&AttrType::Long, true)));
        assert_eq!(
            shapes.entities["Client"].get("name"),
            Some((&AttrType::String, false))
        );
    }
}
