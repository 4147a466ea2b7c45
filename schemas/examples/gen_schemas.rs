//! Rewrites `schemas/published/` from the record types.
//!
//! ```text
//! cargo run -p supernetflow-schemas --example gen_schemas
//! ```

use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("published");
    for kind in schemas::RecordKind::ALL {
        for p in schemas::published::shape_problems(kind) {
            eprintln!("warning: {kind}: {p}");
        }
    }
    match schemas::published::write_all(&dir) {
        Ok(names) => {
            for n in names {
                println!("wrote {}", dir.join(n).display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: writing {}: {e}", dir.display());
            ExitCode::FAILURE
        }
    }
}
