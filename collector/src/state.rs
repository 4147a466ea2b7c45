//! Template and sampling persistence.
//!
//! A restarted collector must decode data at once, without waiting minutes for exporters to resend
//! their templates. The decoder's templates (as the raw template records that announced them),
//! sampling state and systemInitTime anchors are written to a JSON state file whenever they change,
//! atomically (temporary file, fsync, rename), and parsed again through the same template parser
//! at start-up.

use crate::decode::templates::{parse_template, Proto, RawTemplate, Sampling};
use crate::decode::Decoder;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::net::IpAddr;
use std::path::Path;
use thiserror::Error;

const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Error)]
pub enum StateError {
    #[error("reading state file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("state file {path} is not valid: {source}")]
    Parse {
        path: String,
        source: serde_json::Error,
    },
    #[error("state file {path} has format version {found}, this collector reads {FORMAT_VERSION}")]
    Version { path: String, found: u32 },
    #[error("writing state file {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

#[derive(Serialize, Deserialize)]
struct StateFile {
    format_version: u32,
    exporters: Vec<ExporterEntry>,
}

#[derive(Serialize, Deserialize)]
struct ExporterEntry {
    exporter: IpAddr,
    domains: Vec<DomainEntry>,
}

#[derive(Serialize, Deserialize)]
struct DomainEntry {
    domain: u32,
    templates: Vec<TemplateEntry>,
    sampling: Sampling,
    system_init_ms: Option<i64>,
}

#[derive(Serialize, Deserialize)]
struct TemplateEntry {
    proto: Proto,
    id: u16,
    #[serde(flatten)]
    raw: RawTemplate,
}

/// What loading restored.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LoadReport {
    pub exporters: usize,
    pub templates: usize,
    /// Saved templates that no longer parse (counted, skipped).
    pub bad_templates: usize,
}

/// Writes the decoder's state to `path` atomically.
pub fn save(decoder: &Decoder, path: &Path) -> Result<(), StateError> {
    let werr = |source| StateError::Write {
        path: path.display().to_string(),
        source,
    };
    let mut exporters: Vec<ExporterEntry> = decoder
        .exporters
        .iter()
        .map(|(ip, ex)| {
            let mut domains: Vec<DomainEntry> = ex
                .domains
                .iter()
                .map(|(d, dom)| {
                    let mut templates: Vec<TemplateEntry> = dom
                        .raw
                        .iter()
                        .map(|((proto, id), raw)| TemplateEntry {
                            proto: *proto,
                            id: *id,
                            raw: raw.clone(),
                        })
                        .collect();
                    templates.sort_by_key(|t| (t.proto == Proto::Ipfix, t.id));
                    DomainEntry {
                        domain: *d,
                        templates,
                        sampling: dom.sampling.clone(),
                        system_init_ms: dom.system_init_ms,
                    }
                })
                .collect();
            domains.sort_by_key(|d| d.domain);
            ExporterEntry {
                exporter: *ip,
                domains,
            }
        })
        .collect();
    exporters.sort_by_key(|e| e.exporter);
    let file = StateFile {
        format_version: FORMAT_VERSION,
        exporters,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(werr)?;
    }
    let tmp = path.with_extension("json.tmp");
    let mut f = std::fs::File::create(&tmp).map_err(werr)?;
    let bytes = serde_json::to_vec(&file).map_err(|e| werr(std::io::Error::other(e)))?;
    f.write_all(&bytes).map_err(werr)?;
    f.sync_all().map_err(werr)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(werr)?;
    Ok(())
}

/// Restores templates and sampling state into `decoder`. A missing file is not an error (first
/// start); an unreadable one is.
pub fn load(decoder: &mut Decoder, path: &Path) -> Result<LoadReport, StateError> {
    let p = path.display().to_string();
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(LoadReport::default()),
        Err(source) => return Err(StateError::Read { path: p, source }),
    };
    let file: StateFile = serde_json::from_slice(&bytes).map_err(|source| StateError::Parse {
        path: p.clone(),
        source,
    })?;
    if file.format_version != FORMAT_VERSION {
        return Err(StateError::Version {
            path: p,
            found: file.format_version,
        });
    }
    let mut report = LoadReport::default();
    // Exporters kept refreshing their templates while we were down; the lifetime starts again now.
    let now = crate::ingest::udp::now_ms();
    for e in file.exporters {
        report.exporters += 1;
        let ex = decoder.exporters.entry(e.exporter).or_default();
        for d in e.domains {
            let dom = ex.domains.entry(d.domain).or_default();
            dom.sampling = d.sampling;
            dom.system_init_ms = d.system_init_ms;
            for t in d.templates {
                match parse_template(t.proto, t.raw.options, &t.raw.bytes) {
                    Ok(parsed) => {
                        dom.templates.insert((t.proto, t.id), parsed);
                        let mut raw = t.raw;
                        raw.refreshed_ms = raw.refreshed_ms.max(now);
                        dom.raw.insert((t.proto, t.id), raw);
                        report.templates += 1;
                    }
                    Err(_) => report.bad_templates += 1,
                }
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DecoderConfig;

    /// An IPFIX message with one template (id 256: sourceIPv4Address, octetDeltaCount).
    fn template_msg() -> Vec<u8> {
        let mut m = vec![0, 10, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 7];
        m.extend_from_slice(&[0, 2, 0, 16, 1, 0, 0, 2, 0, 8, 0, 4, 0, 1, 0, 8]);
        let len = m.len() as u16;
        m[2..4].copy_from_slice(&len.to_be_bytes());
        m
    }

    fn data_msg() -> Vec<u8> {
        let mut m = vec![0, 10, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 7];
        m.extend_from_slice(&[1, 0, 0, 16, 10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 4, 0]);
        let len = m.len() as u16;
        m[2..4].copy_from_slice(&len.to_be_bytes());
        m
    }

    #[test]
    fn restart_decodes_from_saved_templates() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.json");
        let ip: IpAddr = "192.0.2.1".parse().expect("ip");
        let mut a = Decoder::new(DecoderConfig::for_files());
        let mut out = Vec::new();
        assert!(a.decode(ip, None, &template_msg(), &mut out).state_changed);
        save(&a, &path).expect("save");

        let mut b = Decoder::new(DecoderConfig::for_files());
        let r = load(&mut b, &path).expect("load");
        assert_eq!((r.exporters, r.templates, r.bad_templates), (1, 1, 0));
        b.decode(ip, None, &data_msg(), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].octets, 1024);
        assert_eq!(b.totals.undecoded_sets, 0);
    }

    #[test]
    fn missing_file_is_a_first_start_and_garbage_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut d = Decoder::new(DecoderConfig::default());
        assert_eq!(
            load(&mut d, &dir.path().join("none.json")).expect("ok"),
            LoadReport::default()
        );
        let bad = dir.path().join("bad.json");
        std::fs::write(&bad, b"{not json").expect("write");
        assert!(matches!(load(&mut d, &bad), Err(StateError::Parse { .. })));
    }
}
