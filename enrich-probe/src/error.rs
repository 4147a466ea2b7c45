//! Errors of the tap's user side.

/// What can go wrong outside the per-packet hot path (which counts its problems instead).
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// A file could not be opened or read.
    #[error("{0}: {1}")]
    Io(String, #[source] std::io::Error),
    /// A file is not a capture the tap reads.
    #[error("{0}: not a pcap/pcapng capture ({1})")]
    Capture(String, String),
    /// The signature file is invalid.
    #[error("signature file {0}: {1}")]
    Signatures(String, String),
}
