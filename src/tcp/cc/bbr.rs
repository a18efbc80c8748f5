//! BBR (Bottleneck Bandwidth and RTT), version 1, as Linux's tcp_bbr.c runs it
//! (draft-cardwell-iccrg-bbr-congestion-control-00; Cardwell et al., ACM Queue 14(5), 2016).
//!
//! A model-based controller: it does not read loss as congestion. On every ACK it updates a
//! model of the path — the bottleneck bandwidth (windowed maximum of delivery-rate samples
//! over 10 round trips, `recovery::rate`) and the propagation RTT (windowed minimum over
//! 10 s) — and sends at `pacing_gain · bw`, with cwnd = `cwnd_gain · bw · min_rtt` plus a
//! quantization budget. States: STARTUP (gain 2/ln 2 until the bandwidth stops growing by
//! 25 % for 3 rounds), DRAIN (the queue STARTUP built), PROBE_BW (gain cycling 1.25, 0.75,
//! then six rounds at 1), PROBE_RTT (4 segments for 200 ms when min_rtt is 10 s old).
//! In loss recovery cwnd follows packet conservation for one round, then grows back; leaving
//! recovery restores the cwnd from before it.
//!
//! Left out, as not needed on the paths xtcp runs over today: the long-term bandwidth
//! estimate for token-bucket policers (`lt_bw`). The connection paces what it sends at
//! [`Bbr::pacing_rate`] in bursts as long as Linux's (about a millisecond, at most 64 KiB),
//! woken by its pacing timer.

use super::{initial_window, AckSample, CongestionControl, Phase};
use crate::time::{Duration, Instant};

/// STARTUP's gain, 2/ln 2: the smallest that doubles the sending rate every round trip.
const HIGH_GAIN: f64 = 2.885;
const DRAIN_GAIN: f64 = 1.0 / HIGH_GAIN;
const CWND_GAIN: f64 = 2.0;
/// PROBE_BW's pacing gain cycle.
const CYCLE: [f64; 8] = [1.25, 0.75, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0];
/// The bandwidth filter's window, in round trips (Linux: CYCLE_LEN + 2).
const BW_WINDOW_ROUNDS: u64 = 10;
const MIN_RTT_WINDOW: Duration = Duration::from_secs(10);
const PROBE_RTT_TIME: Duration = Duration::from_millis(200);
/// Segments: the least in flight, even in PROBE_RTT.
const MIN_CWND_SEGS: usize = 4;
/// Pace 1 % under the estimate, to keep the bottleneck queue from growing.
const PACING_MARGIN: f64 = 0.99;
/// STARTUP has filled the pipe when the bandwidth grew less than 25 % ...
const FULL_BW_THRESH: f64 = 1.25;
/// ... for this many rounds.
const FULL_BW_ROUNDS: u32 = 3;
/// ACK aggregation: the window of the extra-acked filter, in rounds, and its cap in time.
const EXTRA_ACKED_WINDOW_ROUNDS: u32 = 5;
const EXTRA_ACKED_MAX: Duration = Duration::from_millis(100);

/// BBR's state machine (module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// STARTUP: pacing and cwnd gain 2/ln 2, until the bandwidth stops growing by 25 % for 3 rounds.
    Startup,
    /// DRAIN: pacing gain 1/(2/ln 2), until what is in flight is down to the estimated BDP.
    Drain,
    /// PROBE_BW: the steady state, pacing gain cycling 1.25, 0.75, then six rounds at 1.
    ProbeBw,
    /// PROBE_RTT: cwnd held at 4 segments for 200 ms when min_rtt has not been refreshed for 10 s.
    ProbeRtt,
}

/// A windowed maximum over rounds (Kathleen Nichols' estimator, three samples, as Linux's
/// minmax): the best, second best and third best of the window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct MaxFilter {
    s: [(u64, u64); 3], // (round, value)
}

