//! Declaration order of struct fields and enum variants, read from serde.
//!
//! The JSON Schema keeps properties in a map (alphabetical without serde_json's `preserve_order`,
//! which this workspace does not enable), but Avro fields and Parquet columns should come in the
//! order the types declare them. serde's derived `Deserialize` hands that order to the deserializer
//! (`deserialize_struct(name, fields, ..)`, `deserialize_enum(name, variants, ..)`), already renamed;
//! a deserializer that records the list and stops is all it takes.

use schemars::JsonSchema;
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

struct Recorder(Option<&'static [&'static str]>);

#[derive(Debug)]
struct Stop;

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("stop")
    }
}

impl std::error::Error for Stop {}

impl de::Error for Stop {
    fn custom<T: std::fmt::Display>(_msg: T) -> Self {
        Stop
    }
}

impl<'de> Deserializer<'de> for &mut Recorder {
    type Error = Stop;

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Stop> {
        Err(Stop)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Stop> {
        self.0 = Some(fields);
        Err(Stop)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Stop> {
        self.0 = Some(variants);
        Err(Stop)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map identifier ignored_any
    }
}

/// Field (struct) or variant (enum) names of `T` in declaration order, as serde names them.
fn names<'de, T: Deserialize<'de>>() -> Option<&'static [&'static str]> {
    let mut r = Recorder(None);
    // The recorder always stops with an error; what matters is what it saw before.
    let _ = T::deserialize(&mut r);
    r.0
}

/// (schema name, declared names) of every struct and enum in the record model.
pub(crate) fn registry() -> Vec<(String, &'static [&'static str])> {
    fn entry<'de, T: Deserialize<'de> + JsonSchema>() -> (String, &'static [&'static str]) {
        (T::schema_name().into_owned(), names::<T>().unwrap_or(&[]))
    }
    use crate::*;
    vec![
        entry::<FlowRecord>(),
        entry::<FlowVersion>(),
        entry::<Direction>(),
        entry::<TimeSource>(),
        entry::<Extension>(),
        entry::<ExtValue>(),
        entry::<TapRecord>(),
        entry::<TapKey>(),
        entry::<RecordState>(),
        entry::<AppPlatform>(),
        entry::<AppType>(),
        entry::<DetectionMethod>(),
        entry::<FlowStats>(),
        entry::<Qoe>(),
        entry::<VideoQoe>(),
        entry::<BufferState>(),
        entry::<GamingQoe>(),
        entry::<ConferencingQoe>(),
        entry::<QoeSample>(),
        entry::<SuperFlow>(),
        entry::<Enrichment>(),
        entry::<MatchStatus>(),
        entry::<AppSession>(),
        entry::<SessionNetwork>(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_declaration_order() {
        assert_eq!(
            names::<crate::Extension>(),
            Some(&["pen", "id", "name", "value"][..])
        );
        assert_eq!(
            names::<crate::FlowVersion>(),
            Some(&["netflow_v5", "netflow_v9", "ipfix"][..])
        );
        for (name, list) in registry() {
            assert!(!list.is_empty(), "{name}: no names recorded");
        }
    }
}
