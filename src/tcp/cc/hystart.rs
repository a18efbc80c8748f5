//! HyStart++ (RFC 9406): leave slow start when the RTT shows a queue building, before the
//! overshoot that slow start's doubling would otherwise end in, with Conservative Slow Start
//! (CSS) to guard against leaving on jitter.
//!
//! Used for the initial slow start only (RFC 9406 §4.2: "An implementation SHOULD use
//! HyStart++ only for the initial slow start ... and fall back to using standard slow start
//! for the remainder of the connection lifetime"). Rounds are counted by sequence numbers: a
//! round ends when SND.UNA passes what SND.NXT was when it began.

use crate::tcp::SeqNum;
use crate::time::Duration;

/// RFC 9406 §4.3's constants.
const MIN_RTT_THRESH: Duration = Duration::from_millis(4);
const MAX_RTT_THRESH: Duration = Duration::from_millis(16);
const MIN_RTT_DIVISOR: u32 = 8;
const N_RTT_SAMPLE: u32 = 8;
/// RFC 9406 §4.3: in Conservative Slow Start cwnd grows by a quarter of what is acknowledged.
pub const CSS_GROWTH_DIVISOR: usize = 4;
const CSS_ROUNDS: u32 = 5;

/// How an ACK in slow start may grow cwnd.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Growth {
    /// Standard slow start: by what was acknowledged.
    SlowStart,
    /// Conservative Slow Start: by a quarter of it (RFC 9406 §4.2).
    Conservative,
    /// CSS lasted CSS_ROUNDS rounds: enter congestion avoidance (ssthresh = cwnd).
    Exit,
}

/// HyStart++ (RFC 9406) state of one connection's initial slow start: each round's minimum RTT
/// and, once a delay increase was seen, Conservative Slow Start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HyStart {
    last_round_min_rtt: Option<Duration>,
    current_round_min_rtt: Option<Duration>,
    rtt_sample_count: u32,
    /// SND.NXT when the current round began; `None` before the first ACK.
    window_end: Option<SeqNum>,
    /// In CSS: the round's minimum RTT that made us leave slow start.
    css_baseline_min_rtt: Option<Duration>,
    css_rounds: u32,
    /// Finished (CSS ended, or a congestion event): standard slow start from now on.
    done: bool,
}

impl HyStart {
    /// In Conservative Slow Start.
    pub fn in_css(&self) -> bool {
        self.css_baseline_min_rtt.is_some() && !self.done
    }

    /// No longer in use (after CSS, or after the first congestion event).
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// A congestion event or a timeout: HyStart++ is over for this connection (RFC 9406 §4.2:
    /// "If loss or ECN-marking is observed anytime during standard slow start or CSS", the
    /// congestion controller's own response takes over).
    pub fn finish(&mut self) {
        self.done = true;
        self.css_baseline_min_rtt = None;
    }