impl MaxFilter {
    fn get(&self) -> u64 {
        self.s[0].1
    }
    fn update(&mut self, round: u64, v: u64, window: u64) {
        if v >= self.s[0].1 || round.saturating_sub(self.s[2].0) > window {
            self.s = [(round, v); 3];
            return;
        }
        if v >= self.s[1].1 {
            self.s[1] = (round, v);
            self.s[2] = (round, v);
        } else if v >= self.s[2].1 {
            self.s[2] = (round, v);
        }
        let dt = round.saturating_sub(self.s[0].0);
        if dt > window {
            self.s[0] = self.s[1];
            self.s[1] = self.s[2];
            self.s[2] = (round, v);
            if round.saturating_sub(self.s[0].0) > window {
                self.s[0] = self.s[1];
                self.s[1] = self.s[2];
                self.s[2] = (round, v);
            }
        } else if self.s[1].0 == self.s[0].0 && dt > window / 4 {
            self.s[1] = (round, v);
            self.s[2] = (round, v);
        } else if self.s[2].0 == self.s[1].0 && dt > window / 2 {
            self.s[2] = (round, v);
        }
    }
}

/// BBR v1 (module docs): a model of the path's bottleneck bandwidth and propagation RTT,
/// updated on every ACK, sets the pacing rate and cwnd.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bbr {
    smss: usize,
    iw_segments: usize,
    cwnd: usize,
    mode: Mode,
    /// Bottleneck bandwidth filter, bytes per second.
    bw: MaxFilter,
    min_rtt: Option<Duration>,
    min_rtt_stamp: Instant,
    /// Packet-timed rounds.
    round: u64,
    next_round_delivered: u64,
    round_start: bool,
    pacing_gain: f64,
    cwnd_gain: f64,
    pacing_rate: u64,
    full_bw: u64,
    full_bw_rounds: u32,
    full_bw_reached: bool,
    cycle_idx: usize,
    cycle_stamp: Instant,
    probe_rtt_done: Option<Instant>,
    probe_rtt_round_done: bool,
    /// The cwnd to come back to after recovery or PROBE_RTT.
    prior_cwnd: usize,
    packet_conservation: bool,
    prev_phase: Phase,
    idle_restart: bool,
    /// ACK aggregation (extra data acknowledged beyond what bw predicts).
    ack_epoch: Instant,
    ack_epoch_acked: u64,
    extra_acked: [u64; 2],
    extra_acked_rounds: u32,
    extra_acked_idx: usize,
    /// Deterministic choice of the first PROBE_BW phase (Linux draws it at random).
    rng: u32,
    has_seen_rtt: bool,
}

impl Bbr {
    /// A controller for a sender with MSS `mss`, starting in STARTUP with an initial window of
    /// `iw_segments` segments (bounded as [`initial_window`] says).
    pub fn new(mss: usize, iw_segments: usize) -> Bbr {
        let smss = mss.max(1);
        let cwnd = initial_window(smss, iw_segments);
        let mut b = Bbr {
            smss,
            iw_segments: iw_segments.max(1),
            cwnd,
            mode: Mode::Startup,
            bw: MaxFilter::default(),
            min_rtt: None,
            min_rtt_stamp: Instant::ZERO,
            round: 0,
            next_round_delivered: 0,
            round_start: false,
            pacing_gain: HIGH_GAIN,
            cwnd_gain: HIGH_GAIN,
            pacing_rate: 0,
            full_bw: 0,
            full_bw_rounds: 0,
            full_bw_reached: false,
            cycle_idx: 0,
            cycle_stamp: Instant::ZERO,
            probe_rtt_done: None,
            probe_rtt_round_done: false,
            prior_cwnd: 0,
            packet_conservation: false,
            prev_phase: Phase::Open,
            idle_restart: false,
            ack_epoch: Instant::ZERO,
            ack_epoch_acked: 0,
            extra_acked: [0; 2],
            extra_acked_rounds: 0,
            extra_acked_idx: 0,
            rng: 0x2545_f491,
            has_seen_rtt: false,
        };
        b.init_pacing_rate(None);
        b
    }

    /// The state BBR is in.
    pub fn mode(&self) -> Mode {
        self.mode
    }
    /// The bottleneck bandwidth estimate, bytes per second.
    pub fn bandwidth(&self) -> u64 {
        self.bw.get()
    }
    /// Whether STARTUP found the pipe full: the bandwidth grew less than 25 % for 3 rounds in a row.
    pub fn full_bw_reached(&self) -> bool {
        self.full_bw_reached
    }

