//! Errors of the loader: each says which program, map or interface it concerns.

use std::fmt;

use super::AttachMode;

/// What can go wrong loading, attaching or reading the tap's kernel program.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// The object was rejected (bad ELF, map creation refused, missing privileges…).
    #[error("loading the tap's BPF object: {0}")]
    Load(#[source] aya::EbpfError),
    #[error("the BPF object has no program {0}")]
    MissingProgram(&'static str),
    #[error("the BPF object has no map {0} (or it was already taken)")]
    MissingMap(&'static str),
    /// Loading into the kernel (the verifier's log is in the source) or a wrong program type.
    #[error("program {name}: {source}")]
    Program {
        name: &'static str,
        #[source]
        source: aya::programs::ProgramError,
    },
    #[error("map {name}: {source}")]
    Map {
        name: &'static str,
        #[source]
        source: aya::maps::MapError,
    },
    /// Every mode tried failed; `attempts` lists each mode with its error.
    #[error("attaching to {interface}: {}", Attempts(.attempts))]
    Attach {
        interface: String,
        attempts: Vec<(AttachMode, String)>,
    },
    #[error("no interface named {0:?}")]
    NoSuchInterface(String),
    #[error("waiting on the ring buffer: {0}")]
    Poll(#[source] std::io::Error),
    #[error("the ring buffer was already taken by an EventReader")]
    EventsTaken,
}

struct Attempts<'a>(&'a [(AttachMode, String)]);

impl fmt::Display for Attempts<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (mode, err)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{mode}: {err}")?;
        }
        Ok(())
    }
}
