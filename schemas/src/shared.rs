//! [`Shared`]: a value behind an `Arc` that serialises, deserialises and describes itself (JSON
//! Schema) exactly as the value would, so a record can share a block with others (the join hands
//! one application block to every super-flow of a flow) without changing its published form.

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Cow;
use std::ops::Deref;
use std::sync::Arc;

/// `T` shared through an `Arc`; transparent to serde and schemars. Cloning it copies a pointer.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Shared<T>(pub Arc<T>);

impl<T> Shared<T> {
    /// Wraps a value.
    pub fn new(v: T) -> Self {
        Self(Arc::new(v))
    }
}

impl<T: Clone> Shared<T> {
    /// The value, to change: copied first if another holder shares it (`Arc::make_mut`).
    pub fn make_mut(&mut self) -> &mut T {
        Arc::make_mut(&mut self.0)
    }
}

impl<T> Deref for Shared<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> From<Arc<T>> for Shared<T> {
    fn from(a: Arc<T>) -> Self {
        Self(a)
    }
}

impl<T> From<T> for Shared<T> {
    fn from(v: T) -> Self {
        Self::new(v)
    }
}

impl<T: Serialize> Serialize for Shared<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (*self.0).serialize(s)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Shared<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        T::deserialize(d).map(Self::new)
    }
}

impl<T: JsonSchema> JsonSchema for Shared<T> {
    fn inline_schema() -> bool {
        T::inline_schema()
    }
    fn schema_name() -> Cow<'static, str> {
        T::schema_name()
    }
    fn schema_id() -> Cow<'static, str> {
        T::schema_id()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        T::json_schema(generator)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AppPlatform;

    #[test]
    fn shared_is_transparent_to_serde_and_schemars() {
        let a = crate::sample::tap_record().app;
        let s = Shared::new(a.clone());
        assert_eq!(
            serde_json::to_string(&s).expect("json"),
            serde_json::to_string(&a).expect("json")
        );
        let back: Shared<AppPlatform> =
            serde_json::from_str(&serde_json::to_string(&a).expect("json")).expect("parse");
        assert_eq!(*back, a);
        let none: Option<Shared<AppPlatform>> = serde_json::from_str("null").expect("null");
        assert!(none.is_none());
        assert_eq!(
            serde_json::to_value(schemars::schema_for!(Option<Shared<AppPlatform>>)).expect("v"),
            serde_json::to_value(schemars::schema_for!(Option<AppPlatform>)).expect("v")
        );
        // Clones share; make_mut copies only a shared value.
        let mut t = s.clone();
        assert!(Arc::ptr_eq(&s.0, &t.0));
        t.make_mut().provider = None;
        assert!(!Arc::ptr_eq(&s.0, &t.0));
        assert_eq!(s.provider, a.provider);
    }
}