    /// STARTUP's pacing before any bandwidth sample: high_gain · cwnd / RTT (1 ms without one).
    fn init_pacing_rate(&mut self, srtt: Option<Duration>) {
        let rtt = srtt.filter(|r| !r.is_zero()).unwrap_or(Duration::from_millis(1));
        let bw = self.cwnd as f64 / rtt.as_secs_f64();
        self.pacing_rate = (bw * HIGH_GAIN * PACING_MARGIN) as u64;
    }

    /// bytes = gain · bw · min_rtt, rounded up.
    fn bdp(&self, bw: u64, gain: f64) -> usize {
        let Some(rtt) = self.min_rtt else {
            // No RTT yet: be safe, at the initial window.
            return initial_window(self.smss, self.iw_segments);
        };
        (bw as f64 * rtt.as_secs_f64() * gain).ceil() as usize
    }

    /// Segments sent back to back at the current pacing rate: about a millisecond's worth
    /// (Linux's TSO autosizing), at least 2.
    fn quantum_segs(&self) -> usize {
        ((self.pacing_rate / 1000) as usize / self.smss).clamp(2, 64)
    }

    /// Linux's bbr_quantization_budget: room for the end hosts' batching, an even number
    /// of segments, and a little more while probing.
    fn quantization_budget(&self, cwnd: usize) -> usize {
        let mut segs = cwnd.div_ceil(self.smss) + 3 * self.quantum_segs();
        segs = (segs + 1) & !1;
        if self.mode == Mode::ProbeBw && self.cycle_idx == 0 {
            segs += 2;
        }
        segs * self.smss
    }

    fn inflight(&self, bw: u64, gain: f64) -> usize {
        self.quantization_budget(self.bdp(bw, gain))
    }

    fn next_rand(&mut self) -> u32 {
        // xorshift32: deterministic, as the rest of the core is.
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.rng = x;
        x
    }

    fn enter_probe_bw(&mut self, now: Instant) {
        self.mode = Mode::ProbeBw;
        // Linux: start at a random phase other than the one that drains (index 1).
        self.cycle_idx = CYCLE.len() - 1 - (self.next_rand() as usize % 7);
        self.advance_cycle(now);
    }

    fn advance_cycle(&mut self, now: Instant) {
        self.cycle_idx = (self.cycle_idx + 1) % CYCLE.len();
        self.cycle_stamp = now;
    }

    fn update_bw(&mut self, ack: &AckSample) {
        self.round_start = false;
        let rs = &ack.rate;
        let Some(rate) = rs.rate() else { return };
        if rs.prior_delivered >= self.next_round_delivered {
            self.next_round_delivered = ack.total_delivered;
            self.round += 1;
            self.round_start = true;
            self.packet_conservation = false;
        }
        // An application-limited sample is taken only if it shows more than the model.
        if !rs.app_limited || rate >= self.bw.get() {
            self.bw.update(self.round, rate, BW_WINDOW_ROUNDS);
        }
    }

    fn update_ack_aggregation(&mut self, ack: &AckSample) {
        if ack.delivered == 0 || ack.rate.interval.is_none() {
            return;
        }
        if self.round_start {
            self.extra_acked_rounds = (self.extra_acked_rounds + 1).min(31);
            if self.extra_acked_rounds >= EXTRA_ACKED_WINDOW_ROUNDS {
                self.extra_acked_rounds = 0;
                self.extra_acked_idx ^= 1;
                self.extra_acked[self.extra_acked_idx] = 0;
            }
        }
        let epoch = ack.now.saturating_duration_since(self.ack_epoch);
        let expected = (self.bw.get() as f64 * epoch.as_secs_f64()) as u64;
        if self.ack_epoch_acked <= expected {
            self.ack_epoch_acked = 0;
            self.ack_epoch = ack.now;
        }
        self.ack_epoch_acked += ack.delivered as u64;
        let expected = if self.ack_epoch == ack.now { 0 } else { expected };
        let extra = self.ack_epoch_acked.saturating_sub(expected).min(self.cwnd as u64);
        let slot = &mut self.extra_acked[self.extra_acked_idx];
        *slot = (*slot).max(extra);
    }

