//! The signature file: providers (names, nDPI spellings, domains) and ordered rules (ports,
//! address prefixes, payload prefixes, media). Data, not code: `signatures.toml` in this crate is
//! embedded in the binary and a file of the same shape can replace it (`--signatures FILE`).

use crate::error::ProbeError;
use schemas::AppType;
use serde::Deserialize;
use std::net::IpAddr;

/// The built-in signature file.
pub const BUILTIN: &str = include_str!("../../signatures.toml");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDef {
    #[serde(default)]
    prefix_set: Vec<PrefixSetDef>,
    provider: Vec<Provider>,
    #[serde(default)]
    rule: Vec<RuleDef>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PrefixSetDef {
    name: String,
    prefixes: Vec<String>,
}

/// One provider of the signature file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provider {
    /// Lower-case id written to `TapRecord.app.provider` (nDPI's name, lower case).
    pub id: String,
    /// Display name, as nDPI spells it where nDPI has it.
    pub name: String,
    /// Application name for `app_name` (defaults to `name`).
    #[serde(default)]
    pub app_name: Option<String>,
    /// What the provider's flows usually are.
    pub app_type: AppType,
    /// App type of its real-time media flows (STUN/RTP), e.g. `voip` for a messenger's calls.
    #[serde(default)]
    pub media_app_type: Option<AppType>,
    /// nDPI application names that mean this provider (the agreement test maps nDPI labels
    /// through this).
    #[serde(default)]
    pub ndpi: Vec<String>,
    /// Domain suffixes (on a label boundary): `netflix.com` matches `www.netflix.com`.
    #[serde(default)]
    pub domains: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleDef {
    provider: String,
    #[serde(default)]
    proto: Option<String>,
    #[serde(default)]
    ports: Vec<String>,
    #[serde(default)]
    client_ports: Vec<String>,
    #[serde(default)]
    prefixes: Vec<String>,
    #[serde(default)]
    payload_hex: Vec<String>,
    #[serde(default)]
    payload_len: Option<u32>,
    #[serde(default)]
    media: Option<String>,
    #[serde(default)]
    app_type: Option<AppType>,
    #[serde(default)]
    confidence: Option<f32>,
}

/// An IPv4 or IPv6 prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prefix {
    net: u128,
    len: u8,
}

impl Prefix {
    /// Parses `a.b.c.d/n` or `x::/n` (IPv4 as IPv4-mapped IPv6).
    pub fn parse(s: &str) -> Option<Prefix> {
        let (addr, len) = s.split_once('/').unwrap_or((s, ""));
        let ip: IpAddr = addr.trim().parse().ok()?;
        let (v, max, base) = match ip {
            IpAddr::V4(a) => (u128::from(a.to_ipv6_mapped()), 32u8, 96u8),
            IpAddr::V6(a) => (u128::from(a), 128u8, 0u8),
        };
        let l: u8 = if len.is_empty() {
            max
        } else {
            len.trim().parse().ok()?
        };
        if l > max {
            return None;
        }
        let len = base + l;
        Some(Prefix {
            net: v & mask(len),
            len,
        })
    }

    /// Does `ip` fall in the prefix?
    pub fn contains(&self, ip: IpAddr) -> bool {
        let v = match ip {
            IpAddr::V4(a) => u128::from(a.to_ipv6_mapped()),
            IpAddr::V6(a) => u128::from(a),
        };
        v & mask(self.len) == self.net
    }
}

fn mask(len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(len))
    }
}

/// Media a rule can require.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaReq {
    /// A STUN message was seen.
    Stun,
    /// RTP or RTCP was seen.
    Rtp,
    /// Zoom's media encapsulation was seen.
    Zoom,
    /// Any of the above.
    Any,
}

/// One ordered rule: every condition present must hold.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Index into [`Signatures::providers`].
    pub provider: usize,
    /// IP protocol (6, 17), when required.
    pub proto: Option<u8>,
    /// Server port ranges (inclusive), when required.
    pub ports: Vec<(u16, u16)>,
    /// Client port ranges (inclusive), when required (consoles that keep their well-known port).
    pub client_ports: Vec<(u16, u16)>,
    /// Server address prefixes, when required.
    pub prefixes: Vec<Prefix>,
    /// Client first-payload prefixes, when required.
    pub payloads: Vec<Vec<u8>>,
    /// Client first-payload length, when required.
    pub payload_len: Option<u32>,
    /// Media, when required.
    pub media: Option<MediaReq>,
    /// App type for flows matched by this rule (else the provider's).
    pub app_type: Option<AppType>,
    /// Confidence of a match (default 0.6).
    pub confidence: f32,
}

/// The loaded signature file.
#[derive(Debug, Clone)]
pub struct Signatures {
    /// Providers, in file order.
    pub providers: Vec<Provider>,
    /// (domain suffix, provider index), longest suffix first.
    pub domains: Vec<(String, usize)>,
    /// (pattern with `*`, provider index), in file order: `*` matches any run of characters
    /// (e.g. `igcdn-photos-*.akamaihd.net`).
    pub globs: Vec<(String, usize)>,
    /// Rules, in file order.
    pub rules: Vec<Rule>,
}

impl Signatures {
    /// The built-in signatures.
    pub fn builtin() -> Result<Signatures, ProbeError> {
        Signatures::parse(BUILTIN, "<built-in>")
    }

