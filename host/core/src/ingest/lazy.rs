//! A JSON object read lazily: its keys are borrowed from the event's text and its values are kept
//! as raw JSON until the validator asks for one. Validation reads about fifteen known fields of an
//! event; building a `serde_json::Value` tree first allocated a string for every key and value and
//! looked fields up in a B-tree map, which was most of the cost of ingesting an event.
//!
//! The semantics are those of `serde_json::Map`: a repeated key keeps its last value.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Number;
use serde_json::value::RawValue;

/// A JSON object with its member values not yet parsed.
#[derive(Debug, Default)]
pub(super) struct Obj<'a> {
    members: Vec<(Cow<'a, str>, &'a RawValue)>,
}

/// One member value, parsed.
#[derive(Debug)]
pub(super) enum Field<'a> {
    Null,
    Bool(bool),
    Number(Number),
    String(Cow<'a, str>),
    Array,
    Object(Obj<'a>),
    /// A well-formed number too large for any Rust number (`1e400`); its text as written.
    OutOfRange(&'a str),
    /// A well-formed string, or an object with a key, that does not decode: a `\u` escape of a
    /// lone surrogate (`"\ud800"`).
    Undecodable,
}

impl<'a> Obj<'a> {
    /// Parses `text`, which must be one JSON object.
    pub(super) fn parse(text: &'a str) -> serde_json::Result<Self> {
        serde_json::from_str(text)
    }

    fn raw(&self, key: &str) -> Option<&'a RawValue> {
        self.members
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| *v)
    }

    pub(super) fn contains_key(&self, key: &str) -> bool {
        self.raw(key).is_some()
    }

    /// The member `key`, parsed; `None` when absent.
    pub(super) fn get(&self, key: &str) -> Option<Field<'a>> {
        self.raw(key).map(Field::parse)
    }

    /// The members in key order, each key once with its last value (as `serde_json::Map` keeps them).
    pub(super) fn entries(&self) -> Vec<(&str, Field<'a>)> {
        let mut sorted: std::collections::BTreeMap<&str, &'a RawValue> = Default::default();
        for (k, v) in &self.members {
            sorted.insert(k, v);
        }
        sorted
            .into_iter()
            .map(|(k, v)| (k, Field::parse(v)))
            .collect()
    }

    /// The number of distinct keys.
    pub(super) fn len(&self) -> usize {
        let mut keys: Vec<&str> = self.members.iter().map(|(k, _)| k.as_ref()).collect();
        keys.sort_unstable();
        keys.dedup();
        keys.len()
    }
}

impl Field<'_> {
    /// Parses a value that serde_json has already checked to be well-formed JSON. What is
    /// well-formed but still cannot be read is said so, never read as `null`.
    fn parse(raw: &RawValue) -> Field<'_> {
        let text = raw.get();
        match text.as_bytes().first() {
            Some(b'n') => Field::Null,
            Some(b't') => Field::Bool(true),
            Some(b'f') => Field::Bool(false),
            Some(b'[') => Field::Array,
            Some(b'"') => serde_json::from_str::<Text>(text)
                .map_or(Field::Undecodable, |t| Field::String(t.0)),
            Some(b'{') => Obj::parse(text).map_or(Field::Undecodable, Field::Object),
            _ => {
                serde_json::from_str::<Number>(text).map_or(Field::OutOfRange(text), Field::Number)
            }
        }
    }

    pub(super) fn is_null(&self) -> bool {
        matches!(self, Field::Null)
    }

    /// How an error message names this value's type.
    pub(super) fn type_name(&self) -> &'static str {
        match self {
            Field::Null => "null",
            Field::Bool(_) => "a boolean",
            Field::Number(_) => "a number",
            Field::String(_) => "a string",
            Field::Array => "an array",
            Field::Object(_) => "an object",
            Field::OutOfRange(_) => "a number out of range",
            Field::Undecodable => "text with an invalid \\u escape (a lone surrogate)",
        }
    }
}

/// A JSON string, borrowed from the input unless it holds escapes.
struct Text<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Obj<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Obj<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(16));
                while let Some((key, value)) = map.next_entry::<Text<'de>, &'de RawValue>()? {
                    members.push((key.0, value));
                }
                Ok(Obj { members })
            }
        }
        d.deserialize_map(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_members_lazily_with_the_last_duplicate_winning() {
        let obj = Obj::parse(
            r#"{"a": "x", "b": 1.5, "a": "y\u0021", "n": null, "o": {"k": [1]}, "t": true}"#,
        )
        .unwrap();
        assert!(matches!(obj.get("a"), Some(Field::String(s)) if s == "y!"));
        assert!(matches!(obj.get("b"), Some(Field::Number(n)) if n.as_f64() == Some(1.5)));
        assert!(obj.get("n").unwrap().is_null());
        assert!(obj.get("missing").is_none());
        assert!(matches!(obj.get("t"), Some(Field::Bool(true))));
        let Some(Field::Object(inner)) = obj.get("o") else {
            panic!("o is an object")
        };
        assert_eq!(inner.get("k").unwrap().type_name(), "an array");
        assert_eq!(obj.len(), 5);
        let keys: Vec<&str> = obj.entries().iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, ["a", "b", "n", "o", "t"]);
    }
}
