//! Decode counters, per exporter and in total. Every drop and error has a counter here.

use serde::Serialize;

/// Counters of the decode stage. Also the JSON of `supernetflow decode --stats`.
#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct DecodeStats {
    /// Export messages handed to the decoder (any version).
    pub messages: u64,
    pub v5_messages: u64,
    pub v9_messages: u64,
    pub ipfix_messages: u64,
    /// Flow data records decoded into `FlowRecord`s.
    pub flow_records: u64,
    /// Options data records decoded (sampling, interface tables, ...).
    pub options_records: u64,
    /// Template records received (announcements, refreshes and withdrawals).
    pub templates: u64,
    /// Options template records received.
    pub options_templates: u64,
    pub template_withdrawals: u64,
    /// Templates dropped because they were not refreshed within the template lifetime.
    pub templates_expired: u64,
    /// Templates refused because the exporter reached its template cap.
    pub templates_rejected_cap: u64,
    /// Decode errors of any kind (malformed header, set, template or record).
    pub errors: u64,
    pub short_messages: u64,
    pub unsupported_version: u64,
    /// Data sets whose template never arrived (held, then expired or left at end of input).
    pub undecoded_sets: u64,
    /// Held data sets dropped because the exporter's hold queue was full (also in `undecoded_sets`).
    pub held_sets_overflow: u64,
    /// Data sets held until their template arrived, then decoded.
    pub late_decoded_sets: u64,
    pub late_decoded_records: u64,
    /// Sequence-number gaps seen, and the records (v5, IPFIX) or messages (v9) they imply were lost.
    pub sequence_gaps: u64,
    pub lost_estimate: u64,
    /// Records whose times were shifted for exporter clock skew.
    pub clock_skew_records: u64,
    /// Messages from exporters outside the allow-list.
    pub dropped_not_allowed: u64,
    /// Messages from new exporters once the exporter cap was reached.
    pub dropped_exporter_cap: u64,
}

impl DecodeStats {
    pub fn add(&mut self, o: &DecodeStats) {
        self.messages += o.messages;
        self.v5_messages += o.v5_messages;
        self.v9_messages += o.v9_messages;
        self.ipfix_messages += o.ipfix_messages;
        self.flow_records += o.flow_records;
        self.options_records += o.options_records;
        self.templates += o.templates;
        self.options_templates += o.options_templates;
        self.template_withdrawals += o.template_withdrawals;
        self.templates_expired += o.templates_expired;
        self.templates_rejected_cap += o.templates_rejected_cap;
        self.errors += o.errors;
        self.short_messages += o.short_messages;
        self.unsupported_version += o.unsupported_version;
        self.undecoded_sets += o.undecoded_sets;
        self.held_sets_overflow += o.held_sets_overflow;
        self.late_decoded_sets += o.late_decoded_sets;
        self.late_decoded_records += o.late_decoded_records;
        self.sequence_gaps += o.sequence_gaps;
        self.lost_estimate += o.lost_estimate;
        self.clock_skew_records += o.clock_skew_records;
        self.dropped_not_allowed += o.dropped_not_allowed;
        self.dropped_exporter_cap += o.dropped_exporter_cap;
    }
}

/// One exporter's counters and its last error, for the API and logs.
#[derive(Debug, Default, Clone, Serialize)]
pub struct ExporterStats {
    #[serde(flatten)]
    pub counters: DecodeStats,
    pub last_error: Option<String>,
    /// Errors since the last log line (logging is rate-limited per exporter).
    #[serde(skip)]
    pub unlogged_errors: u64,
}

impl std::ops::Deref for ExporterStats {
    type Target = DecodeStats;
    fn deref(&self) -> &DecodeStats {
        &self.counters
    }
}

impl std::ops::DerefMut for ExporterStats {
    fn deref_mut(&mut self) -> &mut DecodeStats {
        &mut self.counters
    }
}

impl ExporterStats {
    pub fn add(&mut self, o: &DecodeStats) {
        self.counters.add(o);
    }

    /// Records an error; logs the first and then one line per 1000 (with the count in between).
    pub fn note_error(&mut self, e: String) {
        if self.unlogged_errors % 1000 == 0 {
            tracing::warn!(error = %e, suppressed = self.unlogged_errors, "Decode error");
        }
        self.unlogged_errors += 1;
        self.last_error = Some(e);
    }
}
