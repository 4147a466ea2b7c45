//! The shape of a record: the JSON Schema schemars derives from the types, read into a small tree
//! in declaration order, in the *row form* that Avro and Arrow store.
//!
//! The row form is the JSON form with one change: a field holding an externally tagged enum with
//! data (`ExtValue`: `{"unsigned": 42}`) becomes two columns, the value as text under the field's
//! name and the variant under `<name>_type` (`value: "42"`, `value_type: "unsigned"`), because
//! Parquet and most Avro readers have no unions worth the name.
//!
//! Anything the reader does not understand becomes [`Ty::Json`] (the value as JSON text) and is
//! reported by [`super::shape_problems`]; the tests keep that list empty.

use super::order;
use super::units::{unit_of, Unit};
use serde_json::{Map, Value};

/// A struct in row form.
#[derive(Debug, Clone)]
pub(crate) struct StructShape {
    pub name: String,
    pub description: Option<String>,
    pub columns: Vec<Column>,
}

/// Where a column's value comes from in the JSON form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// The JSON field of the same name, as is.
    Plain,
    /// The payload of the tagged enum in JSON field `json_name`, as text.
    TaggedValue,
    /// The tag of the tagged enum in JSON field `json_name`.
    TaggedType,
}

/// One column (field) of a struct in row form.
#[derive(Debug, Clone)]
pub(crate) struct Column {
    pub name: String,
    pub json_name: String,
    pub source: Source,
    pub description: Option<String>,
    pub nullable: bool,
    pub unit: Option<Unit>,
    pub ty: Ty,
}

/// An enum of strings.
#[derive(Debug, Clone)]
pub(crate) struct EnumShape {
    pub values: Vec<(String, Option<String>)>,
}

/// Column types.
#[derive(Debug, Clone)]
pub(crate) enum Ty {
    Bool,
    /// An integer; `format` is schemars' (`uint8` .. `int64`); `wide` when it needs 64 bits.
    Int {
        format: String,
        wide: bool,
    },
    Float32,
    Float64,
    String,
    /// An IP address in its text form.
    Ip,
    /// UTC milliseconds (an `int64` whose unit is a timestamp).
    Timestamp,
    Enum(EnumShape),
    Struct(StructShape),
    List(Box<Ty>),
    /// Not understood: kept as JSON text.
    Json,
}

struct Reader<'a> {
    defs: &'a Map<String, Value>,
    order: Vec<(String, &'static [&'static str])>,
    problems: Vec<String>,
}

/// Reads the row-form shape of the record whose JSON Schema (as schemars emits it) is `schema`.
pub(crate) fn read(schema: &Value) -> (StructShape, Vec<String>) {
    let empty = Map::new();
    let defs = schema
        .get("$defs")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let mut r = Reader {
        defs,
        order: order::registry(),
        problems: Vec::new(),
    };
    let name = str_of(schema, "title").unwrap_or("Record").to_owned();
    let shape = r.structure(&name, schema, &name);
    (shape, r.problems)
}

fn str_of<'v>(v: &'v Value, key: &str) -> Option<&'v str> {
    v.get(key).and_then(Value::as_str)
}

fn description(v: &Value) -> Option<String> {
    str_of(v, "description").map(str::to_owned)
}