    fn aggregation_cwnd(&self) -> usize {
        if !self.full_bw_reached {
            return 0;
        }
        let max = (self.bw.get() as f64 * EXTRA_ACKED_MAX.as_secs_f64()) as u64;
        self.extra_acked[0].max(self.extra_acked[1]).min(max) as usize
    }

    fn update_cycle_phase(&mut self, ack: &AckSample) {
        if self.mode != Mode::ProbeBw {
            return;
        }
        let Some(min_rtt) = self.min_rtt else { return };
        let full_length = ack.now.saturating_duration_since(self.cycle_stamp) > min_rtt;
        let gain = CYCLE[self.cycle_idx];
        let bw = self.bw.get();
        let next = if gain == 1.0 {
            full_length
        } else if gain > 1.0 {
            // Probing: until inflight reached gain · BDP (or a loss shows it will not).
            full_length && (ack.lost > 0 || ack.prior_in_flight >= self.inflight(bw, gain))
        } else {
            // Draining: until the extra is gone.
            full_length || ack.prior_in_flight <= self.inflight(bw, 1.0)
        };
        if next {
            self.advance_cycle(ack.now);
        }
    }

    fn check_full_bw_reached(&mut self, ack: &AckSample) {
        if self.full_bw_reached || !self.round_start || ack.rate.app_limited {
            return;
        }
        let bw = self.bw.get();
        if bw as f64 >= self.full_bw as f64 * FULL_BW_THRESH {
            self.full_bw = bw;
            self.full_bw_rounds = 0;
            return;
        }
        self.full_bw_rounds += 1;
        self.full_bw_reached = self.full_bw_rounds >= FULL_BW_ROUNDS;
    }

    fn check_drain(&mut self, ack: &AckSample) {
        if self.mode == Mode::Startup && self.full_bw_reached {
            self.mode = Mode::Drain;
        }
        if self.mode == Mode::Drain && ack.in_flight <= self.inflight(self.bw.get(), 1.0) {
            self.enter_probe_bw(ack.now);
        }
    }

    fn save_cwnd(&mut self) {
        if !matches!(self.prev_phase, Phase::Recovery | Phase::Loss) && self.mode != Mode::ProbeRtt {
            self.prior_cwnd = self.cwnd;
        } else {
            self.prior_cwnd = self.prior_cwnd.max(self.cwnd);
        }
    }

    fn update_min_rtt(&mut self, ack: &AckSample) {
        let now = ack.now;
        let expired = now.saturating_duration_since(self.min_rtt_stamp) > MIN_RTT_WINDOW;
        if let Some(r) = ack.rtt {
            if self.min_rtt.is_none_or(|m| r < m) || expired {
                self.min_rtt = Some(r);
                self.min_rtt_stamp = now;
                if !self.has_seen_rtt {
                    self.has_seen_rtt = true;
                    self.init_pacing_rate(Some(r));
                }
            }
        }
        if expired && !self.idle_restart && self.mode != Mode::ProbeRtt {
            self.mode = Mode::ProbeRtt;
            self.save_cwnd();
            self.probe_rtt_done = None;
        }
        if self.mode == Mode::ProbeRtt {
            if self.probe_rtt_done.is_none() && ack.in_flight <= MIN_CWND_SEGS * self.smss {
                self.probe_rtt_done = Some(now + PROBE_RTT_TIME);
                self.probe_rtt_round_done = false;
                self.next_round_delivered = ack.total_delivered;
            } else if let Some(done) = self.probe_rtt_done {
                if self.round_start {
                    self.probe_rtt_round_done = true;
                }
                if self.probe_rtt_round_done && now > done {
                    self.min_rtt_stamp = now;
                    self.cwnd = self.cwnd.max(self.prior_cwnd);
                    if self.full_bw_reached {
                        self.enter_probe_bw(now);
                    } else {
                        self.mode = Mode::Startup;
                    }
                }
            }
        }
        if ack.delivered > 0 {
            self.idle_restart = false;
        }
    }

