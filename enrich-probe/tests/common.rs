//! Helpers shared by the tap's integration tests (not a test target itself).

use std::path::PathBuf;

/// The test data folder: `SNF_TESTDATA`, else `../shared/testdata` beside the workspace root.
/// `None` (after a loud SKIPPED line) when it is missing.
pub fn testdata(test: &str) -> Option<PathBuf> {
    let dir = match std::env::var_os("SNF_TESTDATA") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata"),
    };
    if dir.join("apps").is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "SKIPPED {test}: no test data at {} (set SNF_TESTDATA)",
            dir.display()
        );
        None
    }
}

/// Every file under `dir` whose name ends with one of `exts`, sorted.
#[allow(dead_code)] // not every test file that includes this module lists files
pub fn files_under(dir: &std::path::Path, exts: &[&str]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| exts.iter().any(|x| n.ends_with(x)))
            {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}