impl<'a> Reader<'a> {
    fn declared(&self, name: &str) -> Option<&'static [&'static str]> {
        self.order
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, list)| *list)
    }

    /// Follows a `$ref` into `$defs`: (the definition, its name).
    fn resolve(&self, node: &Value) -> Option<(&'a Value, String)> {
        let r = str_of(node, "$ref")?;
        let name = r.strip_prefix("#/$defs/")?;
        let def = self.defs.get(name)?;
        Some((def, name.to_owned()))
    }

    fn structure(&mut self, name: &str, node: &Value, path: &str) -> StructShape {
        let empty = Map::new();
        let props = node
            .get("properties")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let mut names: Vec<String> = Vec::new();
        match self.declared(name) {
            Some(list) => {
                for n in list {
                    if props.contains_key(*n) {
                        names.push((*n).to_owned());
                    } else {
                        self.problems
                            .push(format!("{path}: declared field `{n}` not in the schema"));
                    }
                }
                for n in props.keys() {
                    if !names.contains(n) {
                        self.problems.push(format!(
                            "{path}: field `{n}` not in the declaration order; appended"
                        ));
                        names.push(n.clone());
                    }
                }
            }
            None => {
                self.problems.push(format!(
                    "{path}: type `{name}` has no declaration order (add it to published/order.rs)"
                ));
                names.extend(props.keys().cloned());
            }
        }
        let mut columns = Vec::new();
        for n in names {
            if let Some(prop) = props.get(&n) {
                self.field(&n, prop, &format!("{path}.{n}"), &mut columns);
            }
        }
        StructShape {
            name: name.to_owned(),
            description: description(node),
            columns,
        }
    }

    fn field(&mut self, name: &str, prop: &Value, path: &str, out: &mut Vec<Column>) {
        let (inner, nullable) = strip_null(prop);
        let mut desc = description(prop);
        let unit = unit_of(name);
        if name.ends_with("_ms") && unit.is_none() {
            self.problems.push(format!(
                "{path}: `_ms` field missing from the timestamp/duration lists in published/units.rs"
            ));
        }
        if let Some((def, _)) = self.resolve(&inner) {
            if desc.is_none() {
                desc = description(def);
            }
        }
        if let Some(variants) = self.tagged(&inner) {
            let values: Vec<(String, Option<String>)> = variants
                .iter()
                .map(|(t, d)| (t.clone(), d.clone()))
                .collect();
            let value_desc = format!(
                "{} In Avro and Parquet: the value as text, its type in `{name}_type`.",
                desc.as_deref().unwrap_or("A tagged value.")
            );
            out.push(Column {
                name: name.to_owned(),
                json_name: name.to_owned(),
                source: Source::TaggedValue,
                description: Some(value_desc),
                nullable,
                unit,
                ty: Ty::String,
            });
            out.push(Column {
                name: format!("{name}_type"),
                json_name: name.to_owned(),
                source: Source::TaggedType,
                description: Some(format!(
                    "Type of `{name}`: the key of its JSON object. Avro and Parquet only."
                )),
                nullable,
                unit: None,
                ty: Ty::Enum(EnumShape { values }),
            });
            return;
        }
        let ty = self.ty(&inner, name, path, unit);
        out.push(Column {
            name: name.to_owned(),
            json_name: name.to_owned(),
            source: Source::Plain,
            description: desc,
            nullable,
            unit,
            ty,
        });
    }

    /// The variants of an externally tagged enum with data: (tag, description).
    fn tagged(&self, node: &Value) -> Option<Vec<(String, Option<String>)>> {
        let (def, _) = self.resolve(node)?;
        let variants = def.get("oneOf")?.as_array()?;
        let mut out = Vec::new();
        for v in variants {
            let props = v.get("properties")?.as_object()?;
            if props.len() != 1 {
                return None;
            }
            let (tag, _) = props.iter().next()?;
            out.push((tag.clone(), description(v)));
        }
        Some(out)
    }

    fn ty(&mut self, node: &Value, name: &str, path: &str, unit: Option<Unit>) -> Ty {
        if let Some((def, def_name)) = self.resolve(node) {
            return self.ty_of_def(def, &def_name, path);
        }
        match str_of(node, "type") {
            Some("boolean") => Ty::Bool,
            Some("integer") => {
                let format = str_of(node, "format").unwrap_or("int64").to_owned();
                let wide = !matches!(
                    format.as_str(),
                    "uint8" | "int8" | "uint16" | "int16" | "int32"
                );
                if unit.is_some_and(|u| u.timestamp) {
                    if format != "int64" {
                        self.problems
                            .push(format!("{path}: timestamp `{name}` is not an i64"));
                    }
                    Ty::Timestamp
                } else {
                    Ty::Int { format, wide }
                }
            }
            Some("number") => match str_of(node, "format") {
                Some("float") => Ty::Float32,
                _ => Ty::Float64,
            },
            Some("string") => match (str_of(node, "format"), node.get("enum")) {
                (_, Some(Value::Array(vals))) => Ty::Enum(EnumShape {
                    values: vals
                        .iter()
                        .filter_map(Value::as_str)
                        .map(|s| (s.to_owned(), None))
                        .collect(),
                }),
                (Some("ip"), _) => Ty::Ip,
                _ => Ty::String,
            },
            Some("array") => match node.get("items") {
                Some(items) => Ty::List(Box::new(self.ty(items, name, path, None))),
                None => self.unknown(path, node),
            },
            Some("object") if node.get("properties").is_some() => {
                Ty::Struct(self.structure(name, node, path))
            }
            _ => self.unknown(path, node),
        }
    }

    fn ty_of_def(&mut self, def: &Value, def_name: &str, path: &str) -> Ty {
        if def.get("properties").is_some() {
            return Ty::Struct(self.structure(def_name, def, path));
        }
        // A unit-only enum: `enum` of strings, or `oneOf` of `const`/`enum` strings when some
        // variants carry doc comments.
        let mut values: Vec<(String, Option<String>)> = Vec::new();
        if let Some(Value::Array(vals)) = def.get("enum") {
            values.extend(
                vals.iter()
                    .filter_map(Value::as_str)
                    .map(|s| (s.into(), None)),
            );
        } else if let Some(Value::Array(alts)) = def.get("oneOf") {
            for alt in alts {
                if let Some(c) = str_of(alt, "const") {
                    values.push((c.to_owned(), description(alt)));
                } else if let Some(Value::Array(vals)) = alt.get("enum") {
                    let d = description(alt);
                    values.extend(
                        vals.iter()
                            .filter_map(Value::as_str)
                            .map(|s| (s.to_owned(), d.clone())),
                    );
                } else {
                    return self.unknown(path, def);
                }
            }
        } else {
            return self.ty(def, def_name, path, None);
        }
        if let Some(list) = self.declared(def_name) {
            values.sort_by_key(|(v, _)| list.iter().position(|n| n == v).unwrap_or(usize::MAX));
        }
        Ty::Enum(EnumShape { values })
    }

    fn unknown(&mut self, path: &str, node: &Value) -> Ty {
        self.problems.push(format!(
            "{path}: schema not understood, kept as JSON text: {node}"
        ));
        Ty::Json
    }
}

/// Splits `Option<T>`: (the schema of T, whether null is allowed). schemars writes
/// `"type": [T, "null"]` for primitives and `anyOf: [T, {"type": "null"}]` for references.
fn strip_null(node: &Value) -> (Value, bool) {
    if let Some(Value::Array(types)) = node.get("type") {
        let rest: Vec<&Value> = types
            .iter()
            .filter(|t| t.as_str() != Some("null"))
            .collect();
        if rest.len() < types.len() {
            let mut n = node.clone();
            if let (Some(obj), [only]) = (n.as_object_mut(), rest.as_slice()) {
                obj.insert("type".into(), (*only).clone());
            }
            return (n, true);
        }
    }
    if let Some(Value::Array(alts)) = node.get("anyOf") {
        let is_null = |v: &Value| str_of(v, "type") == Some("null");
        let rest: Vec<&Value> = alts.iter().filter(|v| !is_null(v)).collect();
        if let [only] = rest.as_slice() {
            if rest.len() < alts.len() {
                return ((*only).clone(), true);
            }
        }
    }
    (node.clone(), false)
}
