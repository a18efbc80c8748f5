//! `xtcp-bench`: benchmarks of xtcp.
//!
//! Micro-benchmarks of the hot path live in `benches/` (run with
//! `cargo bench -p xtcp-bench`). They report throughput and time, never pass/fail: speed
//! targets are numbers to compare, not assertions.
