#![cfg(feature = "mem")]
//! The simulator's seeds, run by CI: every profile, 2,400 seeds in all (see tests/sim/mod.rs
//! for the checks). A failure prints its seed, profile and the command that replays it.

mod sim;

use sim::{run, Overrides, Profile};

/// Seeds per profile; 12 profiles.
const SEEDS: u64 = 200;

#[test]
fn all_profiles_all_seeds() {
    let mut failures = Vec::new();
    let mut runs = 0;
    let mut retransmits = 0u64;
    for profile in Profile::all() {
        for seed in 0..SEEDS {
            runs += 1;
            match run(seed, &profile, &Overrides::default()) {
                Ok(o) => retransmits += o.retransmits[0] + o.retransmits[1],
                Err(f) => failures.push(f.to_string()),
            }
        }
    }
    for f in failures.iter().take(20) {
        eprintln!("FAILED {f}");
    }
    assert!(failures.is_empty(), "{} of {runs} runs failed (first above)", failures.len());
    assert!(runs >= 2000);
    assert!(retransmits > 0, "lossy profiles must have made the stack retransmit");
}
