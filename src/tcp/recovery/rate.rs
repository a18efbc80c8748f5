//! Delivery rate estimation (draft-cheng-iccrg-delivery-rate-estimation, as Linux's
//! tcp_rate.c): for each ACK, how fast the data it delivered was delivered — what a
//! model-based controller (BBR) measures the path by.
//!
//! Every transmission records a snapshot of the connection's delivery state ([`TxRate`],
//! kept in the scoreboard entry); when an ACK delivers data, the snapshot of the most
//! recently sent delivered segment gives the interval over which `delivered - prior_delivered`
//! bytes arrived. The interval is the longer of the send phase and the ACK phase, so that
//! neither ACK compression nor a send burst inflates the estimate.

use crate::time::{Duration, Instant};

/// The connection's delivery state when a segment was (re)sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxRate {
    /// Bytes delivered before it was sent.
    pub delivered: u64,
    /// When the last of those was delivered.
    pub delivered_time: Instant,
    /// Send time of the first segment of the current send phase.
    pub first_sent: Instant,
    /// Sent while the application was the limit (its samples say nothing about the path).
    pub app_limited: bool,
}

/// The connection-wide counters.
#[derive(Clone, Copy, Debug, Default)]
pub struct RateState {
    /// Bytes delivered (cumulatively or selectively acknowledged) so far.
    pub delivered: u64,
    /// When `delivered` last grew (the last ACK that delivered data, or the start of a send phase).
    pub delivered_time: Instant,
    /// Send time of the first segment of the current send phase (reset from the newest delivered
    /// segment's send time on each ACK, and to now when sending starts from idle).
    pub first_sent: Instant,
    /// Non-zero while application-limited: the `delivered` count at which it ends.
    app_limited_until: u64,
}

/// One ACK's rate sample.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RateSample {
    /// Bytes delivered over `interval`.
    pub delivered: u64,
    /// `None`: no valid sample on this ACK.
    pub interval: Option<Duration>,
    /// The snapshot's `delivered` (BBR counts rounds by it).
    pub prior_delivered: u64,
    /// The snapshot was taken while application-limited: the sample may understate the path's rate.
    pub app_limited: bool,
}

impl RateSample {
    /// Bytes per second, if the sample is valid.
    pub fn rate(&self) -> Option<u64> {
        let us = self.interval?.as_micros().max(1);
        Some((self.delivered as u128 * 1_000_000 / us).min(u64::MAX as u128) as u64)
    }
}

/// Accumulates the delivered segments of one ACK into a sample.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SampleBuilder {
    newest: Option<(Instant, TxRate)>,
}

impl SampleBuilder {
    /// A segment sent at `xmit` with snapshot `tx` was delivered (draft §3.3,
    /// UpdateRateSample): keep the most recently sent one's snapshot.
    pub fn delivered(&mut self, xmit: Instant, tx: TxRate) {
        if self.newest.is_none_or(|(t, _)| xmit >= t) {
            self.newest = Some((xmit, tx));
        }
    }
}

impl RateState {
    /// A segment goes out at `now`; `idle` when nothing was in flight before it (a new send
    /// phase begins). Returns the snapshot to keep with it (draft §3.2, tcp_rate_skb_sent).
    pub fn on_send(&mut self, now: Instant, idle: bool) -> TxRate {
        if idle {
            self.first_sent = now;
            self.delivered_time = now;
        }
        self.snapshot(now, idle)
    }

    /// The snapshot [`RateState::on_send`] would return, changing nothing.
    pub fn snapshot(&self, now: Instant, idle: bool) -> TxRate {
        let (delivered_time, first_sent) = if idle { (now, now) } else { (self.delivered_time, self.first_sent) };
        TxRate { delivered: self.delivered, delivered_time, first_sent, app_limited: self.app_limited_until != 0 }
    }