    fn update_gains(&mut self) {
        (self.pacing_gain, self.cwnd_gain) = match self.mode {
            Mode::Startup => (HIGH_GAIN, HIGH_GAIN),
            Mode::Drain => (DRAIN_GAIN, HIGH_GAIN),
            Mode::ProbeBw => (CYCLE[self.cycle_idx], CWND_GAIN),
            Mode::ProbeRtt => (1.0, 1.0),
        };
    }

    fn set_pacing_rate(&mut self) {
        let rate = (self.bw.get() as f64 * self.pacing_gain * PACING_MARGIN) as u64;
        // Until the pipe is full, never slow down below the initial rate.
        if self.full_bw_reached || rate > self.pacing_rate {
            self.pacing_rate = rate;
        }
    }

    /// Linux's bbr_set_cwnd with bbr_set_cwnd_to_recover_or_restore.
    /// Linux counts in packets: a part of a segment delivered, lost or in flight counts as
    /// a whole one. (In bytes, an ACK for the 376-byte rest of a segment during packet
    /// conservation would leave cwnd short of the next segment, and the sender silent until
    /// the RTO.)
    fn set_cwnd(&mut self, ack: &AckSample) {
        let whole = |b: usize| b.div_ceil(self.smss) * self.smss;
        let acked = whole(ack.delivered);
        let in_flight = whole(ack.in_flight);
        if acked > 0 {
            let mut cwnd = self.cwnd;
            // An ACK for P bytes releases at most 2·P: first take out what was lost.
            if ack.lost > 0 {
                cwnd = cwnd.saturating_sub(whole(ack.lost)).max(self.smss);
            }
            let entering = ack.phase == Phase::Recovery && self.prev_phase != Phase::Recovery;
            let leaving = matches!(self.prev_phase, Phase::Recovery | Phase::Loss)
                && !matches!(ack.phase, Phase::Recovery | Phase::Loss);
            if entering {
                // The first round of recovery: packet conservation.
                self.packet_conservation = true;
                self.next_round_delivered = ack.total_delivered;
                cwnd = in_flight + acked;
            } else if leaving {
                cwnd = cwnd.max(self.prior_cwnd);
                self.packet_conservation = false;
            }
            self.prev_phase = ack.phase;
            if self.packet_conservation {
                self.cwnd = cwnd.max(in_flight + acked);
            } else {
                let target =
                    self.quantization_budget(self.bdp(self.bw.get(), self.cwnd_gain) + self.aggregation_cwnd());
                if self.full_bw_reached {
                    cwnd = (cwnd + acked).min(target);
                } else if cwnd < target || ack.total_delivered < (self.iw_segments * self.smss) as u64 {
                    cwnd += acked;
                }
                self.cwnd = cwnd.max(MIN_CWND_SEGS * self.smss);
            }
        } else {
            self.prev_phase = ack.phase;
        }
        if self.mode == Mode::ProbeRtt {
            self.cwnd = self.cwnd.min(MIN_CWND_SEGS * self.smss);
        }
    }
}

