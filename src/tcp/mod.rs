//! TCP, sans-IO: one connection as a state machine that does no I/O and reads no clock.
//!
//! Read first (the code cites them section by section):
//! * RFC 9293 — TCP itself: states (§3.3.2), sequence space (§3.4), handshake (§3.5), close
//!   (§3.6), segment arrival (§3.10.7), RST generation (§3.10.7.1), keep-alives (§3.8.4).
//! * RFC 1122 §4.2 — host requirements: delayed ACK, silly-window avoidance, Nagle, keep-alive.
//! * RFC 6298 — the retransmission timer. RFC 5681 — congestion control; RFC 6582 — NewReno
//!   (recovery without SACK); RFC 3042 — limited transmit.
//! * RFC 2018, RFC 2883, RFC 6675 — SACK, DSACK, SACK-based recovery (`recovery/`).
//! * RFC 8985 — RACK-TLP loss detection; RFC 6937 — PRR; RFC 5682 — F-RTO; RFC 3522 — Eifel
//!   detection of spurious retransmissions with timestamps.
//! * RFC 9438 — CUBIC, RFC 9406 — HyStart++ (`cc/`). RFC 3168 — ECN.
//! * RFC 6928 — initial window of 10 segments. RFC 7323 — window scale and timestamps.
//! * RFC 5961 — blind in-window attacks (challenge ACKs).
//! * RFC 6528 — initial sequence numbers. RFC 4987 — SYN floods and SYN cookies.

pub mod assembler;
pub mod buffer;
pub mod cc;
pub mod config;
pub mod cookie;
pub mod isn;
pub mod recovery;
pub mod rtt;
pub mod seq;
pub mod tcb;

pub use config::{EcnMode, Keepalive, TcpConfig, WindowUpdate};
pub use cookie::SynCookies;
pub use isn::IsnGenerator;
pub use seq::SeqNum;
pub use tcb::{
    reset_for, CaState, CloseReason, Event, IcmpError, RxInfo, State, Tcb, TcbBuffers, TcbStats, TcpError, TcpInfo,
    TimeWaitReuse,
};

#[cfg(test)]
mod tests;
