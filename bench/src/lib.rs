//! `xtcp-bench`: benchmarks of xtcp.
//!
//! The load generator and its server (`xtcp-bench client`, `xtcp-bench server`) run over either
//! TCP stack — the kernel's (std sockets, epoll via mio) or xtcp's (AF_XDP, one core) — behind
//! one small interface ([`net::Net`]), so the same workload code measures both. Results are
//! hdrhistogram latencies, throughput and CPU time, printed, saved as JSON and `.hgrm`, and
//! plotted ([`plot`]). `xtcp-bench bounce` measures the raw AF_XDP path with no TCP;
//! `xtcp-bench loss` holds xtcp's and the kernel's TCP side by side under random loss
//! ([`loss`]).
//!
//! Micro-benchmarks of the hot path live in `benches/` (run with `cargo bench -p xtcp-bench`).
//! They report throughput and time, never pass/fail: speed targets are numbers to compare, not
//! assertions.

pub mod bounce;
pub mod client;
pub mod loss;
pub mod net;
pub mod plot;
pub mod proto;
pub mod results;
pub mod server;
pub mod table;
