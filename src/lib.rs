//! xtcp: a kernel-bypass TCP/IP stack.
//!
//! Layers, bottom to top (each looks only down; see `DESIGN.md` in the shared docs):
//!
//! * [`wire`]: checked zero-copy views over frames plus a `Repr` for each header
//!   (Ethernet II, ARP, IPv4, ICMPv4, TCP with options, UDP), the Internet checksum
//!   and the Toeplitz (RSS) hash. No I/O, no clock, no allocation.
//!
//! * [`io`]: devices. The AF_XDP backend (`io::afxdp`, feature `afxdp`) with its XDP program
//!   (`bpf/`), the pcap file format (the stack's tap and `xtcp decode`), and a SIGINT/SIGTERM
//!   shutdown flag for device loops.
//!
//! * [`tcp`]: the sans-IO TCP state machine; [`time`]: the clock type and timer wheel.
//!
//! * `pkt` (feature `pkt`, in `cli`): packetdrill scripts run against a TCB in virtual time
//!   (`xtcp-pkt`). `apps` (feature `apps`, in `cli`): the CLI's ready-made applications.
//!
//! * [`stack`]: one core's stack; [`runtime`]: one pinned run-to-completion loop per core, with
//!   software steering of flows to their owner core over bounded lock-free rings.
//!
//! * `tokio` (feature `tokio`): tokio's `AsyncRead`/`AsyncWrite` on one core's stack, so code
//!   written for tokio's sockets runs on xtcp.
#![deny(unsafe_code)]
#![deny(missing_docs)]
#![warn(missing_debug_implementations)]

#[cfg(feature = "apps")]
pub mod apps;
pub mod io;
#[cfg(feature = "pkt")]
pub mod pkt;
pub mod runtime;
pub mod stack;
pub mod tcp;
pub mod time;
#[cfg(feature = "tokio")]
pub mod tokio;
pub mod wire;
