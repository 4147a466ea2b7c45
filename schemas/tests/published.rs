//! The files under `schemas/published/` are what the types generate.
//!
//! On a difference: run `cargo run -p supernetflow-schemas --example gen_schemas` (or this test with
//! `OVERWRITE=true`) and commit the result.

use schemas::published::{files, write_all, REGENERATE};
use std::path::Path;

/// The first lines where `want` (generated) and `got` (checked in) differ, as a short diff.
fn diff(want: &str, got: &str) -> String {
    let (w, g): (Vec<&str>, Vec<&str>) = (want.lines().collect(), got.lines().collect());
    let mut out = String::new();
    let mut shown = 0;
    for i in 0..w.len().max(g.len()) {
        let (a, b) = (w.get(i), g.get(i));
        if a != b {
            if let Some(b) = b {
                out.push_str(&format!("  line {:>5} checked in: {b}\n", i + 1));
            }
            if let Some(a) = a {
                out.push_str(&format!("  line {:>5} generated:  {a}\n", i + 1));
            }
            shown += 1;
            if shown == 8 {
                out.push_str("  ...\n");
                break;
            }
        }
    }
    out
}

#[test]
fn published_files_are_up_to_date() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("published");
    if std::env::var("OVERWRITE").is_ok_and(|v| v == "true" || v == "1") {
        write_all(&dir).expect("write schemas/published");
        return;
    }
    let generated = files();
    let mut problems = Vec::new();
    for f in &generated {
        let path = dir.join(&f.name);
        match std::fs::read_to_string(&path) {
            Ok(on_disk) if on_disk == f.contents => {}
            Ok(on_disk) => problems.push(format!(
                "schemas/published/{} differs from what the types generate:\n{}",
                f.name,
                diff(&f.contents, &on_disk)
            )),
            Err(e) => problems.push(format!("schemas/published/{}: {e}", f.name)),
        }
    }
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !generated.iter().any(|f| f.name == name) {
                problems.push(format!(
                    "schemas/published/{name} is not generated any more"
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{}\n\nThe published schemas are out of date: run `{REGENERATE}` (or this test with \
         OVERWRITE=true) and commit schemas/published/.",
        problems.join("\n")
    );
}
