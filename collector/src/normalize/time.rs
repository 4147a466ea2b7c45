//! Flow times: every record leaves with absolute UTC milliseconds.
//!
//! Precedence for the start (the end is symmetric): flowStartMilliseconds (152), flowStartSeconds
//! (150), flowStartMicroseconds (154), flowStartNanoseconds (156); then flowStartSysUpTime (22),
//! anchored on the v9 header's sysUptime and clock (RFC 3954 §5.1) or, in IPFIX, on
//! systemInitTimeMilliseconds (160, RFC 7011 / IANA); then flowStartDeltaMicroseconds (158),
//! counted back from the export time; else the export time itself.

use crate::config::DecoderConfig;
use crate::decode::stats::DecodeStats;
use crate::decode::templates::Proto;
use crate::decode::MessageCtx;
use netgauze_flow_pkt::ie::Field;
use schemas::{FlowRecord, TimeSource};

#[derive(Default)]
pub(super) struct Times<'a> {
    start_abs: Option<(u8, i64, &'a Field)>,
    end_abs: Option<(u8, i64, &'a Field)>,
    start_uptime: Option<u32>,
    end_uptime: Option<u32>,
    start_delta_us: Option<u32>,
    end_delta_us: Option<u32>,
    system_init_ms: Option<i64>,
    /// Time elements not chosen, kept as extensions.
    spare: Vec<&'a Field>,
}

impl<'a> Times<'a> {
    /// Takes the field if it is a time element.
    pub(super) fn take(&mut self, f: &'a Field) -> bool {
        let abs = put;
        match f {
            Field::flowStartMilliseconds(t) => abs(
                &mut self.start_abs,
                0,
                t.timestamp_millis(),
                &mut self.spare,
                f,
            ),
            Field::flowStartSeconds(t) => abs(
                &mut self.start_abs,
                1,
                t.timestamp_millis(),
                &mut self.spare,
                f,
            ),
            Field::flowStartMicroseconds(t) => abs(
                &mut self.start_abs,
                2,
                ntp(t.timestamp_millis()),
                &mut self.spare,
                f,
            ),
            Field::flowStartNanoseconds(t) => abs(
                &mut self.start_abs,
                3,
                ntp(t.timestamp_millis()),
                &mut self.spare,
                f,
            ),
            Field::flowEndMilliseconds(t) => abs(
                &mut self.end_abs,
                0,
                t.timestamp_millis(),
                &mut self.spare,
                f,
            ),
            Field::flowEndSeconds(t) => abs(
                &mut self.end_abs,
                1,
                t.timestamp_millis(),
                &mut self.spare,
                f,
            ),
            Field::flowEndMicroseconds(t) => abs(
                &mut self.end_abs,
                2,
                ntp(t.timestamp_millis()),
                &mut self.spare,
                f,
            ),
            Field::flowEndNanoseconds(t) => abs(
                &mut self.end_abs,
                3,
                ntp(t.timestamp_millis()),
                &mut self.spare,
                f,
            ),
            Field::flowStartSysUpTime(v) => self.start_uptime = Some(*v),
            Field::flowEndSysUpTime(v) => self.end_uptime = Some(*v),
            Field::flowStartDeltaMicroseconds(v) => self.start_delta_us = Some(*v),
            Field::flowEndDeltaMicroseconds(v) => self.end_delta_us = Some(*v),
            Field::systemInitTimeMilliseconds(t) => {
                self.system_init_ms = Some(t.timestamp_millis());
                self.spare.push(f);
            }
            _ => return false,
        }
        true
    }

    /// Fills the record's times. Elements not used go to `extras`.
    pub(super) fn apply(
        self,
        rec: &mut FlowRecord,
        ctx: &MessageCtx,
        domain_init_ms: Option<i64>,
        extras: &mut Vec<&'a Field>,
    ) {
        extras.extend(self.spare);
        let init = self.system_init_ms.or(domain_init_ms);
        let uptime = |u: u32| -> Option<(i64, TimeSource)> {
            match ctx.proto {
                Proto::V9 => {
                    let back = ctx.sys_uptime_ms.wrapping_sub(u) as i32;
                    Some((ctx.export_time_ms - i64::from(back), TimeSource::SysUptime))
                }
                Proto::Ipfix => init.map(|i| (i + i64::from(u), TimeSource::SystemInit)),
            }
        };
        let delta = |d: u32| (ctx.export_time_ms - i64::from(d / 1000), TimeSource::Delta);
        let pick = |abs: Option<(u8, i64, &Field)>, up: Option<u32>, dl: Option<u32>| {
            abs.map(|(_, ms, _)| (ms, TimeSource::Absolute))
                .or_else(|| up.and_then(uptime))
                .or_else(|| dl.map(delta))
        };
        let start = pick(self.start_abs, self.start_uptime, self.start_delta_us);
        let end = pick(self.end_abs, self.end_uptime, self.end_delta_us);
        // Uptime elements that could not be anchored are kept as sent.
        if ctx.proto == Proto::Ipfix && init.is_none() {
            rec.extensions.extend(
                [
                    (22u16, "flowStartSysUpTime", self.start_uptime),
                    (21, "flowEndSysUpTime", self.end_uptime),
                ]
                .into_iter()
                .filter_map(|(id, name, v)| {
                    v.map(|v| schemas::Extension {
                        pen: 0,
                        id,
                        name: Some(name.into()),
                        value: schemas::ExtValue::Unsigned(u64::from(v)),
                    })
                }),
            );
        }
        rec.time_source = start
            .or(end)
            .map(|(_, s)| s)
            .unwrap_or(TimeSource::ExportTime);
        rec.flow_start_ms = Some(start.or(end).map_or(ctx.export_time_ms, |(ms, _)| ms));
        rec.flow_end_ms = Some(end.or(start).map_or(ctx.export_time_ms, |(ms, _)| ms));
    }
}

/// Seconds from 1900 (NTP era 0) to 1970.
const NTP_UNIX_OFFSET_MS: i64 = 2_208_988_800_000;

/// dateTimeMicroseconds/Nanoseconds are NTP timestamps (RFC 7011 §6.1.9-10), counted from 1900;
/// netgauze-flow-pkt 0.13 reads their seconds as Unix seconds, so the era offset is taken off here.
fn ntp(ms_as_decoded: i64) -> i64 {
    ms_as_decoded - NTP_UNIX_OFFSET_MS
}

/// Keeps the lower-ranked of two absolute times; the other goes to `spare`.
fn put<'a>(
    slot: &mut Option<(u8, i64, &'a Field)>,
    rank: u8,
    ms: i64,
    spare: &mut Vec<&'a Field>,
    f: &'a Field,
) {
    match slot.take() {
        Some(old) if old.0 <= rank => {
            spare.push(f);
            *slot = Some(old);
        }
        Some(old) => {
            spare.push(old.2);
            *slot = Some((rank, ms, f));
        }
        None => *slot = Some((rank, ms, f)),
    }
}

/// Flags and corrects exporter clock skew: when the export time is further than the threshold from
/// the receive time, the record's times are shifted by the difference and `clock_skew_ms` says so.
pub(crate) fn correct_skew(rec: &mut FlowRecord, cfg: &DecoderConfig, stats: &mut DecodeStats) {
    if cfg.clock_skew_threshold_ms <= 0 {
        return;
    }
    let skew = rec.export_time_ms - rec.received_time_ms;
    if skew.abs() > cfg.clock_skew_threshold_ms {
        rec.clock_skew_ms = Some(skew);
        rec.flow_start_ms = rec.flow_start_ms.map(|t| t - skew);
        rec.flow_end_ms = rec.flow_end_ms.map(|t| t - skew);
        stats.clock_skew_records += 1;
    }
}
