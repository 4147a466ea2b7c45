//! The row form of every record decodes into an Arrow `RecordBatch` of [`arrow_schema`], the way
//! the Parquet sink builds its batches (arrow-json's decoder fed with row values).

use arrow_array::cast::AsArray;
use arrow_array::types::{Int64Type, TimestampMillisecondType};
use arrow_array::{Array, RecordBatch};
use schemas::published::{arrow_schema, to_row};
use schemas::{sample, RecordKind};
use std::sync::Arc;

fn batch(kind: RecordKind, rows: &[serde_json::Value]) -> RecordBatch {
    let schema = Arc::new(arrow_schema(kind));
    let mut decoder = arrow_json::ReaderBuilder::new(schema.clone())
        .build_decoder()
        .unwrap_or_else(|e| panic!("{kind}: decoder: {e}"));
    decoder
        .serialize(rows)
        .unwrap_or_else(|e| panic!("{kind}: rows do not fit the Arrow schema: {e}"));
    let batch = decoder
        .flush()
        .unwrap_or_else(|e| panic!("{kind}: flush: {e}"))
        .unwrap_or_else(|| panic!("{kind}: no batch"));
    assert_eq!(batch.schema(), schema, "{kind}: batch schema");
    batch
}

#[test]
fn every_sample_decodes_into_its_arrow_schema() {
    for kind in RecordKind::ALL {
        let row = to_row(kind, &sample::json(kind)).unwrap_or_else(|e| panic!("{kind}: {e}"));
        let b = batch(kind, &[row.clone(), row]);
        assert_eq!(b.num_rows(), 2, "{kind}");
        assert_eq!(b.num_columns(), arrow_schema(kind).fields().len());
    }
}

#[test]
fn columns_hold_the_values() {
    let flow = sample::flow_record();
    let row = to_row(RecordKind::Flow, &sample::json(RecordKind::Flow)).expect("row");
    let b = batch(RecordKind::Flow, &[row]);
    let start = b
        .column_by_name("flow_start_ms")
        .expect("flow_start_ms")
        .as_primitive::<TimestampMillisecondType>();
    assert_eq!(Some(start.value(0)), flow.flow_start_ms);
    let octets = b
        .column_by_name("octets")
        .expect("octets")
        .as_primitive::<Int64Type>();
    assert_eq!(octets.value(0) as u64, flow.octets);
    let exporter = b
        .column_by_name("exporter")
        .expect("exporter")
        .as_string::<i32>();
    assert_eq!(exporter.value(0), "192.0.2.1");
    let ext = b
        .column_by_name("extensions")
        .expect("extensions")
        .as_list::<i32>();
    let items = ext.value(0);
    let items = items.as_struct();
    assert_eq!(items.len(), 2);
    let value_type = items
        .column_by_name("value_type")
        .expect("value_type")
        .as_string::<i32>();
    assert_eq!(value_type.value(0), "unsigned");
    let name = items.column_by_name("name").expect("name");
    assert!(name.is_null(1));
}

#[test]
fn unmatched_super_flow_has_null_blocks() {
    let u = schemas::SuperFlow::unmatched(sample::flow_record());
    let row = schemas::published::row(&u).expect("row");
    let b = batch(RecordKind::SuperFlow, &[row]);
    for col in ["app", "stats", "qoe"] {
        assert!(b.column_by_name(col).expect(col).is_null(0), "{col}");
    }
}