    /// Reads a signature file.
    pub fn load(path: &std::path::Path) -> Result<Signatures, ProbeError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ProbeError::Io(path.display().to_string(), e))?;
        Signatures::parse(&text, &path.display().to_string())
    }

    /// Parses signature text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Signatures, ProbeError> {
        let err = |m: String| ProbeError::Signatures(origin.to_string(), m);
        let f: FileDef = toml::from_str(text).map_err(|e| err(e.to_string()))?;
        let mut sets: Vec<(String, Vec<Prefix>)> = Vec::new();
        for s in &f.prefix_set {
            let ps = s
                .prefixes
                .iter()
                .map(|p| Prefix::parse(p).ok_or_else(|| err(format!("bad prefix {p}"))))
                .collect::<Result<Vec<_>, _>>()?;
            sets.push((s.name.clone(), ps));
        }
        let mut domains = Vec::new();
        let mut globs = Vec::new();
        for (i, p) in f.provider.iter().enumerate() {
            if p.id != p.id.to_ascii_lowercase() {
                return Err(err(format!("provider id {} is not lower case", p.id)));
            }
            for d in &p.domains {
                let d = d.trim_start_matches('.').to_ascii_lowercase();
                if d.contains('*') {
                    globs.push((d, i));
                } else {
                    domains.push((d, i));
                }
            }
        }
        domains.sort_by_key(|d| std::cmp::Reverse(d.0.len()));
        let mut rules = Vec::new();
        for r in &f.rule {
            let provider = f
                .provider
                .iter()
                .position(|p| p.id == r.provider)
                .ok_or_else(|| err(format!("rule for unknown provider {}", r.provider)))?;
            let proto = match r.proto.as_deref() {
                None => None,
                Some("tcp") => Some(6),
                Some("udp") => Some(17),
                Some(o) => return Err(err(format!("proto {o}: tcp or udp"))),
            };
            let ranges = |list: &[String]| -> Result<Vec<(u16, u16)>, ProbeError> {
                let mut out = Vec::new();
                for p in list {
                    let (a, b) = p.split_once('-').unwrap_or((p, p));
                    match (a.trim().parse(), b.trim().parse()) {
                        (Ok(a), Ok(b)) if a <= b => out.push((a, b)),
                        _ => return Err(err(format!("bad port range {p}"))),
                    }
                }
                Ok(out)
            };
            let ports = ranges(&r.ports)?;
            let client_ports = ranges(&r.client_ports)?;
            let mut prefixes = Vec::new();
            for p in &r.prefixes {
                if let Some(set) = p.strip_prefix('@') {
                    let s = sets
                        .iter()
                        .find(|(n, _)| n == set)
                        .ok_or_else(|| err(format!("unknown prefix set {set}")))?;
                    prefixes.extend_from_slice(&s.1);
                } else {
                    prefixes.push(Prefix::parse(p).ok_or_else(|| err(format!("bad prefix {p}")))?);
                }
            }
            let payloads = r
                .payload_hex
                .iter()
                .map(|h| hex(h).ok_or_else(|| err(format!("bad hex {h}"))))
                .collect::<Result<Vec<_>, _>>()?;
            let media = match r.media.as_deref() {
                None => None,
                Some("stun") => Some(MediaReq::Stun),
                Some("rtp") => Some(MediaReq::Rtp),
                Some("zoom") => Some(MediaReq::Zoom),
                Some("any") => Some(MediaReq::Any),
                Some(o) => return Err(err(format!("media {o}: stun, rtp, zoom or any"))),
            };
            rules.push(Rule {
                provider,
                proto,
                ports,
                client_ports,
                prefixes,
                payloads,
                payload_len: r.payload_len,
                media,
                app_type: r.app_type,
                confidence: r.confidence.unwrap_or(0.6).clamp(0.0, 1.0),
            });
        }
        Ok(Signatures {
            providers: f.provider,
            domains,
            globs,
            rules,
        })
    }

    /// The provider whose domain list matches `name` (longest suffix on a label boundary).
    pub fn by_domain(&self, name: &str) -> Option<usize> {
        let name = name.trim_end_matches('.');
        if let Some((_, i)) = self.globs.iter().find(|(g, _)| glob(g, name)) {
            return Some(*i);
        }
        self.domains.iter().find_map(|(d, i)| {
            let hit = name.len() >= d.len()
                && name[name.len() - d.len()..].eq_ignore_ascii_case(d)
                && (name.len() == d.len() || name.as_bytes()[name.len() - d.len() - 1] == b'.');
            hit.then_some(*i)
        })
    }

    /// The provider an nDPI application name means, if the tap knows it.
    pub fn by_ndpi(&self, ndpi_name: &str) -> Option<&Provider> {
        self.providers
            .iter()
            .find(|p| p.ndpi.iter().any(|n| n == ndpi_name))
    }
}

/// `*` matches any run of characters (case-insensitive); bounded by the pattern's length.
fn glob(pattern: &str, name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    let mut parts = pattern.split('*');
    let Some(first) = parts.next() else {
        return false;
    };
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    for (i, p) in parts.iter().enumerate() {
        if i + 1 == parts.len() {
            return rest.ends_with(p);
        }
        match rest.find(p) {
            Some(at) => rest = &rest[at + p.len()..],
            None => return false,
        }
    }
    rest.is_empty()
}

/// Hex digits with any whitespace between them (signature files group bytes for reading).
fn hex(s: &str) -> Option<Vec<u8>> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    schemas::ext::hex_decode(&s)
}
