//! Congestion control behind one trait: CUBIC (RFC 9438, the default, as in Linux) with
//! HyStart++ (RFC 9406), Reno (RFC 5681), and BBR v1 (model-based, as Linux's tcp_bbr.c).
//!
//! A controller owns cwnd and ssthresh and decides how they move; it sees no segments and no
//! clock. The connection tells it what happened:
//! * [`CongestionControl::on_ack`] for every ACK that delivered data outside a window
//!   reduction (slow start, congestion avoidance, and the slow start after a timeout), with
//!   the bytes delivered, an RTT sample and whether the sender was using its whole window;
//! * [`CongestionControl::on_congestion`] once per congestion event (a loss detected by RACK
//!   or by duplicate ACKs, an ECN echo, a loss repaired by a tail loss probe): it sets the new
//!   ssthresh; during the reduction that follows PRR (RFC 6937, `recovery::Prr`) sets cwnd
//!   with [`CongestionControl::set_cwnd`], and [`CongestionControl::on_reduction_end`] ends it;
//! * [`CongestionControl::on_rto`] when the retransmission timer expires;
//! * [`CongestionControl::on_idle_restart`] before sending after an idle period.
//!
//! A model-based controller (BBR, [`CongestionControl::model_based`]) instead sees every ACK
//! in every phase through `on_ack`, with the ACK's delivery-rate sample (`recovery::rate`),
//! the bytes it newly marked lost and the phase; PRR does not run for it, and it asks for
//! pacing ([`CongestionControl::pacing_rate`]) — as Linux runs a `cong_control` module.
//!
//! Spurious congestion events are undone by the connection keeping a copy of the controller
//! from before the event (RFC 9438 §4.9, RFC 5682 §4 leave the response to the sender; Linux
//! restores cwnd and ssthresh): controllers are small `Copy` values for that reason. A
//! model-based controller keeps its model instead ([`CongestionControl::on_undo`]).

pub mod bbr;
pub mod cubic;
pub mod hystart;
pub mod reno;

pub use bbr::Bbr;
pub use cubic::Cubic;
pub use reno::Reno;

use crate::tcp::recovery::rate::RateSample;
use crate::tcp::SeqNum;
use crate::time::{Duration, Instant};

/// RFC 6928 §2: an initial window of ten segments.
pub const RFC6928_IW_SEGMENTS: usize = 10;

/// RFC 6928 §2's byte bound on the initial window: IW = min(10·MSS, max(2·MSS, 14600)).
const IW_BYTE_BOUND: usize = 14_600;

/// The initial window for `smss` and `segments` (RFC 6928 §2, with `segments` in place of its
/// 10): min(segments·MSS, max(2·MSS, 14600)). The byte bound keeps jumbo-frame connections
/// from starting with ten 9000-byte segments.
pub fn initial_window(smss: usize, segments: usize) -> usize {
    let by_segments = segments.max(1).saturating_mul(smss);
    by_segments.min(smss.saturating_mul(2).max(IW_BYTE_BOUND))
}

/// RFC 5681 §3.1 eq. (4)'s floor on ssthresh: two segments.
fn ssthresh_floor(smss: usize) -> usize {
    smss.saturating_mul(2)
}

/// Which controller a connection uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Algorithm {
    /// CUBIC (RFC 9438) with HyStart++ (RFC 9406): Linux's default.
    #[default]
    Cubic,
    /// Reno (RFC 5681), counting bytes (RFC 3465).
    Reno,
    /// BBR v1: paced at the measured bottleneck bandwidth, loss not taken for congestion.
    Bbr,
}

impl core::str::FromStr for Algorithm {
    type Err = &'static str;
    fn from_str(s: &str) -> Result<Algorithm, &'static str> {
        match s {
            "cubic" => Ok(Algorithm::Cubic),
            "reno" | "newreno" => Ok(Algorithm::Reno),
            "bbr" => Ok(Algorithm::Bbr),
            _ => Err("congestion control is cubic, reno or bbr"),
        }
    }
}

