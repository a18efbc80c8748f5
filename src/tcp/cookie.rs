//! SYN cookies (RFC 4987 §3.6): a listener whose SYN queue is full answers a SYN with a
//! SYN-ACK whose ISN encodes what the connection needs, and keeps no state; the ACK that
//! completes the handshake carries the cookie back (SEG.ACK − 1) and builds the connection.
//!
//! The encoding is Linux's (net/ipv4/syncookies.c), so that what a peer sees is what it sees
//! from Linux:
//!
//! ```text
//! ISN = H(secret, 4-tuple) + SEG.SEQ + (count << 24) + ((H(secret, 4-tuple, count) + mss_index) mod 2^24)
//! ```
//!
//! where `count` advances once a minute and a cookie is accepted for two counts (one to two
//! minutes), and `mss_index` picks the peer's MSS from a table of four. A random ACK passes
//! with a probability of about 2⁻²¹. What does not fit in the ISN travels in the timestamp
//! when the peer sent one: the low six bits of our SYN-ACK's TSval hold the peer's window
//! scale (4 bits, 15 for none), SACK-permitted and ECN, and come back in the ACK's TSecr.
//! Without timestamps a cookie connection has no window scaling, SACK or ECN, as on Linux.
//!
//! No clock is read here: the caller passes `now`, as everywhere in `tcp/`.

use super::config::{EcnMode, TcpConfig};
use super::isn::write_addr;
use super::tcb::Tcb;
use super::SeqNum;
use crate::time::Instant;
use crate::wire::{TcpFlags, TcpOptions, TcpRepr, Timestamp};
use core::hash::Hasher;
use core::net::SocketAddr;
use siphasher::sip::SipHasher24;

/// The MSS values a cookie can carry (Linux's `msstab`): the largest not above the peer's.
pub const MSS_TABLE: [u16; 4] = [536, 1300, 1440, 1460];
/// Bits of the ISN below the counter.
const COUNT_SHIFT: u32 = 24;
const DATA_MASK: u32 = (1 << COUNT_SHIFT) - 1;
/// A cookie is good for this many counts (Linux's MAX_SYNCOOKIE_AGE).
const MAX_AGE: u32 = 2;
/// Seconds per count (Linux's TCP_SYNCOOKIE_PERIOD).
const PERIOD_SECS: u64 = 60;
/// Timestamp bits that carry options (Linux's TSBITS), and their layout.
const TS_BITS: u32 = 6;
const TS_WSCALE_MASK: u32 = 0xf;
const TS_SACK: u32 = 1 << 4;
const TS_ECN: u32 = 1 << 5;

/// What a valid cookie gives back: the peer's SYN as far as the connection needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CookieSyn {
    /// The peer's initial sequence number (SEG.SEQ of its SYN).
    pub irs: SeqNum,
    /// Our ISN (the cookie).
    pub iss: SeqNum,
    /// The peer's MSS, rounded down to the largest value of [`MSS_TABLE`] not above it (536 when
    /// below them all).
    pub mss: u16,
    /// The peer's window scale, when both sides scale.
    pub window_scale: Option<u8>,
    /// SACK was agreed: the peer's SYN carried SACK-Permitted (RFC 2018 §2) and we allowed it
    /// (remembered only with timestamps).
    pub sack: bool,
    /// ECN was agreed: the peer's SYN asked for it with ECE and CWR (RFC 3168 §6.1.1) and we
    /// allowed it (remembered only with timestamps).
    pub ecn: bool,
    /// Timestamps are on (the ACK carried one).
    pub timestamps: bool,
}

impl CookieSyn {
    /// The SYN this stands for, to build the connection as if it had been queued.
    pub fn syn(&self, ack: &TcpRepr<'_>) -> TcpRepr<'static> {
        let options = TcpOptions {
            mss: Some(self.mss),
            window_scale: self.window_scale,
            sack_permitted: self.sack,
            // TS.Recent from the ACK (RFC 7323 §4.3 would have taken it from the SYN; the
            // ACK's is newer and is what the connection echoes next).
            timestamp: ack
                .options
                .timestamp
                .filter(|_| self.timestamps)
                .map(|t| Timestamp { tsval: t.tsval, tsecr: 0 }),
            ..TcpOptions::default()
        };
        let ecn = if self.ecn { TcpFlags::ECE | TcpFlags::CWR } else { TcpFlags::empty() };
        TcpRepr {
            src_port: ack.src_port,
            dst_port: ack.dst_port,
            seq: self.irs.0,
            ack: 0,
            flags: TcpFlags::SYN | ecn,
            window: ack.window,
            urgent: 0,
            options,
            payload: &[],
        }
    }
}

/// Makes and checks cookies with a secret of the stack.
#[derive(Clone)]
pub struct SynCookies {
    key: [u8; 16],
}

impl core::fmt::Debug for SynCookies {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("SynCookies { key: <secret> }")
    }
}

