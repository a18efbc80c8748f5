//! Loss recovery for the sender, sans-IO like the rest of `tcp/`:
//! * [`Scoreboard`]: what was sent, when, and what the peer SACKed (RFC 2018, RFC 6675 §3);
//! * [`Rack`]: RACK's time-based loss detection and the tail loss probe (RFC 8985);
//! * [`Prr`]: the window during a reduction (RFC 6937);
//! * [`rate`]: delivery-rate samples for model-based congestion control.
//!
//! The connection (`tcb/recovery.rs`) runs them: it feeds each ACK's cumulative and SACK
//! information to the scoreboard, lets RACK mark losses, enters and leaves recovery, asks PRR
//! for cwnd, undoes spurious reductions (DSACK, RFC 2883; timestamps, RFC 3522; F-RTO,
//! RFC 5682), and chooses what to resend.

pub mod prr;
pub mod rack;
pub mod rate;
pub mod scoreboard;

pub use prr::Prr;
pub use rack::{probe_timeout, Rack, Tlp, DUP_THRESH};
pub use scoreboard::{sent_after, Delivered, Scoreboard, Seg};
