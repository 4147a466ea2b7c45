//! `TapRecord`: what the eBPF tap learned about one flow, in the whitepaper's three blocks:
//! *Application & user platform* ([`AppPlatform`]), *Network QoS* ([`FlowStats`]) and
//! *Application QoE* ([`Qoe`]).
//!
//! The tap sees both directions of a conversation and knows which side opened it, so its key names
//! the endpoints as client and server (Netify's "local" and "other"); the canonical key hash is the
//! same as the router's ([`crate::FlowKey`]), which is what the mediator joins on.

use crate::kind::{hash_id, Record, RecordKind, RecordState};
use crate::qoe::Qoe;
use crate::stats::FlowStats;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// What the tap learned about one flow, reported at classification, every 30 s while the flow is
/// active, and when it ends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TapRecord {
    /// Version of the record model the record was written with ([`crate::SCHEMA_VERSION`]).
    pub schema_version: u16,
    /// Identifies this record: XXH3-64 of (tap id, flow key, first seen, report sequence number), as
    /// 16 hex digits ([`TapRecord::set_record_id`]). The same report decoded twice gives the same id.
    pub record_id: String,
    /// Which tap (probe instance) produced the record, as configured (e.g. `site1-mirror0`).
    pub tap_id: String,
    /// Which report of the flow this is.
    pub state: RecordState,
    /// Report sequence number for this flow: 0 for the first report, then +1 per report.
    pub seq: u32,
    /// The flow's key and endpoints.
    pub key: TapKey,
    /// First packet of the flow seen by the tap, UTC ms.
    pub first_seen_ms: i64,
    /// Last packet of the flow seen by the tap (up to this report), UTC ms.
    pub last_seen_ms: i64,
    /// Application & user platform: what the flow is and who runs it.
    pub app: AppPlatform,
    /// Network QoS: volumes, rates, RTT, jitter, loss and TCP health of the flow.
    pub stats: FlowStats,
    /// Application QoE measured over the last window, per application type.
    pub qoe: Qoe,
    /// The application session the flow belongs to ([`crate::AppSession::session_id`]); `null`
    /// when the flow joined none (not attributed to a provider).
    #[serde(default)]
    pub session_id: Option<String>,
}

impl TapRecord {
    /// Fills `record_id` from (tap id, flow key, first seen, seq).
    pub fn set_record_id(&mut self) {
        self.record_id = hash_id(&[
            self.tap_id.as_bytes(),
            self.key.flow_key.as_bytes(),
            &self.first_seen_ms.to_be_bytes(),
            &self.seq.to_be_bytes(),
        ]);
    }
}

impl Record for TapRecord {
    const KIND: RecordKind = RecordKind::Tap;
    fn schema_version(&self) -> u16 {
        self.schema_version
    }
    fn record_id(&self) -> &str {
        &self.record_id
    }
    fn message_key(&self) -> Option<&str> {
        Some(&self.key.flow_key)
    }
}

/// A flow as the tap keys it: the canonical key hash plus the endpoints, client side first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TapKey {
    /// Canonical flow key hash as 16 hex digits ([`crate::FlowKey`]): the join key with the router's
    /// `flow_key` and the Kafka message key.
    pub flow_key: String,
    /// IP protocol number (6 TCP, 17 UDP, ...).
    pub protocol: u8,
    /// Address of the side that opened the flow (Netify's "local" side).
    pub client_addr: IpAddr,
    /// Port of the client side (0 for protocols without ports).
    pub client_port: u16,
    /// Address of the side that answered (Netify's "other" side).
    pub server_addr: IpAddr,
    /// Port of the server side (0 for protocols without ports).
    pub server_port: u16,
    /// 802.1Q VLAN id on the mirror port, when tagged; part of the canonical key.
    pub vlan: Option<u16>,
}

impl TapKey {
    /// The canonical key of these endpoints (scope: the VLAN, 0 when untagged).
    pub fn canonical(&self) -> crate::FlowKey {
        crate::FlowKey::new(
            self.protocol,
            (self.client_addr, self.client_port),
            (self.server_addr, self.server_port),
            self.vlan.map(u32::from).unwrap_or(0),
        )
    }

    /// Fills `flow_key` from the endpoints.
    pub fn set_flow_key(&mut self) {
        self.flow_key = format!("{:016x}", self.canonical().hash64());
    }
}