impl SynCookies {
    /// Cookies keyed by `secret` (the stack's; a different key is derived from it, so a
    /// cookie says nothing about ISNs or ports).
    pub fn new(secret: [u8; 16]) -> SynCookies {
        let mut key = secret;
        key[15] ^= 0xc3;
        SynCookies { key }
    }

    fn hash(&self, local: SocketAddr, remote: SocketAddr, count: Option<u32>) -> u32 {
        let mut h = SipHasher24::new_with_key(&self.key);
        write_addr(&mut h, local);
        write_addr(&mut h, remote);
        if let Some(c) = count {
            h.write_u32(c);
        }
        h.finish() as u32
    }

    fn count(now: Instant) -> u32 {
        (now.as_millis() / 1000 / PERIOD_SECS) as u32
    }

    /// RFC 4987 §3.6: the ISN for a SYN-ACK answering `syn` (Linux's secure_tcp_syn_cookie).
    fn make(&self, now: Instant, local: SocketAddr, remote: SocketAddr, seq: u32, mss_index: u32) -> SeqNum {
        let count = Self::count(now);
        let data = self.hash(local, remote, Some(count)).wrapping_add(mss_index) & DATA_MASK;
        SeqNum(self.hash(local, remote, None).wrapping_add(seq).wrapping_add(count << COUNT_SHIFT).wrapping_add(data))
    }

