//! Short enum names in the YAML `apply` reads: `CUSTOMER` for
//! `PARTY_KIND_CUSTOMER`. prost-reflect reads enum values by their full
//! name only, so the YAML deserializer is wrapped in one that follows the
//! message's descriptor down the document and, where an enum value is read,
//! spells a short name in full before prost-reflect sees it. Everything
//! else passes through untouched, errors keep their place in the file.

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;

use prost_reflect::{DynamicMessage, EnumDescriptor, FieldDescriptor, Kind, MessageDescriptor};
use serde::de::{self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, Visitor};

/// Reads a message of `descriptor`, its enum values by full or short name.
pub struct MessageSeed(pub MessageDescriptor);

impl<'de> DeserializeSeed<'de> for MessageSeed {
    type Value = DynamicMessage;

    fn deserialize<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<DynamicMessage, D::Error> {
        let shape = Shape::Message(self.0.clone());
        self.0.deserialize(Shaped {
            inner: deserializer,
            shape,
        })
    }
}

/// What the value being read is, as far as enums are concerned.
#[derive(Clone)]
enum Shape {
    Message(MessageDescriptor),
    Enum(EnumDescriptor),
    List(Box<Shape>),
    /// A proto map field: its values' shape.
    Map(Box<Shape>),
    /// A message's field name, kept so the value after it is known.
    Key(Rc<RefCell<Option<String>>>),
    Other,
}

impl Shape {
    fn of_kind(kind: Kind) -> Shape {
        match kind {
            Kind::Message(m) => Shape::Message(m),
            Kind::Enum(e) => Shape::Enum(e),
            _ => Shape::Other,
        }
    }

    fn of_field(field: &FieldDescriptor) -> Shape {
        match field.kind() {
            Kind::Message(entry) if field.is_map() => Shape::Map(Box::new(Shape::of_kind(
                entry.map_entry_value_field().kind(),
            ))),
            kind if field.is_list() => Shape::List(Box::new(Shape::of_kind(kind))),
            kind => Shape::of_kind(kind),
        }
    }
}

/// The enum's name in upper snake case, as its values start: `PartyKind`
/// → `PARTY_KIND`.
fn value_prefix(enum_name: &str) -> String {
    let mut prefix = String::new();
    for (i, c) in enum_name.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            prefix.push('_');
        }
        prefix.push(c.to_ascii_uppercase());
    }
    prefix
}

/// `text` as prost-reflect reads it: a full name as it is, a short name
/// with its enum's prefix; an error listing the accepted short names when
/// it is neither.
fn in_full(e: &EnumDescriptor, text: &str) -> Result<Option<String>, String> {
    if e.get_value_by_name(text).is_some() {
        return Ok(None);
    }
    let prefix = format!("{}_", value_prefix(e.name()));
    let full = format!("{prefix}{text}");
    if e.get_value_by_name(&full).is_some() {
        return Ok(Some(full));
    }
    let names: Vec<String> = e
        .values()
        .filter(|v| v.number() != 0)
        .map(|v| {
            let name = v.name();
            name.strip_prefix(&prefix).unwrap_or(name).to_string()
        })
        .collect();
    let example = e
        .values()
        .find(|v| v.number() != 0)
        .map(|v| format!(", or in full as {}", v.name()))
        .unwrap_or_default();
    Err(format!(
        "unrecognized enum value '{text}' for {}: expected one of {}{example}",
        e.name(),
        names.join(", ")
    ))
}

/// A deserializer that hands prost-reflect's visitors a `ShapedVisitor`.
struct Shaped<D> {
    inner: D,
    shape: Shape,
}