impl CongestionControl for Bbr {
    fn cwnd(&self) -> usize {
        self.cwnd
    }
    /// BBR does not use ssthresh (Linux leaves it infinite).
    fn ssthresh(&self) -> usize {
        usize::MAX
    }
    fn smss(&self) -> usize {
        self.smss
    }
    fn set_mss(&mut self, mss: usize) {
        let was = self.smss;
        self.smss = mss.max(1);
        if self.round == 0 && self.cwnd == initial_window(was, self.iw_segments) {
            self.cwnd = initial_window(self.smss, self.iw_segments);
            self.init_pacing_rate(self.min_rtt);
        }
        self.cwnd = self.cwnd.max(self.smss);
    }
    fn set_cwnd(&mut self, cwnd: usize) {
        self.cwnd = cwnd.max(self.smss);
    }
    /// Linux's bbr_main: update the model, then the pacing rate and cwnd — on every ACK,
    /// in every phase.
    fn on_ack(&mut self, ack: &AckSample) {
        self.update_bw(ack);
        self.update_ack_aggregation(ack);
        self.update_cycle_phase(ack);
        self.check_full_bw_reached(ack);
        self.check_drain(ack);
        self.update_min_rtt(ack);
        self.update_gains();
        self.set_pacing_rate();
        self.set_cwnd(ack);
    }
    /// Entering recovery: only remember the cwnd to restore (loss is not a signal here).
    fn on_congestion(&mut self, _now: Instant, _flight: usize) {
        self.save_cwnd();
    }
    fn on_reduction_end(&mut self) {}
    /// The timeout (Linux's bbr_set_state(Loss) after tcp_enter_loss): cwnd one segment,
    /// the pipe-full estimate starts over, and this counts as the end of a round.
    fn on_rto(&mut self, _now: Instant, _flight: usize, _first: bool) {
        self.save_cwnd();
        self.prev_phase = Phase::Loss;
        self.full_bw = 0;
        self.round_start = true;
        self.cwnd = self.smss;
    }
    fn on_idle_restart(&mut self, idle: Duration, rto: Duration) {
        if idle > rto {
            self.idle_restart = true;
            self.ack_epoch_acked = 0;
            if self.mode == Mode::ProbeBw {
                // Restarting from idle: pace at the estimate, no faster.
                self.pacing_rate = (self.bw.get() as f64 * PACING_MARGIN) as u64;
            }
        }
    }
    fn model_based(&self) -> bool {
        true
    }
    fn pacing_rate(&self) -> Option<u64> {
        (self.pacing_rate > 0).then_some(self.pacing_rate)
    }
    /// A spurious reduction was undone: cwnd stays as BBR set it, and the pipe-full
    /// estimate starts over (Linux's bbr_undo_cwnd).
    fn on_undo(&mut self) {
        self.full_bw = 0;
        self.full_bw_rounds = 0;
    }
    /// Linux's bbr_init after the handshake: min_rtt from the SYN's round trip, and the
    /// initial window paced over it at the high gain.
    fn on_handshake_rtt(&mut self, now: Instant, rtt: Duration) {
        if !self.has_seen_rtt {
            self.has_seen_rtt = true;
            self.min_rtt = Some(rtt);
            self.min_rtt_stamp = now;
            self.init_pacing_rate(Some(rtt));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tcp::recovery::rate::RateSample;
    use crate::tcp::SeqNum;

    const MSS: usize = 1000;

    /// A path of `rate` bytes/s and `rtt`, driven round by round: every ACK delivers one
    /// segment and its rate sample shows the path's rate; what is in flight is what the
    /// pacing rate puts there in a round trip.
    struct Path {
        bbr: Bbr,
        now: Instant,
        delivered: u64,
    }

    impl Path {
        fn ack(&mut self, rate: u64, rtt: Duration, lost: usize, phase: Phase, in_flight: usize) {
            let prior = self.delivered;
            self.delivered += MSS as u64;
            let sample = AckSample {
                now: self.now,
                delivered: MSS,
                rtt: Some(rtt),
                min_rtt: Some(rtt),
                snd_una: SeqNum(0),
                snd_nxt: SeqNum(0),
                cwnd_limited: true,
                rate: RateSample {
                    delivered: (rate as f64 * rtt.as_secs_f64()) as u64,
                    interval: Some(rtt),
                    prior_delivered: prior.saturating_sub(self.bbr.cwnd as u64),
                    app_limited: false,
                },
                total_delivered: self.delivered,
                lost,
                in_flight,
                prior_in_flight: in_flight + MSS,
                phase,
            };
            self.bbr.on_ack(&sample);
        }

        /// One round trip: what the pacing rate put in flight (within cwnd) comes back
        /// one segment at a time, spaced by the bottleneck; a round lasts at least `rtt`.
        fn round(&mut self, rate: u64, rtt: Duration) {
            let paced = self.bbr.pacing_rate().unwrap_or(rate) as f64 * rtt.as_secs_f64();
            let inflight = self.bbr.cwnd().min(paced as usize).max(MSS);
            let spacing = Duration::from_micros(MSS as u64 * 1_000_000 / rate);
            let start = self.now;
            for k in 0..inflight / MSS {
                self.now += spacing;
                self.ack(rate, rtt, 0, Phase::Open, inflight - k * MSS);
            }
            self.now = self.now.max(start + rtt);
        }
    }

    fn path() -> Path {
        Path { bbr: Bbr::new(MSS, 10), now: Instant::from_secs(1), delivered: 0 }
    }

    #[test]
    fn startup_finds_the_bandwidth_then_drains_and_cruises() {
        // 10 MB/s, 10 ms: BDP 100 KB = 100 segments.
        let mut p = path();
        let (rate, rtt) = (10_000_000, Duration::from_millis(10));
        for _ in 0..30 {
            p.round(rate, rtt);
        }
        assert!(p.bbr.full_bw_reached());
        assert_eq!(p.bbr.mode(), Mode::ProbeBw);
        assert_eq!(p.bbr.bandwidth(), rate);
        // cwnd = 2·BDP (200 segments) plus the quantization budget (three 1 ms bursts at
        // the pacing rate: ~30) and a little for ACK aggregation.
        let cwnd = p.bbr.cwnd() / MSS;
        assert!((200..=260).contains(&cwnd), "{cwnd} segments");
        // Pacing near the bandwidth (gain cycling between 0.75 and 1.25).
        let pace = p.bbr.pacing_rate().unwrap();
        assert!(pace >= rate * 7 / 10 && pace <= rate * 13 / 10, "{pace}");
    }

    #[test]
    fn random_loss_does_not_shrink_the_window() {
        let mut p = path();
        let (rate, rtt) = (10_000_000, Duration::from_millis(10));
        for _ in 0..30 {
            p.round(rate, rtt);
        }
        let before = p.bbr.cwnd();
        // A recovery: the first round conserves packets, then cwnd climbs back, and leaving
        // recovery restores what it was.
        p.bbr.on_congestion(p.now, before);
        p.ack(rate, rtt, 2 * MSS, Phase::Recovery, before / 2);
        assert!(p.bbr.cwnd() < before);
        for _ in 0..50 {
            p.ack(rate, rtt, 0, Phase::Recovery, before / 2);
        }
        p.ack(rate, rtt, 0, Phase::Open, before / 2);
        assert!(p.bbr.cwnd() >= before, "{} < {before}", p.bbr.cwnd());
        assert_eq!(p.bbr.bandwidth(), rate);
    }

    #[test]
    fn packet_conservation_counts_a_partial_segment_as_one() {
        let mut p = path();
        let (rate, rtt) = (10_000_000, Duration::from_millis(10));
        for _ in 0..30 {
            p.round(rate, rtt);
        }
        p.bbr.on_congestion(p.now, p.bbr.cwnd());
        // Entering recovery with one segment in flight, an ACK for the 376-byte rest of a
        // segment: room for the segment in flight and one more, as Linux's packet count.
        let mut s = AckSample {
            now: p.now,
            delivered: 376,
            rtt: Some(rtt),
            min_rtt: Some(rtt),
            in_flight: MSS,
            prior_in_flight: MSS + 376,
            phase: Phase::Recovery,
            total_delivered: p.delivered + 376,
            ..Default::default()
        };
        p.bbr.on_ack(&s);
        assert_eq!(p.bbr.cwnd(), 2 * MSS);
        // Each further ACK in the round keeps what is in flight plus what it delivered.
        s.delivered = MSS;
        s.in_flight = 2 * MSS;
        p.bbr.on_ack(&s);
        assert_eq!(p.bbr.cwnd(), 3 * MSS);
    }

    #[test]
    fn probe_rtt_after_ten_seconds_without_a_lower_rtt() {
        let mut p = path();
        let rtt = Duration::from_millis(10);
        for _ in 0..30 {
            p.round(10_000_000, rtt);
        }
        // 10 s later (the RTT never went lower): PROBE_RTT, 4 segments.
        p.now += Duration::from_secs(11);
        p.ack(10_000_000, rtt + Duration::from_millis(5), 0, Phase::Open, 10 * MSS);
        assert_eq!(p.bbr.mode(), Mode::ProbeRtt);
        assert_eq!(p.bbr.cwnd(), 4 * MSS);
    }
}
