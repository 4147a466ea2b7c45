//! Running capture files through the pipeline and writing JSON lines: the library side of
//! `supernetflow probe --pcap`.

use crate::capture::{read_capture, CaptureCounters};
use crate::error::ProbeError;
use crate::flow::TableCounters;
use crate::pipeline::{Output, Pipeline, PipelineCounters};
use serde::Serialize;
use std::io::Write;
use std::path::PathBuf;

/// Every counter of an offline run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct OfflineReport {
    /// Capture reading.
    pub capture: CaptureCounters,
    /// Accounting (the kernel twin).
    pub accounting: TableCounters,
    /// Reports.
    pub pipeline: PipelineCounters,
    /// Application sessions.
    pub sessions: crate::qoe::session::SessionCounters,
}

/// Reads `files` in order through `pipeline`; every output goes to `sink` as it is produced, the
/// remaining flows at the end.
pub fn run_files(
    pipeline: &mut Pipeline,
    files: &[PathBuf],
    mut sink: impl FnMut(&Output) -> Result<(), ProbeError>,
) -> Result<OfflineReport, ProbeError> {
    let mut report = OfflineReport::default();
    let mut out = Vec::new();
    let mut failed: Option<ProbeError> = None;
    for f in files {
        read_capture(f, &mut report.capture, |fr| {
            pipeline.packet(fr.ts_ns, fr.data, fr.link, &mut out);
            for o in out.drain(..) {
                if failed.is_none() {
                    if let Err(e) = sink(&o) {
                        failed = Some(e);
                    }
                }
            }
        })?;
        if let Some(e) = failed.take() {
            return Err(e);
        }
    }
    pipeline.finish(&mut out);
    for o in out.drain(..) {
        sink(&o)?;
    }
    report.accounting = pipeline.table().counters.clone();
    report.pipeline = pipeline.counters.clone();
    report.sessions = pipeline.session_counters().clone();
    Ok(report)
}

/// Writes one output as a JSON line (`flow_stats` lines only when `with_stats`; session reports
/// always, session windows never: `supernetflow qoe` prints those).
pub fn write_jsonl(w: &mut impl Write, o: &Output, with_stats: bool) -> Result<(), ProbeError> {
    let io = |e: std::io::Error| ProbeError::Io("output".into(), e);
    match o {
        Output::Tap(r) => serde_json::to_writer(&mut *w, r.as_ref()).map_err(std::io::Error::from),
        Output::FlowStats(s) if with_stats => {
            serde_json::to_writer(&mut *w, s.as_ref()).map_err(std::io::Error::from)
        }
        Output::FlowStats(_) | Output::Interval(_) => return Ok(()),
        Output::Session(r) => {
            serde_json::to_writer(&mut *w, r.as_ref()).map_err(std::io::Error::from)
        }
    }
    .map_err(io)?;
    w.write_all(b"\n").map_err(io)
}