macro_rules! forward_deserialize {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, D::Error> {
                self.inner.$method($($arg,)* ShapedVisitor { inner: visitor, shape: self.shape })
            }
        )*
    };
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Shaped<D> {
    type Error = D::Error;

    forward_deserialize! {
        deserialize_any();
        deserialize_bool();
        deserialize_i8();
        deserialize_i16();
        deserialize_i32();
        deserialize_i64();
        deserialize_i128();
        deserialize_u8();
        deserialize_u16();
        deserialize_u32();
        deserialize_u64();
        deserialize_u128();
        deserialize_f32();
        deserialize_f64();
        deserialize_char();
        deserialize_str();
        deserialize_string();
        deserialize_bytes();
        deserialize_byte_buf();
        deserialize_option();
        deserialize_unit();
        deserialize_unit_struct(name: &'static str);
        deserialize_newtype_struct(name: &'static str);
        deserialize_seq();
        deserialize_tuple(len: usize);
        deserialize_tuple_struct(name: &'static str, len: usize);
        deserialize_map();
        deserialize_struct(name: &'static str, fields: &'static [&'static str]);
        deserialize_enum(name: &'static str, variants: &'static [&'static str]);
        deserialize_identifier();
        deserialize_ignored_any();
    }

    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}

/// A visitor that spells enum values in full, notes field names, and
/// passes the shape of what is inside a mapping or a sequence on.
struct ShapedVisitor<V> {
    inner: V,
    shape: Shape,
}

impl<V> ShapedVisitor<V> {
    /// The text to hand on: spelled in full for an enum, noted for a key.
    fn text<E: de::Error>(&self, text: &str) -> Result<Option<String>, E> {
        match &self.shape {
            Shape::Enum(e) => in_full(e, text).map_err(E::custom),
            Shape::Key(slot) => {
                *slot.borrow_mut() = Some(text.to_string());
                Ok(None)
            }
            _ => Ok(None),
        }
    }
}

macro_rules! forward_visit {
    ($($method:ident($ty:ty);)*) => {
        $(
            fn $method<E: de::Error>(self, v: $ty) -> Result<V::Value, E> {
                self.inner.$method(v)
            }
        )*
    };
}

impl<'de, V: Visitor<'de>> Visitor<'de> for ShapedVisitor<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        self.inner.expecting(f)
    }

    forward_visit! {
        visit_bool(bool);
        visit_i8(i8);
        visit_i16(i16);
        visit_i32(i32);
        visit_i64(i64);
        visit_i128(i128);
        visit_u8(u8);
        visit_u16(u16);
        visit_u32(u32);
        visit_u64(u64);
        visit_u128(u128);
        visit_f32(f32);
        visit_f64(f64);
        visit_char(char);
        visit_bytes(&[u8]);
        visit_borrowed_bytes(&'de [u8]);
        visit_byte_buf(Vec<u8>);
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<V::Value, E> {
        match self.text(v)? {
            Some(full) => self.inner.visit_string(full),
            None => self.inner.visit_str(v),
        }
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<V::Value, E> {
        match self.text(v)? {
            Some(full) => self.inner.visit_string(full),
            None => self.inner.visit_borrowed_str(v),
        }
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<V::Value, E> {
        match self.text(&v)? {
            Some(full) => self.inner.visit_string(full),
            None => self.inner.visit_string(v),
        }
    }

    fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
        self.inner.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
        self.inner.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<V::Value, D::Error> {
        self.inner.visit_some(Shaped {
            inner: deserializer,
            shape: self.shape,
        })
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<V::Value, D::Error> {
        self.inner.visit_newtype_struct(Shaped {
            inner: deserializer,
            shape: self.shape,
        })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
        let items = match self.shape {
            Shape::List(items) => *items,
            _ => Shape::Other,
        };
        self.inner.visit_seq(ShapedSeq { inner: seq, items })
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        let fields = match self.shape {
            Shape::Message(m) => Fields::Of(m),
            Shape::Map(values) => Fields::All(*values),
            _ => Fields::All(Shape::Other),
        };
        self.inner.visit_map(ShapedMap {
            inner: map,
            fields,
            next: Shape::Other,
        })
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<V::Value, A::Error> {
        self.inner.visit_enum(data)
    }
}

/// Passes each element of a sequence its shape.
struct ShapedSeq<A> {
    inner: A,
    items: Shape,
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for ShapedSeq<A> {
    type Error = A::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, A::Error> {
        self.inner.next_element_seed(ShapedSeed {
            inner: seed,
            shape: self.items.clone(),
        })
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

/// The values of a mapping: a message's fields, by the name read before
/// each, or a proto map's values, all of one shape.
enum Fields {
    Of(MessageDescriptor),
    All(Shape),
}

struct ShapedMap<A> {
    inner: A,
    fields: Fields,
    /// The shape of the value after the key just read.
    next: Shape,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for ShapedMap<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        let slot = Rc::new(RefCell::new(None));
        let key = self.inner.next_key_seed(ShapedSeed {
            inner: seed,
            shape: Shape::Key(slot.clone()),
        })?;
        let name = slot.borrow_mut().take();
        self.next = match &self.fields {
            Fields::All(values) => values.clone(),
            Fields::Of(message) => name
                .and_then(|n| {
                    message
                        .get_field_by_name(&n)
                        .or_else(|| message.get_field_by_json_name(&n))
                })
                .map_or(Shape::Other, |f| Shape::of_field(&f)),
        };
        Ok(key)
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, A::Error> {
        let shape = std::mem::replace(&mut self.next, Shape::Other);
        self.inner
            .next_value_seed(ShapedSeed { inner: seed, shape })
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

struct ShapedSeed<S> {
    inner: S,
    shape: Shape,
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for ShapedSeed<S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<S::Value, D::Error> {
        self.inner.deserialize(Shaped {
            inner: deserializer,
            shape: self.shape,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::reflect::descriptor;

    #[test]
    fn the_prefix_is_the_enum_name_in_upper_snake_case() {
        assert_eq!(value_prefix("PartyKind"), "PARTY_KIND");
        assert_eq!(value_prefix("Comparison"), "COMPARISON");
        assert_eq!(value_prefix("DayOfWeek"), "DAY_OF_WEEK");
    }

    #[test]
    fn a_short_name_is_spelled_in_full_and_a_full_one_kept() {
        let Some(field) = descriptor("Party").get_field_by_name("kind") else {
            panic!("Party has a kind")
        };
        let Kind::Enum(kind) = field.kind() else {
            panic!("an enum")
        };
        assert_eq!(
            in_full(&kind, "CUSTOMER"),
            Ok(Some("PARTY_KIND_CUSTOMER".to_string()))
        );
        assert_eq!(in_full(&kind, "PARTY_KIND_CUSTOMER"), Ok(None));
        let error = in_full(&kind, "customer").unwrap_err();
        assert!(
            error.contains("expected one of PROVIDER, CUSTOMER"),
            "{error}"
        );
    }
}