    /// The sender ran out of data to send with room in cwnd (draft §3.4): samples until
    /// what is in flight now is delivered are application-limited.
    pub fn on_app_limited(&mut self, in_flight: usize) {
        self.app_limited_until = (self.delivered + in_flight as u64).max(1);
    }

    /// An ACK delivered `bytes` at `now`; `b` holds its newest delivered segment. `min_rtt`
    /// bounds the interval from below (shorter ones come from ACK compression; Linux drops
    /// them). Draft §3.3, GenerateRateSample.
    pub fn on_ack(&mut self, now: Instant, bytes: u64, b: SampleBuilder, min_rtt: Option<Duration>) -> RateSample {
        if bytes == 0 {
            return RateSample::default();
        }
        self.delivered += bytes;
        self.delivered_time = now;
        if self.app_limited_until != 0 && self.delivered > self.app_limited_until {
            self.app_limited_until = 0;
        }
        let Some((xmit, tx)) = b.newest else { return RateSample::default() };
        // The next send phase starts from this segment's send time.
        self.first_sent = xmit;
        let send_elapsed = xmit.saturating_duration_since(tx.first_sent);
        let ack_elapsed = now.saturating_duration_since(tx.delivered_time);
        let interval = send_elapsed.max(ack_elapsed);
        let delivered = self.delivered - tx.delivered;
        let valid = !interval.is_zero() && min_rtt.is_none_or(|m| interval >= m);
        RateSample {
            delivered,
            interval: valid.then_some(interval),
            prior_delivered: tx.delivered,
            app_limited: tx.app_limited,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(n: u64) -> Instant {
        Instant::from_micros(n)
    }

    #[test]
    fn an_ack_clocked_flow_measures_its_delivery_rate() {
        // A window of 10 segments of 1000 bytes, 100 µs round trip, one segment every 10 µs:
        // 100 MB/s. The first window's samples include the idle start (the send phase began
        // at 0); from the second window on, each segment is sent when an ACK arrives and
        // every sample is exactly the path's rate.
        let mut s = RateState::default();
        let mut flight: std::collections::VecDeque<(Instant, TxRate)> = Default::default();
        for i in 0..10u64 {
            flight.push_back((us(i * 10), s.on_send(us(i * 10), i == 0)));
        }
        let mut rates = Vec::new();
        for k in 0..30u64 {
            let now = us(100 + k * 10);
            let (xmit, tx) = flight.pop_front().unwrap();
            let mut b = SampleBuilder::default();
            b.delivered(xmit, tx);
            rates.push(s.on_ack(now, 1000, b, Some(Duration::from_micros(50))).rate());
            flight.push_back((now, s.on_send(now, false)));
        }
        assert_eq!(rates[0], Some(10_000_000), "1000 bytes over the first 100 µs");
        assert!(rates[..10].iter().all(|r| r.unwrap() < 100_000_000));
        assert!(rates[10..].iter().all(|&r| r == Some(100_000_000)), "{rates:?}");
    }

    #[test]
    fn app_limited_samples_are_marked_until_the_flight_is_delivered() {
        let mut s = RateState::default();
        let a = s.on_send(us(0), true);
        s.on_app_limited(1000);
        let b = s.on_send(us(10), false);
        assert!(!a.app_limited && b.app_limited);
        let mut bl = SampleBuilder::default();
        bl.delivered(us(10), b);
        let r = s.on_ack(us(200), 2000, bl, None);
        assert!(r.app_limited);
        // Delivered past the mark: no longer application-limited.
        assert!(!s.on_send(us(300), true).app_limited);
    }

    #[test]
    fn intervals_shorter_than_min_rtt_are_no_sample() {
        let mut s = RateState::default();
        let t = s.on_send(us(0), true);
        let mut b = SampleBuilder::default();
        b.delivered(us(0), t);
        let r = s.on_ack(us(10), 1000, b, Some(Duration::from_micros(50)));
        assert_eq!(r.interval, None);
        assert_eq!(r.rate(), None);
        assert_eq!(s.delivered, 1000);
    }
}
