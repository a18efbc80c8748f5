#![cfg(feature = "pkt")]
//! Conformance: every packetdrill script in tests/pkt/ (not tests/pkt/known-failures/, which
//! holds scripts that expect RFC behaviour the TCB does not have yet) must pass under the
//! default profile. A failure lists each failing script with its first mismatch.

use std::path::PathBuf;
use xtcp::pkt::{collect_scripts, run_file, Outcome, RunConfig};

fn scripts_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/pkt")
}

#[test]
fn every_script_passes() {
    let scripts = collect_scripts(&[scripts_dir()]).expect("tests/pkt is readable");
    assert!(scripts.len() >= 60, "expected at least 60 scripts, found {}", scripts.len());
    let cfg = RunConfig::default();
    let mut failures = Vec::new();
    for path in &scripts {
        let report = run_file(path, &cfg);
        if report.outcome != Outcome::Pass {
            failures.push(format!("{}: {}", path.display(), report.summary()));
        }
    }
    assert!(failures.is_empty(), "{} of {} scripts failed:\n{}", failures.len(), scripts.len(), failures.join("\n"));
}

/// The known failures must still fail (each documents a TCB bug): when one starts passing,
/// the bug was fixed and the script belongs in tests/pkt/ with the others.
#[test]
fn known_failures_still_fail() {
    let dir = scripts_dir().join("known-failures");
    if !dir.exists() {
        return; // none at the moment: every script that found a bug passes now (regression-*.pkt)
    }
    let scripts = collect_scripts(&[dir]).expect("known-failures is readable");
    let cfg = RunConfig::default();
    for path in &scripts {
        let report = run_file(path, &cfg);
        assert!(
            matches!(report.outcome, Outcome::Fail(_)),
            "{} now passes: the TCB bug it documents is fixed; move it to tests/pkt/",
            path.display()
        );
    }
}

/// The xtcp profile is Linux's today; every script passes under it too.
#[test]
fn every_script_passes_under_the_xtcp_profile() {
    let scripts = collect_scripts(&[scripts_dir()]).expect("tests/pkt is readable");
    let cfg = RunConfig { profile: xtcp::pkt::Profile::Xtcp, ..RunConfig::default() };
    for path in &scripts {
        let report = run_file(path, &cfg);
        assert_eq!(report.outcome, Outcome::Pass, "{}: {}", path.display(), report.summary());
    }
}

/// Lenient mode relaxes checks; it must not turn a passing script into a failing one.
#[test]
fn every_script_passes_in_lenient_mode() {
    let scripts = collect_scripts(&[scripts_dir()]).expect("tests/pkt is readable");
    let cfg = RunConfig { lenient: true, ..RunConfig::default() };
    for path in &scripts {
        let report = run_file(path, &cfg);
        assert_eq!(report.outcome, Outcome::Pass, "{}: {}", path.display(), report.summary());
        assert!(report.skipped.is_empty(), "{}: nothing in xtcp's own scripts is unsupported", path.display());
    }
}
