//! TCP, sans-IO: one connection as a state machine that does no I/O and reads no clock.
//!
//! Read first (the code cites them section by section):
//! * RFC 9293 — TCP itself: states (§3.3.2), sequence space (§3.4), handshake (§3.5), close
//!   (§3.6), segment arrival (§3.10.7), RST generation (§3.10.7.1), keep-alives (§3.8.4).
//! * RFC 1122 §4.2 — host requirements: delayed ACK, silly-window avoidance, Nagle, keep-alive.
//! * RFC 6298 — the retransmission timer. RFC 5681, RFC 6582 — congestion control, NewReno.
//! * RFC 6928 — initial window of 10 segments. RFC 7323 — window scale and timestamps.
//! * RFC 2018 — SACK. RFC 5961 — blind in-window attacks (challenge ACKs).
//! * RFC 6528 — initial sequence numbers. RFC 4987 — SYN floods and SYN cookies.

pub mod assembler;
pub mod buffer;
pub mod config;
pub mod congestion;
pub mod isn;
pub mod rtt;
pub mod seq;
pub mod tcb;

pub use config::{Keepalive, TcpConfig};
pub use isn::IsnGenerator;
pub use seq::SeqNum;
pub use tcb::{reset_for, CloseReason, Event, IcmpError, State, Tcb, TcbBuffers, TcbStats, TcpError};

#[cfg(test)]
mod tests;