/// Application type: what kind of experience the flow carries. Drives which QoE block is filled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AppType {
    /// On-demand video (Netflix, YouTube, Prime Video): QoE in `qoe.video`.
    VideoStreaming,
    /// Live video (Twitch, live sports): QoE in `qoe.video`.
    LiveStreaming,
    /// Online games (Call of Duty, Fortnite): QoE in `qoe.gaming`.
    Gaming,
    /// Cloud gaming: the game runs remotely and arrives as a video stream (GeForce NOW, Xbox
    /// Cloud Gaming, Luna): QoE in `qoe.gaming`, with the stream's bitrate and resolution class.
    CloudGaming,
    /// Video and audio conferencing (Zoom, Teams, Meet): QoE in `qoe.conferencing`.
    Conferencing,
    /// Web browsing and web APIs.
    Web,
    /// Social media.
    Social,
    /// Instant messaging.
    Messaging,
    /// Music and audio streaming (Spotify).
    Music,
    /// AR/VR platforms and their content (Meta Quest / Oculus).
    ArVr,
    /// Downloads, uploads, software updates, cloud storage sync.
    FileTransfer,
    /// Voice calls (VoIP, Wi-Fi calling): QoE in `qoe.conferencing`.
    Voip,
    /// Classified, but none of the above.
    Other,
    /// Not (yet) classified.
    #[default]
    Unknown,
}

impl AppType {
    /// The serde (snake_case) name.
    pub fn as_str(self) -> &'static str {
        match self {
            AppType::VideoStreaming => "video_streaming",
            AppType::LiveStreaming => "live_streaming",
            AppType::Gaming => "gaming",
            AppType::CloudGaming => "cloud_gaming",
            AppType::Conferencing => "conferencing",
            AppType::Web => "web",
            AppType::Social => "social",
            AppType::Messaging => "messaging",
            AppType::Music => "music",
            AppType::ArVr => "ar_vr",
            AppType::FileTransfer => "file_transfer",
            AppType::Voip => "voip",
            AppType::Other => "other",
            AppType::Unknown => "unknown",
        }
    }

    /// A game, played locally or in the cloud: its QoE goes in `qoe.gaming`.
    pub fn is_gaming(self) -> bool {
        matches!(self, AppType::Gaming | AppType::CloudGaming)
    }
}

/// How the tap classified the flow: the strongest evidence it used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DetectionMethod {
    /// Server name from a TLS or QUIC ClientHello.
    Sni,
    /// Name from a DNS answer for the server address, seen earlier by the tap.
    Dns,
    /// HTTP/1 `Host` header.
    HttpHost,
    /// TLS ClientHello fingerprint (JA4/JA3).
    TlsFingerprint,
    /// RTP/RTCP or STUN/TURN signatures (real-time media).
    Rtp,
    /// Payload signature: the first bytes or the length of the client's first payload.
    Payload,
    /// Server address in a provider's published address prefixes.
    Address,
    /// Well-known server port.
    Port,
    /// Packet size and timing pattern.
    Behaviour,
    /// Inherited from another flow of the same application session: a STUN/TURN flow carrying
    /// RTP (8 packets or more in one stream), classified as a call without a provider (a TURN
    /// relay outside the providers' address prefixes), takes the provider of its client's one
    /// live conferencing or VoIP session (same client address, the session started before the
    /// media; none when two providers' calls are live) and joins it.
    Session,
    /// Not classified.
    #[default]
    None,
}

/// Application & user platform: what the flow is, and the client platform that runs it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct AppPlatform {
    /// Application type.
    pub app_type: AppType,
    /// Service provider, lower case (e.g. `netflix`, `activision`, `zoom`); `null` when unknown.
    pub provider: Option<String>,
    /// Application name (e.g. `Netflix`, `Call of Duty: Warzone`, `Zoom Meetings`).
    pub app_name: Option<String>,
    /// Client operating system, with version where known (e.g. `Android 14`, `Windows 11`).
    pub client_os: Option<String>,
    /// Client software agent: browser or app, with version where known (e.g. `Chrome 126`,
    /// `Netflix Android 8.120`).
    pub client_agent: Option<String>,
    /// Server name from the TLS or QUIC ClientHello.
    pub sni: Option<String>,
    /// Name the client resolved for the server address, from DNS answers the tap saw.
    pub dns_name: Option<String>,
    /// HTTP/1 `Host` header (plain-text HTTP only).
    pub http_host: Option<String>,
    /// TLS ClientHello fingerprint: JA4 (`t13d1516h2_8daaf6152771_e5627efa2ab1`) where the tap
    /// computes it, else JA3 (32 hex digits).
    pub tls_fingerprint: Option<String>,
    /// ALPN protocols the client offered, in its order (e.g. `h2`, `http/1.1`; `h3` for QUIC).
    pub alpn: Vec<String>,
    /// Strongest evidence the classification rests on.
    pub detection_method: DetectionMethod,
    /// Confidence of the classification, 0 (guess) to 1 (certain).
    pub confidence: f32,
    /// Packets the tap inspected before it classified the flow (0 while unclassified).
    pub detection_packets: u32,
}
