//! The IPFIX sink: re-exports super-flows and application sessions (the kinds configured) to
//! existing NetFlow/IPFIX collectors, with the router part in IANA elements and the tap's blocks in
//! Super-NetFlow's enterprise elements ([`schemas::ipfix`]).
//!
//! One exporter per (collector, kind): each has its own socket — its own transport session, so
//! its template ids cannot clash with another kind's — and sends over UDP (MTU-sized messages,
//! templates resent every `template_refresh_secs` and/or `template_refresh_messages`) or TCP
//! (templates once per connection, a lost connection re-opened at most every `reconnect_secs` with
//! the templates sent again). The sockets are [`schemas::ipfix::transport`], shared with the tap's
//! export.
//!
//! Delivery guarantee: best effort, like any IPFIX exporter. Records a collector could not be sent
//! (TCP collector unreachable, a record that does not encode) are counted in `records_failed` and
//! dropped; UDP datagrams lost on the way are not seen here. The sink blocks its lane for at most
//! a TCP connect (3 s) or write (10 s) timeout per collector; it never blocks the other sinks.

use super::records::AnyRecord;
use crate::fanout::BatchSink;
use schemas::ipfix::transport::{encoder_config, Exporter, Transport};
use schemas::{AppSession, RecordKind, SuperFlow, TapRecord};
use serde::{Deserialize, Serialize};
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Configuration of the IPFIX sink (`[sinks.ipfix]`; runs when `sinks.enabled` has `"ipfix"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IpfixSinkConfig {
    /// Collectors to send to, `"host:port"` each (resolved at start-up). Default `[]`; at least
    /// one when the sink is enabled. Example: `["127.0.0.1:4739", "nfacctd.example:2100"]`.
    pub collectors: Vec<String>,
    /// `"udp"` (default) or `"tcp"`.
    pub transport: Transport,
    /// Record kinds sent, by table name: any of `"super_flows"`, `"app_sessions"`,
    /// `"tap_records"`. Default `["super_flows", "app_sessions"]`.
    pub kinds: Vec<String>,
    /// Observation domain id of the messages. Default 1.
    pub observation_domain: u32,
    /// Largest message, bytes: 1400 (default) keeps UDP datagrams under a 1500-byte MTU; over TCP
    /// up to 65535 cuts the per-message overhead. At least 512.
    pub max_message_bytes: usize,
    /// UDP: resend each template when it was last sent this long ago, seconds (RFC 7011 §8.4);
    /// 0: not by time. Default 30. (TCP sends templates once per connection.)
    pub template_refresh_secs: u64,
    /// UDP: also resend each template after this many messages; 0 (default): not by count.
    pub template_refresh_messages: u64,
    /// TCP: wait between connection attempts to a collector that is down, seconds. Default 5.
    pub reconnect_secs: u64,
}

impl Default for IpfixSinkConfig {
    fn default() -> Self {
        Self {
            collectors: Vec::new(),
            transport: Transport::Udp,
            kinds: vec!["super_flows".into(), "app_sessions".into()],
            observation_domain: 1,
            max_message_bytes: 1400,
            template_refresh_secs: 30,
            template_refresh_messages: 0,
            reconnect_secs: 5,
        }
    }
}

impl IpfixSinkConfig {
    /// The kinds, parsed; an error names the value that is not one.
    pub fn kinds(&self) -> Result<Vec<RecordKind>, String> {
        let mut out = Vec::new();
        for k in &self.kinds {
            match RecordKind::parse(k) {
                Some(RecordKind::Flow) => {
                    return Err(format!(
                        "kinds: {k:?}: router flows are not re-exported (they are their \
                         router's IPFIX already)"
                    ))
                }
                Some(kind) if !out.contains(&kind) => out.push(kind),
                Some(_) => {}
                None => {
                    return Err(format!(
                        "kinds: {k:?} is not one of super_flows, app_sessions, tap_records"
                    ))
                }
            }
        }
        if out.is_empty() {
            return Err("kinds: empty".into());
        }
        Ok(out)
    }

    /// The collectors' addresses (the first address each name resolves to).
    pub fn addresses(&self) -> Result<Vec<(String, SocketAddr)>, String> {
        if self.collectors.is_empty() {
            return Err("collectors: none configured".into());
        }
        self.collectors
            .iter()
            .map(|c| {
                let a = c
                    .to_socket_addrs()
                    .map_err(|e| format!("collectors: {c:?}: {e}"))?
                    .next()
                    .ok_or_else(|| format!("collectors: {c:?}: no address"))?;
                Ok((c.clone(), a))
            })
            .collect()
    }

    /// Checks every key; the message names it.
    pub fn validate(&self) -> Result<(), String> {
        self.kinds()?;
        self.addresses()?;
        if !(512..=65_535).contains(&self.max_message_bytes) {
            return Err(format!(
                "max_message_bytes: {} is not within 512..=65535",
                self.max_message_bytes
            ));
        }
        Ok(())
    }
}

/// Counters of one collector (plain atomics, read by the HTTP API).
#[derive(Debug, Default)]
pub struct CollectorMetrics {
    /// The collector as configured (`host:port`).
    pub collector: String,
    /// Data records sent (counter).
    pub records_sent: AtomicU64,
    /// Records not sent: not encodable, or the collector unreachable (counter).
    pub records_failed: AtomicU64,
    /// IPFIX messages sent (counter).
    pub messages_sent: AtomicU64,
    /// Bytes of IPFIX messages sent (counter).
    pub bytes_sent: AtomicU64,
    /// Template records sent, first use and refreshes (counter).
    pub templates_sent: AtomicU64,
    /// Failed sends and connection attempts (counter).
    pub send_errors: AtomicU64,
    /// TCP connections re-opened after a failure (counter).
    pub reconnects: AtomicU64,
    /// Exporters (one per kind) connected now (gauge).
    pub connected: AtomicU64,
}

/// A copy of [`CollectorMetrics`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CollectorSnapshot {
    /// See [`CollectorMetrics::collector`].
    pub collector: String,
    /// See [`CollectorMetrics::records_sent`].
    pub records_sent: u64,
    /// See [`CollectorMetrics::records_failed`].
    pub records_failed: u64,
    /// See [`CollectorMetrics::messages_sent`].
    pub messages_sent: u64,
    /// See [`CollectorMetrics::bytes_sent`].
    pub bytes_sent: u64,
    /// See [`CollectorMetrics::templates_sent`].
    pub templates_sent: u64,
    /// See [`CollectorMetrics::send_errors`].
    pub send_errors: u64,
    /// See [`CollectorMetrics::reconnects`].
    pub reconnects: u64,
    /// See [`CollectorMetrics::connected`].
    pub connected: u64,
}

impl CollectorMetrics {
    /// Reads every counter.
    pub fn snapshot(&self) -> CollectorSnapshot {
        CollectorSnapshot {
            collector: self.collector.clone(),
            records_sent: self.records_sent.load(Relaxed),
            records_failed: self.records_failed.load(Relaxed),
            messages_sent: self.messages_sent.load(Relaxed),
            bytes_sent: self.bytes_sent.load(Relaxed),
            templates_sent: self.templates_sent.load(Relaxed),
            send_errors: self.send_errors.load(Relaxed),
            reconnects: self.reconnects.load(Relaxed),
            connected: self.connected.load(Relaxed),
        }
    }
}

/// The sink's counters, one entry per collector.
pub type IpfixMetrics = Arc<Vec<CollectorMetrics>>;

/// Why the sink could not start.
#[derive(Debug, thiserror::Error)]
pub enum IpfixSinkError {
    /// A key is wrong.
    #[error("ipfix sink configuration: {0}")]
    Config(String),
    /// The IPFIX registry is broken (a build problem).
    #[error(transparent)]
    Registry(#[from] schemas::ipfix::registry::RegistryError),
}

struct Target {
    /// Index of the collector in the metrics.
    collector: usize,
    kind: RecordKind,
    exporter: Exporter,
    /// Errors logged so far (the first few, then one per 1000).
    errors: u64,
}

/// The IPFIX sink.
pub struct IpfixSink {
    kinds: Vec<RecordKind>,
    targets: Vec<Target>,
    metrics: IpfixMetrics,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl IpfixSink {
    /// Checks the configuration, resolves the collectors and opens the sockets (a TCP collector
    /// that is down is not an error: it is tried again every `reconnect_secs`).
    pub fn new(cfg: &IpfixSinkConfig) -> Result<Self, IpfixSinkError> {
        cfg.validate().map_err(IpfixSinkError::Config)?;
        let kinds = cfg.kinds().map_err(IpfixSinkError::Config)?;
        let addrs = cfg.addresses().map_err(IpfixSinkError::Config)?;
        let mut enc = encoder_config(
            cfg.transport,
            cfg.observation_domain,
            (cfg.template_refresh_secs as i64).saturating_mul(1000),
        );
        enc.max_message = cfg.max_message_bytes;
        if cfg.transport == Transport::Udp {
            enc.template_refresh_messages = cfg.template_refresh_messages;
        }
        let mut metrics = Vec::new();
        let mut targets = Vec::new();
        for (i, (name, addr)) in addrs.into_iter().enumerate() {
            metrics.push(CollectorMetrics {
                collector: name.clone(),
                ..Default::default()
            });
            for &kind in &kinds {
                let mut exporter = Exporter::lazy(kind, addr, cfg.transport, enc.clone())?;
                exporter.retry_after = Duration::from_secs(cfg.reconnect_secs);
                if let Err(e) = exporter.try_connect() {
                    tracing::warn!(collector = %name, error = %e, "IPFIX collector not reachable yet; will retry");
                }
                targets.push(Target {
                    collector: i,
                    kind,
                    exporter,
                    errors: 0,
                });
            }
        }
        let sink = IpfixSink {
            kinds,
            targets,
            metrics: Arc::new(metrics),
        };
        sink.publish();
        Ok(sink)
    }

    /// The counters, for the API.
    pub fn metrics(&self) -> IpfixMetrics {
        self.metrics.clone()
    }

    /// Copies the exporters' counters into the metrics.
    fn publish(&self) {
        for (i, m) in self.metrics.iter().enumerate() {
            let mut s = CollectorSnapshot::default();
            for t in self.targets.iter().filter(|t| t.collector == i) {
                let c = &t.exporter.counters;
                s.records_sent += c.encoder.records;
                s.messages_sent += c.messages_sent;
                s.bytes_sent += c.bytes_sent;
                s.templates_sent += c.encoder.templates_sent;
                s.reconnects += c.reconnects;
                s.connected += u64::from(t.exporter.connected());
            }
            m.records_sent.store(s.records_sent, Relaxed);
            m.messages_sent.store(s.messages_sent, Relaxed);
            m.bytes_sent.store(s.bytes_sent, Relaxed);
            m.templates_sent.store(s.templates_sent, Relaxed);
            m.reconnects.store(s.reconnects, Relaxed);
            m.connected.store(s.connected, Relaxed);
        }
    }

    /// Sends the records of `kind` to every collector; returns how many of them some collector
    /// did not get.
    fn send_kind<R: serde::Serialize>(&mut self, kind: RecordKind, records: &[&R]) -> u64 {
        if records.is_empty() || !self.kinds.contains(&kind) {
            return 0;
        }
        let now = now_ms();
        let mut failed = 0u64;
        for t in self.targets.iter_mut().filter(|t| t.kind == kind) {
            let m = &self.metrics[t.collector];
            match t.exporter.send(records, now) {
                Ok(errors) => {
                    let n = errors.len() as u64;
                    m.records_failed.fetch_add(n, Relaxed);
                    failed = failed.max(n);
                    if let Some(e) = errors.first() {
                        t.errors += 1;
                        if t.errors <= 3 || t.errors % 1000 == 0 {
                            tracing::warn!(collector = %m.collector, %kind, error = %e, not_encoded = n, "IPFIX sink: records not encodable");
                        }
                    }
                }
                Err(e) => {
                    let n = records.len() as u64;
                    m.records_failed.fetch_add(n, Relaxed);
                    m.send_errors.fetch_add(1, Relaxed);
                    failed = n;
                    t.errors += 1;
                    if t.errors <= 3 || t.errors % 1000 == 0 {
                        tracing::warn!(collector = %m.collector, %kind, error = %e, records = n, "IPFIX sink: records not sent");
                    }
                }
            }
        }
        failed
    }
}

impl BatchSink<AnyRecord> for IpfixSink {
    fn name(&self) -> &'static str {
        "ipfix"
    }

    fn ready(&self) -> bool {
        self.targets.iter().all(|t| t.exporter.connected())
    }

    fn takes(&self, r: &AnyRecord) -> bool {
        self.kinds.contains(&r.kind())
    }

    fn write(&mut self, batch: &[AnyRecord]) -> Result<u64, String> {
        let (mut supers, mut sessions, mut taps) = (Vec::new(), Vec::new(), Vec::new());
        for r in batch {
            match r {
                AnyRecord::Super(s) => supers.push(s.as_ref()),
                AnyRecord::Session(s) => sessions.push(s.as_ref()),
                AnyRecord::Tap(t) => taps.push(t.as_ref()),
                AnyRecord::Flow(_) => {}
            }
        }
        let mut failed = self.send_kind::<SuperFlow>(RecordKind::SuperFlow, &supers);
        failed += self.send_kind::<AppSession>(RecordKind::AppSession, &sessions);
        failed += self.send_kind::<TapRecord>(RecordKind::Tap, &taps);
        self.publish();
        Ok(failed)
    }

    fn tick(&mut self) -> Result<(), String> {
        // Collectors that are down are tried again here too, so readiness recovers while idle.
        for t in self.targets.iter_mut().filter(|t| !t.exporter.connected()) {
            if t.exporter.try_connect().is_err() {
                self.metrics[t.collector].send_errors.fetch_add(1, Relaxed);
            }
        }
        self.publish();
        Ok(())
    }

    /// Every batch is encoded and sent when written: nothing is held back. IPFIX has no
    /// delivery acknowledgement (UDP: none at all; TCP: the kernel's), so "durable" here means
    /// "handed to the socket"; records a collector could not take are counted as failed.
    fn sync(&mut self, _timeout: Duration) -> Result<(), String> {
        self.publish();
        Ok(())
    }

    fn close(self: Box<Self>, _timeout: Duration) -> Result<(), String> {
        self.publish();
        let this = *self;
        let metrics = this.metrics.clone();
        for t in this.targets {
            t.exporter.close();
        }
        for m in metrics.iter() {
            let s = m.snapshot();
            tracing::info!(
                collector = %s.collector,
                records = s.records_sent,
                messages = s.messages_sent,
                bytes = s.bytes_sent,
                failed = s.records_failed,
                "IPFIX sink closed"
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    #[test]
    fn config_checks_name_the_key() {
        let mut c = IpfixSinkConfig::default();
        let err = |c: &IpfixSinkConfig| c.validate().expect_err("must refuse");
        assert!(err(&c).starts_with("collectors"));
        c.collectors = vec!["127.0.0.1:4739".into()];
        assert_eq!(c.validate(), Ok(()));
        c.kinds = vec!["flow_records".into()];
        assert!(err(&c).contains("router flows"));
        c.kinds = vec!["nope".into()];
        assert!(err(&c).contains("nope"));
        c.kinds = vec!["super_flows".into()];
        c.max_message_bytes = 100;
        assert!(err(&c).starts_with("max_message_bytes"));
    }

    #[test]
    fn selected_kinds_reach_every_collector() {
        let rx: Vec<UdpSocket> = (0..2)
            .map(|_| UdpSocket::bind("127.0.0.1:0").expect("bind"))
            .collect();
        let cfg = IpfixSinkConfig {
            collectors: rx
                .iter()
                .map(|s| s.local_addr().expect("addr").to_string())
                .collect(),
            kinds: vec!["super_flows".into()],
            ..Default::default()
        };
        let mut sink = IpfixSink::new(&cfg).expect("sink");
        let batch = vec![
            AnyRecord::Super(Box::new(schemas::sample::super_flow())),
            AnyRecord::Flow(std::sync::Arc::new(schemas::sample::flow_record())),
            AnyRecord::Session(Box::new(schemas::sample::app_session())),
            AnyRecord::Super(Box::new(schemas::sample::super_flow())),
        ];
        assert_eq!(sink.write(&batch), Ok(0));
        let m = sink.metrics();
        for (i, s) in rx.iter().enumerate() {
            s.set_read_timeout(Some(Duration::from_secs(5)))
                .expect("timeout");
            let snap = m[i].snapshot();
            assert_eq!(snap.records_sent, 2, "super-flows only: {snap:?}");
            let mut buf = [0u8; 2048];
            let mut bytes = 0;
            for _ in 0..snap.messages_sent {
                let n = s.recv(&mut buf).expect("a message");
                assert_eq!(&buf[..2], &[0, 10], "IPFIX version");
                assert!(n <= 1400, "{n} bytes");
                bytes += n as u64;
            }
            assert_eq!(snap.bytes_sent, bytes);
        }
        Box::new(sink).close(Duration::ZERO).expect("close");
    }
}
