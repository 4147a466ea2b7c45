//! Classification: what the DPI evidence of a flow means, by the signature file.
//!
//! Evidence, strongest first: the server name (TLS/QUIC SNI, then HTTP `Host`, then the DNS
//! question on a DNS flow, then a name the client resolved for the server address) against the
//! providers' domains; then the ordered rules (payload prefixes, media, address prefixes, ports).
//! Real-time media that no rule names still gets an app type (`voip`) without a provider.
//!
//! - [`signatures`]: the signature file.
//! - [`platform`]: client OS and software agent heuristics.

pub mod platform;
pub mod signatures;

use crate::dpi::FlowDpi;
use schemas::{AppType, DetectionMethod};
use signatures::{MediaReq, Signatures};
use std::net::IpAddr;

/// The verdict on one flow.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Classification {
    /// Provider index in the signatures, when known.
    pub provider: Option<usize>,
    /// Application type.
    pub app_type: AppType,
    /// Evidence used.
    pub method: DetectionMethod,
    /// 0..1.
    pub confidence: f32,
    /// The name the classification rests on (SNI, Host, DNS), when it rests on a name.
    pub name: Option<String>,
}

/// The endpoints of a flow as classification sees them.
#[derive(Debug, Clone, Copy)]
pub struct Server {
    /// IP protocol.
    pub protocol: u8,
    /// Server address.
    pub addr: IpAddr,
    /// Server port.
    pub port: u16,
    /// Client port.
    pub client_port: u16,
}

/// Classifies a flow from its DPI state; `dns_name` is the cached name of the server address.
pub fn classify(
    sigs: &Signatures,
    dpi: &FlowDpi,
    server: Server,
    dns_name: Option<&str>,
) -> Classification {
    let media_seen = dpi.stun_packets > 0 || dpi.rtp_packets + dpi.rtcp_packets > 0;
    let named = [
        (dpi.sni.as_deref(), DetectionMethod::Sni, 0.95),
        (dpi.http_host.as_deref(), DetectionMethod::HttpHost, 0.9),
        (dpi.dns_qname.as_deref(), DetectionMethod::Dns, 0.9),
        (dns_name, DetectionMethod::Dns, 0.7),
    ];
    for (name, method, confidence) in named {
        let Some(name) = name else { continue };
        if let Some(i) = sigs.by_domain(name) {
            let p = &sigs.providers[i];
            let app_type = match (media_seen || dpi.zoom_media(), p.media_app_type) {
                (true, Some(t)) => t,
                _ => p.app_type,
            };
            return Classification {
                provider: Some(i),
                app_type,
                method,
                confidence,
                name: Some(name.to_string()),
            };
        }
    }
    for r in &sigs.rules {
        if r.proto.is_some_and(|p| p != server.protocol) {
            continue;
        }
        if !r.ports.is_empty() && !r.ports.iter().any(|&(a, b)| (a..=b).contains(&server.port)) {
            continue;
        }
        if !r.client_ports.is_empty()
            && !r
                .client_ports
                .iter()
                .any(|&(a, b)| (a..=b).contains(&server.client_port))
        {
            continue;
        }
        if !r.prefixes.is_empty() && !r.prefixes.iter().any(|p| p.contains(server.addr)) {
            continue;
        }
        if !r.payloads.is_empty() && !r.payloads.iter().any(|p| dpi.client_prefix.starts_with(p)) {
            continue;
        }
        if r.payload_len.is_some_and(|l| l != dpi.client_first_len) {
            continue;
        }
        let media_ok = match r.media {
            None => true,
            Some(MediaReq::Stun) => dpi.stun_packets > 0,
            Some(MediaReq::Rtp) => dpi.rtp_packets + dpi.rtcp_packets > 0,
            Some(MediaReq::Zoom) => dpi.zoom_media(),
            Some(MediaReq::Any) => media_seen || dpi.zoom_media(),
        };
        if !media_ok {
            continue;
        }
        let p = &sigs.providers[r.provider];
        let method = if r.media.is_some() {
            DetectionMethod::Rtp
        } else if !r.payloads.is_empty() || r.payload_len.is_some() {
            DetectionMethod::Payload
        } else if !r.prefixes.is_empty() {
            DetectionMethod::Address
        } else {
            DetectionMethod::Port
        };
        let app_type = r.app_type.unwrap_or(match (media_seen, p.media_app_type) {
            (true, Some(t)) => t,
            _ => p.app_type,
        });
        return Classification {
            provider: Some(r.provider),
            app_type,
            method,
            confidence: r.confidence,
            name: None,
        };
    }
    if media_seen || dpi.zoom_media() {
        return Classification {
            provider: None,
            app_type: AppType::Voip,
            method: DetectionMethod::Rtp,
            confidence: 0.5,
            name: None,
        };
    }
    Classification::default()
}

#[cfg(test)]
mod tests;