    /// An ACK during slow start; `rtt` is its RTT sample, if any. Says how cwnd may grow.
    pub fn on_ack(&mut self, rtt: Option<Duration>, snd_una: SeqNum, snd_nxt: SeqNum) -> Growth {
        if self.done {
            return Growth::SlowStart;
        }
        // RFC 9406 §4.2: "At the start of each round during standard slow start and CSS":
        // lastRoundMinRTT = currentRoundMinRTT, currentRoundMinRTT = infinity,
        // rttSampleCount = 0.
        let new_round = match self.window_end {
            None => true,
            Some(end) => snd_una.ge(end),
        };
        if new_round {
            if self.window_end.is_some() && self.in_css() {
                self.css_rounds += 1;
                if self.css_rounds >= CSS_ROUNDS {
                    // "If CSS_ROUNDS rounds are complete, enter congestion avoidance by
                    // setting the ssthresh to the current cwnd."
                    self.finish();
                    return Growth::Exit;
                }
            }
            self.last_round_min_rtt = self.current_round_min_rtt;
            self.current_round_min_rtt = None;
            self.rtt_sample_count = 0;
            self.window_end = Some(snd_nxt);
        }
        if let Some(r) = rtt {
            self.current_round_min_rtt = Some(self.current_round_min_rtt.map_or(r, |m| m.min(r)));
            self.rtt_sample_count += 1;
        }
        let enough = self.rtt_sample_count >= N_RTT_SAMPLE;
        match (self.css_baseline_min_rtt, self.current_round_min_rtt) {
            (None, Some(cur)) if enough => {
                if let Some(last) = self.last_round_min_rtt {
                    // RttThresh = max(MIN_RTT_THRESH, min(lastRoundMinRTT / MIN_RTT_DIVISOR,
                    // MAX_RTT_THRESH)).
                    let thresh = (last / MIN_RTT_DIVISOR).clamp(MIN_RTT_THRESH, MAX_RTT_THRESH);
                    if cur >= last + thresh {
                        // "exit slow start and enter CSS"; this partial round counts towards
                        // CSS_ROUNDS.
                        self.css_baseline_min_rtt = Some(cur);
                        self.css_rounds = 0;
                        return Growth::Conservative;
                    }
                }
                Growth::SlowStart
            }
            (Some(base), Some(cur)) if enough && cur < base => {
                // "the current round's minRTT drops below baseline ... indicating that slow
                // start exit was spurious": resume slow start including HyStart++.
                self.css_baseline_min_rtt = None;
                Growth::SlowStart
            }
            (Some(_), _) => Growth::Conservative,
            (None, _) => Growth::SlowStart,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Runs one round of `acks` ACKs with RTT `rtt`; the round spans `[start, start+acks)`.
    fn round(h: &mut HyStart, start: u32, acks: u32, rtt: Duration) -> Vec<Growth> {
        (0..acks).map(|i| h.on_ack(Some(rtt), SeqNum(start + i), SeqNum(start + acks))).collect()
    }

    #[test]
    fn steady_rtt_stays_in_slow_start() {
        let mut h = HyStart::default();
        for r in 0..10 {
            let g = round(&mut h, r * 100, 100, ms(50));
            assert!(g.iter().all(|&g| g == Growth::SlowStart), "round {r}");
        }
    }

    #[test]
    fn rising_rtt_enters_css_then_congestion_avoidance_after_five_rounds() {
        let mut h = HyStart::default();
        round(&mut h, 0, 20, ms(50));
        // 50 ms + max(4, min(50/8, 16)) = 56.25 ms: 57 ms is a queue building.
        let g = round(&mut h, 20, 20, ms(57));
        assert_eq!(g[..7], [Growth::SlowStart; 7], "fewer than 8 samples decide nothing");
        assert_eq!(g[7], Growth::Conservative);
        assert!(h.in_css());
        let mut exits = 0;
        for r in 0..5u32 {
            for g in round(&mut h, 40 + r * 20, 20, ms(60)) {
                if g == Growth::Exit {
                    exits += 1;
                    break;
                }
            }
        }
        assert_eq!(exits, 1);
        assert!(h.is_done());
        // Done: plain slow start from now on.
        assert_eq!(h.on_ack(Some(ms(200)), SeqNum(1000), SeqNum(1100)), Growth::SlowStart);
    }

    #[test]
    fn jitter_below_the_threshold_does_not_leave_slow_start() {
        let mut h = HyStart::default();
        round(&mut h, 0, 20, ms(50));
        let g = round(&mut h, 20, 20, ms(56));
        assert!(g.iter().all(|&g| g == Growth::SlowStart));
    }

    #[test]
    fn rtt_back_below_the_baseline_resumes_slow_start() {
        let mut h = HyStart::default();
        round(&mut h, 0, 20, ms(10));
        round(&mut h, 20, 20, ms(20)); // threshold 4 ms: CSS at 20 ms
        assert!(h.in_css());
        let g = round(&mut h, 40, 20, ms(11));
        assert_eq!(*g.last().unwrap(), Growth::SlowStart);
        assert!(!h.in_css() && !h.is_done());
    }

    #[test]
    fn acks_without_rtt_samples_count_nothing() {
        let mut h = HyStart::default();
        for i in 0..100 {
            assert_eq!(h.on_ack(None, SeqNum(i), SeqNum(i + 1)), Growth::SlowStart);
        }
    }
}