    /// The SYN-ACK that answers `syn` with a cookie, as the connection would have sent it
    /// (our MSS, the options both sides offered, the unscaled initial window, ECE when we
    /// agree to ECN). `syn` came to `local` from `remote`.
    pub fn syn_ack(
        &self,
        cfg: &TcpConfig,
        now: Instant,
        local: impl Into<SocketAddr>,
        remote: impl Into<SocketAddr>,
        syn: &TcpRepr<'_>,
    ) -> TcpRepr<'static> {
        let (local, remote): (SocketAddr, SocketAddr) = (local.into(), remote.into());
        let peer_mss = syn.options.mss.unwrap_or(super::tcb::DEFAULT_MSS);
        // The largest entry not above the peer's MSS (536 when it is below them all).
        let mss_index = MSS_TABLE.iter().rposition(|&m| m <= peer_mss).unwrap_or(0) as u32;
        let iss = self.make(now, local, remote, syn.seq, mss_index);
        let mut options = TcpOptions { mss: Some(cfg.mss), ..TcpOptions::default() };
        let mut flags = TcpFlags::SYN | TcpFlags::ACK;
        // Without a timestamp nothing else can be remembered (Linux clears the options).
        if let Some(ts) = syn.options.timestamp.filter(|_| cfg.timestamps) {
            let mut bits = TS_WSCALE_MASK;
            if let Some(ws) = syn.options.window_scale.filter(|_| cfg.window_scaling) {
                bits = u32::from(ws.min(14));
                options.window_scale = Some(cfg.window_shift());
            }
            if syn.options.sack_permitted && cfg.sack {
                bits |= TS_SACK;
                options.sack_permitted = true;
            }
            // RFC 3168 §6.1.1: an ECN-setup SYN (ECE and CWR) is agreed to with ECE.
            if cfg.ecn != EcnMode::Off && syn.flags.contains(TcpFlags::ECE | TcpFlags::CWR) {
                bits |= TS_ECN;
                flags |= TcpFlags::ECE;
            }
            // Linux's cookie_init_timestamp: the clock with its low bits replaced, never
            // ahead of the clock, so the connection's later TSvals do not go backwards.
            let clock = Tcb::ts_clock(now, iss);
            let mut tsval = (clock >> TS_BITS << TS_BITS) | bits;
            if (tsval.wrapping_sub(clock) as i32) > 0 {
                tsval = tsval.wrapping_sub(1 << TS_BITS);
            }
            options.timestamp = Some(Timestamp { tsval, tsecr: ts.tsval });
        }
        TcpRepr {
            src_port: local.port(),
            dst_port: remote.port(),
            seq: iss.0,
            ack: syn.seq.wrapping_add(1),
            flags,
            // RFC 7323 §2.2: the window of a SYN is not scaled.
            window: Tcb::initial_window(cfg),
            urgent: 0,
            options,
            payload: &[],
        }
    }

    /// The handshake's ACK `ack`, from `remote` to `local`: the SYN its cookie stands for, or
    /// `None` for a cookie that is forged, stale, or of another 4-tuple (Linux's
    /// check_tcp_syn_cookie and cookie_timestamp_decode).
    pub fn check(
        &self,
        now: Instant,
        local: impl Into<SocketAddr>,
        remote: impl Into<SocketAddr>,
        ack: &TcpRepr<'_>,
    ) -> Option<CookieSyn> {
        let (local, remote): (SocketAddr, SocketAddr) = (local.into(), remote.into());
        let seq = ack.seq.wrapping_sub(1);
        let cookie = ack.ack.wrapping_sub(1);
        let count = Self::count(now);
        let rest = cookie.wrapping_sub(self.hash(local, remote, None).wrapping_add(seq));
        let age = count.wrapping_sub(rest >> COUNT_SHIFT) & (u32::MAX >> COUNT_SHIFT);
        if age >= MAX_AGE {
            return None;
        }
        let data = rest.wrapping_sub(self.hash(local, remote, Some(count.wrapping_sub(age)))) & DATA_MASK;
        let mss = *MSS_TABLE.get(data as usize)?;
        let mut syn = CookieSyn {
            irs: SeqNum(seq),
            iss: SeqNum(cookie),
            mss,
            window_scale: None,
            sack: false,
            ecn: false,
            timestamps: false,
        };
        if let Some(ts) = ack.options.timestamp {
            let bits = ts.tsecr & ((1 << TS_BITS) - 1);
            let ws = bits & TS_WSCALE_MASK;
            if ws != TS_WSCALE_MASK {
                if ws > 14 {
                    return None;
                }
                syn.window_scale = Some(ws as u8);
            }
            syn.sack = bits & TS_SACK != 0;
            syn.ecn = bits & TS_ECN != 0;
            syn.timestamps = true;
        }
        Some(syn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Duration;
    use core::net::{Ipv4Addr, SocketAddrV4};
    use proptest::prelude::*;

    const L: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 1), 80);
    const R: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 2), 40000);

    fn syn(seq: u32, mss: u16, ws: Option<u8>, sack: bool, ts: bool, ecn: bool) -> TcpRepr<'static> {
        TcpRepr {
            src_port: R.port(),
            dst_port: L.port(),
            seq,
            ack: 0,
            flags: TcpFlags::SYN | if ecn { TcpFlags::ECE | TcpFlags::CWR } else { TcpFlags::empty() },
            window: 64240,
            urgent: 0,
            options: TcpOptions {
                mss: Some(mss),
                window_scale: ws,
                sack_permitted: sack,
                timestamp: ts.then_some(Timestamp { tsval: 777, tsecr: 0 }),
                ..TcpOptions::default()
            },
            payload: &[],
        }
    }

    /// The ACK a peer sends for `synack`.
    fn ack_for(synack: &TcpRepr<'_>, syn: &TcpRepr<'_>) -> TcpRepr<'static> {
        TcpRepr {
            src_port: R.port(),
            dst_port: L.port(),
            seq: syn.seq.wrapping_add(1),
            ack: synack.seq.wrapping_add(1),
            flags: TcpFlags::ACK,
            window: 502,
            urgent: 0,
            options: TcpOptions {
                timestamp: synack.options.timestamp.map(|t| Timestamp { tsval: 778, tsecr: t.tsval }),
                ..TcpOptions::default()
            },
            payload: &[],
        }
    }

    fn cfg() -> TcpConfig {
        TcpConfig { ecn: EcnMode::Passive, ..TcpConfig::default() }
    }

    #[test]
    fn a_cookie_gives_back_what_the_syn_offered() {
        let c = SynCookies::new([9; 16]);
        let now = Instant::from_secs(1000);
        let s = syn(0xdead_beef, 1460, Some(7), true, true, true);
        let sa = c.syn_ack(&cfg(), now, L, R, &s);
        assert_eq!(sa.ack, 0xdead_bef0);
        assert!(sa.flags.contains(TcpFlags::SYN | TcpFlags::ACK | TcpFlags::ECE));
        assert_eq!(sa.options.window_scale, Some(cfg().window_shift()));
        assert!(sa.options.sack_permitted);
        assert_eq!(sa.options.timestamp.unwrap().tsecr, 777);
        let got = c.check(now + Duration::from_millis(50), L, R, &ack_for(&sa, &s)).expect("valid");
        assert_eq!(
            got,
            CookieSyn {
                irs: SeqNum(0xdead_beef),
                iss: SeqNum(sa.seq),
                mss: 1460,
                window_scale: Some(7),
                sack: true,
                ecn: true,
                timestamps: true
            }
        );
    }

    #[test]
    fn without_timestamps_only_the_mss_survives() {
        let c = SynCookies::new([9; 16]);
        let now = Instant::from_secs(5);
        let s = syn(1, 1400, Some(7), true, false, true);
        let sa = c.syn_ack(&cfg(), now, L, R, &s);
        assert_eq!(sa.options.window_scale, None, "Linux offers no scaling it cannot remember");
        assert!(!sa.options.sack_permitted && sa.options.timestamp.is_none());
        assert!(!sa.flags.contains(TcpFlags::ECE));
        let got = c.check(now, L, R, &ack_for(&sa, &s)).unwrap();
        assert_eq!((got.mss, got.window_scale, got.sack, got.ecn, got.timestamps), (1300, None, false, false, false));
    }

    #[test]
    fn the_mss_is_rounded_down_to_the_table() {
        let c = SynCookies::new([1; 16]);
        for (offered, kept) in [(100, 536), (536, 536), (1299, 536), (1300, 1300), (1448, 1440), (9000, 1460)] {
            let s = syn(42, offered, None, false, false, false);
            let sa = c.syn_ack(&cfg(), Instant::ZERO, L, R, &s);
            assert_eq!(c.check(Instant::ZERO, L, R, &ack_for(&sa, &s)).unwrap().mss, kept, "offered {offered}");
        }
    }

    #[test]
    fn cookies_expire_after_two_periods() {
        let c = SynCookies::new([3; 16]);
        let t0 = Instant::from_secs(600); // the start of a period
        let s = syn(5, 1460, None, false, false, false);
        let ack = ack_for(&c.syn_ack(&cfg(), t0, L, R, &s), &s);
        assert!(c.check(t0 + Duration::from_secs(119), L, R, &ack).is_some(), "the next period still takes it");
        assert!(c.check(t0 + Duration::from_secs(120), L, R, &ack).is_none(), "two periods later it is stale");
        assert!(c.check(Instant::from_secs(540), L, R, &ack).is_none(), "nor before it was made");
    }

    #[test]
    fn a_cookie_belongs_to_its_tuple_its_sequence_and_its_secret() {
        let c = SynCookies::new([3; 16]);
        let now = Instant::from_secs(100);
        let s = syn(5, 1460, None, false, false, false);
        let ack = ack_for(&c.syn_ack(&cfg(), now, L, R, &s), &s);
        let other = SocketAddrV4::new(*R.ip(), R.port() + 1);
        assert!(c.check(now, L, other, &ack).is_none());
        // The sequence number enters linearly (as in Linux): a shift under 4 only changes the
        // MSS index, a larger one leaves the index's range.
        assert!(c.check(now, L, R, &TcpRepr { seq: ack.seq + 1000, ..ack }).is_none());
        assert!(SynCookies::new([4; 16]).check(now, L, R, &ack).is_none());
    }

    #[test]
    fn the_syn_ack_timestamp_never_runs_ahead_of_the_connection_clock() {
        let c = SynCookies::new([3; 16]);
        for ms in [0u64, 1, 63, 64, 65, 1_000_003] {
            let now = Instant::from_millis(ms);
            let s = syn(ms as u32, 1460, Some(14), true, true, false);
            let sa = c.syn_ack(&cfg(), now, L, R, &s);
            let tsval = sa.options.timestamp.unwrap().tsval;
            let clock = Tcb::ts_clock(now, SeqNum(sa.seq));
            let behind = clock.wrapping_sub(tsval);
            assert!(behind < 64, "{ms} ms: TSval {tsval} vs clock {clock}");
        }
    }

    /// Forged ACKs: a guess passes with a probability of about 2⁻²¹ (4 of 2²⁴ values, for
    /// each of two counts), so of 2²⁰ seeded guesses about half of one passes; more than 4
    /// would mean the check is weaker than the encoding says.
    #[test]
    fn forged_acks_are_refused() {
        use rand::{Rng, SeedableRng};
        let c = SynCookies::new([5; 16]);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(14);
        let now = Instant::from_secs(3600);
        let passed = (0..1u32 << 20)
            .filter(|_| {
                let a = TcpRepr {
                    seq: rng.random(),
                    ack: rng.random(),
                    flags: TcpFlags::ACK,
                    ..syn(0, 1460, None, false, false, false)
                };
                c.check(now, L, R, &a).is_some()
            })
            .count();
        assert!(passed <= 4, "{passed} of 2^20 forged cookies passed");
    }

    proptest! {
        #[test]
        fn every_offer_round_trips(seq in any::<u32>(), mss in 1u16.., ws in proptest::option::of(0u8..=14),
                                   sack: bool, ts: bool, ecn: bool, secs in 0u64..1_000_000) {
            let c = SynCookies::new([6; 16]);
            let now = Instant::from_secs(secs);
            let s = syn(seq, mss, ws, sack, ts, ecn);
            let sa = c.syn_ack(&cfg(), now, L, R, &s);
            let got = c.check(now, L, R, &ack_for(&sa, &s)).unwrap();
            prop_assert_eq!(got.irs, SeqNum(seq));
            prop_assert_eq!(got.window_scale, ws.filter(|_| ts));
            prop_assert_eq!((got.sack, got.ecn, got.timestamps), (sack && ts, ecn && ts, ts));
        }
    }
}
