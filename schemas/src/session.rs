//! `AppSession`: one application session — a client using one provider's application of one type —
//! across the flows it is made of (a video player opens several connections; a game keeps a UDP
//! flow and a few TCP ones). Emitted at start, every 30 s while active, and at the end.

use crate::kind::{hash_id, Record, RecordKind, RecordState};
use crate::qoe::QoeSample;
use crate::stats::FlowStats;
use crate::tap::AppType;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// One application session and its experience so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AppSession {
    /// Version of the record model the record was written with ([`crate::SCHEMA_VERSION`]).
    pub schema_version: u16,
    /// Identifies this record: XXH3-64 of (session id, seq), as 16 hex digits.
    pub record_id: String,
    /// Identifies the session across its reports: XXH3-64 of (client address, provider, app type,
    /// start), as 16 hex digits ([`AppSession::session_id_for`]).
    pub session_id: String,
    /// Which report of the session this is.
    pub state: RecordState,
    /// Report sequence number within the session: 0 at start, then +1 per report.
    pub seq: u32,
    /// Address of the client running the application.
    pub client_addr: IpAddr,
    /// Service provider, lower case (e.g. `netflix`); `unknown` when the flows were not attributed.
    pub provider: String,
    /// Application type.
    pub app_type: AppType,
    /// Application name (e.g. `Netflix`).
    pub app_name: Option<String>,
    /// Client operating system, as classified on the member flows.
    pub client_os: Option<String>,
    /// Client software agent (browser or app), as classified on the member flows.
    pub client_agent: Option<String>,
    /// Id of the tap that observed the session.
    pub tap: Option<String>,
    /// Session start: first packet of its first flow, UTC ms.
    pub start_ms: i64,
    /// Last activity of the session up to this report, UTC ms.
    pub last_ms: i64,
    /// Flows that were part of the session so far (distinct canonical keys).
    pub member_flows: u32,
    /// Network QoS of the session, aggregated over its member flows.
    pub network: SessionNetwork,
    /// QoE time series since the previous report (one sample per window and member flow that
    /// measured one), oldest first. A window in which none of the session's flows carried a
    /// packet (an idle call, a paused player, a gap in capture time) is no sample: samples are
    /// stamped with their window's end, so a missing window reads as "no traffic".
    pub qoe_series: Vec<QoeSample>,
}

impl AppSession {
    /// The session id of a session: XXH3-64 of (client address, provider, app type, start).
    pub fn session_id_for(
        client_addr: IpAddr,
        provider: &str,
        app_type: AppType,
        start_ms: i64,
    ) -> String {
        let addr = match client_addr {
            IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
            IpAddr::V6(v6) => v6.octets(),
        };
        hash_id(&[
            &addr,
            provider.as_bytes(),
            app_type.as_str().as_bytes(),
            &start_ms.to_be_bytes(),
        ])
    }

    /// Fills `session_id` from the identity fields, then `record_id` from (session id, seq).
    pub fn set_ids(&mut self) {
        self.session_id = Self::session_id_for(
            self.client_addr,
            &self.provider,
            self.app_type,
            self.start_ms,
        );
        self.record_id = hash_id(&[self.session_id.as_bytes(), &self.seq.to_be_bytes()]);
    }
}

impl Record for AppSession {
    const KIND: RecordKind = RecordKind::AppSession;
    fn schema_version(&self) -> u16 {
        self.schema_version
    }
    fn record_id(&self) -> &str {
        &self.record_id
    }
    fn message_key(&self) -> Option<&str> {
        Some(&self.session_id)
    }
}

/// Network QoS of a session: the tap's view aggregated over the member flows, and the routers'.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct SessionNetwork {
    /// The tap's flow stats aggregated over the member flows: counters and rates summed, `rtt_min_ms`
    /// the smallest and `rtt_max_ms` the largest, averages, jitter and loss weighted by packets;
    /// `digest` empty.
    pub stats: FlowStats,
    /// Octets the routers reported for the member flows (upscaled by sampling), since session start.
    pub router_octets: u64,
    /// Packets the routers reported for the member flows (upscaled by sampling), since session start.
    pub router_packets: u64,
    /// Router flow records joined into the session so far.
    pub router_flow_records: u32,
}