/// What one ACK that delivered data tells the controller.
#[derive(Debug, Clone, Copy, Default)]
pub struct AckSample {
    /// When the ACK was processed.
    pub now: Instant,
    /// Bytes newly delivered: cumulatively acknowledged or selectively acknowledged for the
    /// first time (RFC 6937's DeliveredData).
    pub delivered: usize,
    /// The RTT this ACK measured (from the most recently sent segment it delivered that was
    /// never retransmitted), if any.
    pub rtt: Option<Duration>,
    /// The lowest RTT seen recently (RFC 8985's RACK.min_RTT).
    pub min_rtt: Option<Duration>,
    /// SND.UNA after the ACK and SND.NXT: rounds are counted by them (RFC 9406 §4.2).
    pub snd_una: SeqNum,
    /// SND.NXT when the ACK was processed.
    pub snd_nxt: SeqNum,
    /// The sender was limited by cwnd in the last round (RFC 7661 §4.3: a window that was not
    /// used is not validated, so it must not grow).
    pub cwnd_limited: bool,
    /// The delivery-rate sample of this ACK (model-based controllers).
    pub rate: RateSample,
    /// Bytes delivered over the connection's life, this ACK's included.
    pub total_delivered: u64,
    /// Bytes this ACK made the sender mark lost.
    pub lost: usize,
    /// RFC 6675's pipe after the ACK, and before it.
    pub in_flight: usize,
    /// RFC 6675's pipe before the ACK, in bytes.
    pub prior_in_flight: usize,
    /// The sender's phase after the ACK.
    pub phase: Phase,
}

/// The sender's loss-recovery phase, as a controller sees it (Linux's ca_state).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Phase {
    /// Nothing known lost, no reduction under way.
    #[default]
    Open,
    /// Reducing for an ECN echo (RFC 3168 §6.1.2).
    Cwr,
    /// Fast recovery (RFC 6675).
    Recovery,
    /// Recovering after a retransmission timeout.
    Loss,
}

/// The operations every controller provides (module docs).
pub trait CongestionControl {
    /// The congestion window, bytes.
    fn cwnd(&self) -> usize;
    /// The slow-start threshold, bytes (`usize::MAX` until the first congestion event).
    fn ssthresh(&self) -> usize;
    /// The sender's MSS cwnd is counted in.
    fn smss(&self) -> usize;
    /// The MSS became known (after the handshake) or changed (PMTU).
    fn set_mss(&mut self, mss: usize);
    /// Set cwnd during a reduction (PRR) or an undo; at least one segment.
    fn set_cwnd(&mut self, cwnd: usize);
    /// Grow the window for an ACK outside a reduction.
    fn on_ack(&mut self, ack: &AckSample);
    /// A congestion event: set ssthresh for the reduction that follows (PRR brings cwnd down
    /// to it). `flight` is the data outstanding when it was detected.
    fn on_congestion(&mut self, now: Instant, flight: usize);
    /// The reduction is over: cwnd = ssthresh (RFC 6937 §3, RFC 6675 §5 step 4).
    fn on_reduction_end(&mut self);
    /// The retransmission timer expired. `first` is false when the data it retransmits was
    /// already retransmitted by an earlier timeout (RFC 5681 §3.1: ssthresh is then held).
    fn on_rto(&mut self, now: Instant, flight: usize, first: bool);
    /// About to send after `idle` without sending, with the current RTO (RFC 5681 §4.1).
    fn on_idle_restart(&mut self, idle: Duration, rto: Duration);
    /// In slow start.
    fn in_slow_start(&self) -> bool {
        self.cwnd() < self.ssthresh()
    }
    /// Sees every ACK in every phase and sets cwnd itself, without PRR (module docs).
    fn model_based(&self) -> bool {
        false
    }
    /// The rate to pace transmissions at, bytes per second; `None`: unpaced.
    fn pacing_rate(&self) -> Option<u64> {
        None
    }
    /// A spurious reduction was undone (model-based controllers; the others are restored
    /// from a copy).
    fn on_undo(&mut self) {}
    /// The handshake measured the path's RTT (before any data was sent).
    fn on_handshake_rtt(&mut self, _now: Instant, _rtt: Duration) {}
}

/// The controller a connection runs: one of the algorithms, by value (no allocation, no
/// dynamic dispatch on the data path).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Controller {
    /// CUBIC (RFC 9438) with HyStart++.
    Cubic(Cubic),
    /// Reno (RFC 5681).
    Reno(Reno),
    /// BBR v1.
    Bbr(Bbr),
}

