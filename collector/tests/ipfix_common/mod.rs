//! What the IPFIX round-trip tests share: records encoded with `schemas::ipfix::Encoder` and
//! decoded by the collector like any exporter's messages.

use collector::{Decoder, DecoderConfig};
use schemas::ipfix::{Encoder, EncoderConfig};
use schemas::{FlowRecord, RecordKind};
use serde::Serialize;
use std::net::IpAddr;

/// Export time of every encoded message.
pub const EXPORT_MS: i64 = 1_700_000_000_000;

/// Encodes `records` of `kind` with `cfg` and decodes the messages as exporter 127.0.0.9 would
/// be: one collector record per record sent, no encode or decode error.
pub fn collect<R: Serialize>(
    kind: RecordKind,
    records: &[R],
    cfg: EncoderConfig,
) -> Vec<FlowRecord> {
    let mut enc = match Encoder::new(kind, cfg) {
        Ok(e) => e,
        Err(e) => panic!("{e}"),
    };
    let encoded = enc.encode(records, EXPORT_MS);
    assert!(encoded.errors.is_empty(), "{:?}", encoded.errors);
    let mut dec = Decoder::new(DecoderConfig::default());
    let exporter: IpAddr = [127, 0, 0, 9].into();
    let mut flows = Vec::new();
    for m in &encoded.messages {
        assert!(m.len() <= 65_535);
        dec.decode(exporter, Some(EXPORT_MS + 5), m, &mut flows);
    }
    assert_eq!(dec.totals.errors, 0, "{:?}", dec.totals);
    assert_eq!(flows.len(), records.len());
    flows
}