impl Controller {
    /// A controller running `alg` for a sender with MSS `mss`, starting from an initial window of
    /// `iw_segments` segments (bounded as [`initial_window`] says).
    pub fn new(alg: Algorithm, mss: usize, iw_segments: usize) -> Controller {
        match alg {
            Algorithm::Cubic => Controller::Cubic(Cubic::new(mss, iw_segments)),
            Algorithm::Reno => Controller::Reno(Reno::new(mss, iw_segments)),
            Algorithm::Bbr => Controller::Bbr(Bbr::new(mss, iw_segments)),
        }
    }

    /// Which algorithm this controller runs.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            Controller::Cubic(_) => Algorithm::Cubic,
            Controller::Reno(_) => Algorithm::Reno,
            Controller::Bbr(_) => Algorithm::Bbr,
        }
    }
}

/// Calls the method on whichever controller it is (a match, not a vtable).
macro_rules! delegate {
    ($self:ident, $c:ident => $e:expr) => {
        match $self {
            Controller::Cubic($c) => $e,
            Controller::Reno($c) => $e,
            Controller::Bbr($c) => $e,
        }
    };
}

impl CongestionControl for Controller {
    fn cwnd(&self) -> usize {
        delegate!(self, c => c.cwnd())
    }
    fn ssthresh(&self) -> usize {
        delegate!(self, c => c.ssthresh())
    }
    fn smss(&self) -> usize {
        delegate!(self, c => c.smss())
    }
    fn set_mss(&mut self, mss: usize) {
        delegate!(self, c => c.set_mss(mss))
    }
    fn set_cwnd(&mut self, cwnd: usize) {
        delegate!(self, c => c.set_cwnd(cwnd))
    }
    fn on_ack(&mut self, ack: &AckSample) {
        delegate!(self, c => c.on_ack(ack))
    }
    fn on_congestion(&mut self, now: Instant, flight: usize) {
        delegate!(self, c => c.on_congestion(now, flight))
    }
    fn on_reduction_end(&mut self) {
        delegate!(self, c => c.on_reduction_end())
    }
    fn on_rto(&mut self, now: Instant, flight: usize, first: bool) {
        delegate!(self, c => c.on_rto(now, flight, first))
    }
    fn on_idle_restart(&mut self, idle: Duration, rto: Duration) {
        delegate!(self, c => c.on_idle_restart(idle, rto))
    }
    fn model_based(&self) -> bool {
        delegate!(self, c => c.model_based())
    }
    fn pacing_rate(&self) -> Option<u64> {
        delegate!(self, c => c.pacing_rate())
    }
    fn on_undo(&mut self) {
        delegate!(self, c => c.on_undo())
    }
    fn on_handshake_rtt(&mut self, now: Instant, rtt: Duration) {
        delegate!(self, c => c.on_handshake_rtt(now, rtt))
    }
}

/// cwnd when the MSS becomes known or changes: if no ACK or loss has moved it yet it is the
/// new initial window, since the old one was counted in segments of the wrong size; otherwise
/// it keeps its byte value but is at least one new segment.
fn cwnd_for_new_mss(cwnd: usize, untouched: bool, smss: usize, iw_segments: usize) -> usize {
    if untouched {
        initial_window(smss, iw_segments)
    } else {
        cwnd.max(smss)
    }
}

/// RFC 5681 §4.1's restart window, shared by the controllers: if nothing was sent for longer
/// than the RTO, cwnd = min(cwnd, RW) with RW = min(IW, cwnd). Returns the new cwnd.
fn restart_window(cwnd: usize, iw: usize, idle: Duration, rto: Duration) -> usize {
    if idle > rto {
        cwnd.min(iw)
    } else {
        cwnd
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_window_follows_rfc6928() {
        assert_eq!(initial_window(1460, 10), 14_600);
        assert_eq!(initial_window(536, 10), 5_360);
        // Jumbo frames: the byte bound, at least two segments.
        assert_eq!(initial_window(8960, 10), 17_920);
        assert_eq!(initial_window(1460, 4), 5_840);
    }

    #[test]
    fn algorithms_parse_by_name() {
        assert_eq!("cubic".parse(), Ok(Algorithm::Cubic));
        assert_eq!("reno".parse(), Ok(Algorithm::Reno));
        assert_eq!("bbr".parse(), Ok(Algorithm::Bbr));
        assert!("vegas".parse::<Algorithm>().is_err());
        assert_eq!(Controller::new(Algorithm::Reno, 1460, 10).algorithm(), Algorithm::Reno);
    }
}
