//! Packet conversations with one TCB: segments in, segments out, at stated times, grouped by
//! the state they start from (DESIGN.md habit 6). Each test names the RFC rule it checks, so
//! a reader can hold it against the RFC text.
//!
//! Conventions: we are 198.18.0.1:4000 (`LOCAL`), the peer 198.18.0.2:80 (`REMOTE`). Our ISS
//! is 1000, the peer's 5000. `t.at(ms)` moves virtual time and runs due timers;
//! `t.input(seg)` delivers a segment from the peer; `t.output()` takes what we send.

use super::*;
use crate::time::{Duration, Instant};
use crate::wire::{SackBlocks, TcpFlags as F, TcpOptions, TcpRepr, Timestamp};
use core::net::{Ipv4Addr, SocketAddrV4};

const LOCAL: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 1), 4000);
const REMOTE: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 2), 80);
const ISS: u32 = 1000;
const PEER_ISS: u32 = 5000;

/// A segment we sent, owned, for assertions.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Out {
    seq: u32,
    ack: u32,
    flags: F,
    window: u16,
    options: TcpOptions,
    payload: Vec<u8>,
}

/// A segment from the peer, built up fluently: `seg(F::ACK).seq(5001).ack(1001)`.
#[derive(Debug, Clone)]
struct In {
    seq: u32,
    ack: u32,
    flags: F,
    window: u16,
    options: TcpOptions,
    payload: Vec<u8>,
}

fn seg(flags: F) -> In {
    In { seq: PEER_ISS + 1, ack: ISS + 1, flags, window: 65535, options: TcpOptions::default(), payload: vec![] }
}

impl In {
    fn seq(mut self, s: u32) -> In {
        self.seq = s;
        self
    }
    fn ack(mut self, a: u32) -> In {
        self.ack = a;
        self
    }
    fn win(mut self, w: u16) -> In {
        self.window = w;
        self
    }
    fn data(mut self, d: &[u8]) -> In {
        self.payload = d.to_vec();
        self
    }
    fn opts(mut self, o: TcpOptions) -> In {
        self.options = o;
        self
    }
}

struct T {
    tcb: Tcb,
    now: Instant,
}

/// Plain config: no window scaling, timestamps or SACK unless a test turns them on, so
/// segments are easy to read.
fn cfg() -> TcpConfig {
    TcpConfig {
        window_scaling: false,
        timestamps: false,
        sack: false,
        recv_buffer: 65535,
        send_buffer: 65535,
        ..TcpConfig::default()
    }
}

impl T {
    fn active(cfg: TcpConfig) -> T {
        T { tcb: Tcb::connect(cfg, LOCAL, REMOTE, SeqNum(ISS), Instant::ZERO), now: Instant::ZERO }
    }

    fn listener(cfg: TcpConfig) -> T {
        T { tcb: Tcb::listen(cfg, LOCAL, IsnGenerator::new([1; 16]), Instant::ZERO), now: Instant::ZERO }
    }

    /// Active open brought to ESTABLISHED: SYN out, SYN-ACK in (peer MSS 1460, window 65535),
    /// ACK out.
    fn established(cfg: TcpConfig) -> T {
        let mut t = T::active(cfg);
        let syn = t.output().expect("SYN");
        assert_eq!(syn.flags, F::SYN);
        t.input(seg(F::SYN | F::ACK).seq(PEER_ISS).opts(TcpOptions { mss: Some(1460), ..Default::default() }));
        let ack = t.output().expect("ACK of the SYN-ACK");
        assert_eq!((ack.flags, ack.seq, ack.ack), (F::ACK, ISS + 1, PEER_ISS + 1));
        assert_eq!(t.tcb.state(), State::Established);
        assert_eq!(t.tcb.poll_event(), Some(Event::Connected));
        t.none();
        t
    }

    fn at(&mut self, ms: u64) {
        self.now = Instant::from_millis(ms);
        self.run_timers();
    }

    fn run_timers(&mut self) {
        if matches!(self.tcb.poll_timeout(), Some(d) if d <= self.now) {
            self.tcb.handle_timeout(self.now);
        }
    }

    fn input(&mut self, s: In) {
        self.input_with(s, RxInfo::default());
    }

    /// A segment from the peer, with what the IP layer saw (ECN).
    fn input_with(&mut self, s: In, info: RxInfo) {
        let repr = TcpRepr {
            src_port: REMOTE.port(),
            dst_port: LOCAL.port(),
            seq: s.seq,
            ack: s.ack,
            flags: s.flags,
            window: s.window,
            urgent: 0,
            options: s.options,
            payload: &s.payload,
        };
        self.tcb.on_segment_with(self.now, REMOTE, &repr, info);
    }

    fn output(&mut self) -> Option<Out> {
        let mut buf = [0u8; 9000];
        let r = self.tcb.poll_transmit(self.now, &mut buf)?;
        Some(Out {
            seq: r.seq,
            ack: r.ack,
            flags: r.flags,
            window: r.window,
            options: r.options,
            payload: r.payload.to_vec(),
        })
    }

    /// Everything we send now.
    fn outputs(&mut self) -> Vec<Out> {
        let mut v = Vec::new();
        while let Some(o) = self.output() {
            v.push(o);
            assert!(v.len() < 1000, "runaway output");
        }
        v
    }

    #[track_caller]
    fn none(&mut self) {
        let o = self.output();
        assert!(o.is_none(), "expected nothing, got {o:?}");
    }

    #[track_caller]
    fn expect(&mut self, flags: F, seq: u32, ack: u32) -> Out {
        let o = self.output().unwrap_or_else(|| panic!("expected {flags:?} seq {seq} ack {ack}, got nothing"));
        assert_eq!((o.flags, o.seq, o.ack), (flags, seq, ack), "segment {o:?}");
        o
    }

    fn events(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.tcb.poll_event()).collect()
    }
}

// ---------------------------------------------------------------------------------- CLOSED

mod closed {
    use super::*;

    /// RFC 9293 §3.10.7.1: a segment without ACK gets <SEQ=0><ACK=SEG.SEQ+SEG.LEN><RST,ACK>.
    #[test]
    fn reset_for_segment_without_ack() {
        let syn = TcpRepr {
            src_port: 80,
            dst_port: 4000,
            seq: 77,
            ack: 0,
            flags: F::SYN,
            window: 1,
            urgent: 0,
            options: TcpOptions::default(),
            payload: b"ab",
        };
        let r = reset_for(&syn).unwrap();
        assert_eq!((r.seq, r.ack, r.flags, r.src_port, r.dst_port), (0, 80, F::RST | F::ACK, 4000, 80));
    }

    /// RFC 9293 §3.10.7.1: a segment with ACK gets <SEQ=SEG.ACK><CTL=RST>; a RST gets nothing.
    #[test]
    fn reset_for_segment_with_ack_and_never_for_rst() {
        let mut s = TcpRepr {
            src_port: 80,
            dst_port: 4000,
            seq: 77,
            ack: 123,
            flags: F::ACK,
            window: 1,
            urgent: 0,
            options: TcpOptions::default(),
            payload: &[],
        };
        let r = reset_for(&s).unwrap();
        assert_eq!((r.seq, r.flags), (123, F::RST));
        s.flags = F::RST | F::ACK;
        assert!(reset_for(&s).is_none());
    }

    #[test]
    fn calls_on_a_closed_tcb_return_typed_errors() {
        let mut t = T::established(cfg());
        t.tcb.abort();
        t.expect(F::RST | F::ACK, ISS + 1, PEER_ISS + 1);
        assert_eq!(t.tcb.send(b"x"), Err(TcpError::Closed(CloseReason::Aborted)));
        assert_eq!(t.tcb.recv(&mut [0; 4]), Err(TcpError::Closed(CloseReason::Aborted)));
        // Segments to a closed TCB are ignored (the owner answers them with reset_for).
        t.input(seg(F::ACK).data(b"late"));
        t.none();
    }
}

// ---------------------------------------------------------------------------------- LISTEN

mod listen {
    use super::*;

    /// RFC 9293 §3.5 figure 6 from the passive side: SYN in, SYN-ACK out, ACK in.
    #[test]
    fn passive_open_three_way_handshake() {
        let mut t = T::listener(cfg());
        assert_eq!(t.tcb.state(), State::Listen);
        t.input(seg(F::SYN).seq(PEER_ISS).ack(0).opts(TcpOptions { mss: Some(1400), ..Default::default() }));
        assert_eq!(t.tcb.state(), State::SynReceived);
        assert_eq!(t.tcb.remote(), REMOTE.into());
        let sa = t.output().unwrap();
        assert_eq!((sa.flags, sa.ack), (F::SYN | F::ACK, PEER_ISS + 1));
        assert_eq!(sa.options.mss, Some(1460));
        let iss = sa.seq;
        t.input(seg(F::ACK).seq(PEER_ISS + 1).ack(iss + 1));
        assert_eq!(t.tcb.state(), State::Established);
        assert_eq!(t.events(), vec![Event::Connected]);
        assert_eq!(t.tcb.send_mss(), 1400, "the peer's MSS bounds what we send");
        t.none();
    }

    /// RFC 9293 §3.10.7.2: an ACK in LISTEN gets <SEQ=SEG.ACK><CTL=RST>; the TCB stays.
    #[test]
    fn ack_gets_reset_and_listener_stays() {
        let mut t = T::listener(cfg());
        t.input(seg(F::ACK).seq(9).ack(4242));
        t.expect(F::RST, 4242, 0);
        assert_eq!(t.tcb.state(), State::Listen);
    }

    /// RFC 9293 §3.10.7.2: an RST in LISTEN is ignored.
    #[test]
    fn rst_is_ignored() {
        let mut t = T::listener(cfg());
        t.input(seg(F::RST));
        t.none();
        assert_eq!(t.tcb.state(), State::Listen);
    }

    #[test]
    fn send_and_recv_on_a_listener_are_errors() {
        let mut t = T::listener(cfg());
        assert_eq!(t.tcb.send(b"x"), Err(TcpError::InvalidState(State::Listen)));
        assert_eq!(t.tcb.recv(&mut [0; 4]), Err(TcpError::InvalidState(State::Listen)));
    }
}

// -------------------------------------------------------------------------------- SYN-SENT

mod syn_sent {
    use super::*;

    /// RFC 9293 §3.5 figure 6: SYN out (with our options), SYN-ACK in, ACK out; ESTABLISHED.
    #[test]
    fn active_open_three_way_handshake() {
        let mut t = T::active(TcpConfig::default());
        let syn = t.output().unwrap();
        assert_eq!((syn.flags, syn.seq), (F::SYN, ISS));
        assert_eq!(syn.options.mss, Some(1460));
        assert!(syn.options.sack_permitted);
        assert!(syn.options.timestamp.is_some());
        assert_eq!(syn.options.window_scale, Some(TcpConfig::default().window_shift()));
        t.at(1);
        t.input(seg(F::SYN | F::ACK).seq(PEER_ISS).opts(TcpOptions {
            mss: Some(1460),
            window_scale: Some(7),
            sack_permitted: true,
            timestamp: Some(Timestamp { tsval: 99, tsecr: syn.options.timestamp.unwrap().tsval }),
            ..Default::default()
        }));
        let ack = t.expect(F::ACK, ISS + 1, PEER_ISS + 1);
        assert_eq!(ack.options.timestamp.unwrap().tsecr, 99, "RFC 7323 §3: echo TSval");
        assert_eq!(t.tcb.state(), State::Established);
        assert_eq!(t.tcb.send_mss(), 1460 - 12, "timestamps take 12 bytes of every segment");
        assert_eq!(t.tcb.srtt(), Some(Duration::from_millis(1)), "the SYN was timed");
    }

    /// RFC 9293 §3.8.1 / RFC 6298 §5.5: the SYN is retransmitted at 1, 3, 7, 15, 31, 63 s
    /// (backoff doubling from 1 s); after `syn_retries` (6) the open fails with a timeout.
    #[test]
    fn syn_retransmitted_with_backoff_then_times_out() {
        let mut t = T::active(cfg());
        t.expect(F::SYN, ISS, 0);
        let mut at = 0;
        for k in 0..6 {
            at += 1000 << k;
            t.at(at - 1);
            t.none();
            t.at(at);
            t.expect(F::SYN, ISS, 0);
        }
        t.at(at + (1000 << 6));
        t.none();
        assert_eq!(t.tcb.state(), State::Closed);
        assert_eq!(t.events(), vec![Event::Closed(CloseReason::TimedOut)]);
        assert_eq!(t.tcb.stats().retransmits, 6);
    }

    /// RFC 9293 §3.10.7.3 / RFC 5961 §3.2: a RST whose ACK acknowledges our SYN refuses the
    /// connection (ECONNREFUSED).
    #[test]
    fn rst_acking_our_syn_is_connection_refused() {
        let mut t = T::active(cfg());
        t.output().unwrap();
        t.input(seg(F::RST | F::ACK).seq(0).ack(ISS + 1));
        assert_eq!(t.tcb.state(), State::Closed);
        assert_eq!(t.events(), vec![Event::Closed(CloseReason::Refused)]);
        t.none();
    }

    /// RFC 9293 §3.10.7.3: a RST without an acceptable ACK is dropped.
    #[test]
    fn rst_without_acceptable_ack_is_dropped() {
        let mut t = T::active(cfg());
        t.output().unwrap();
        t.input(seg(F::RST).seq(0).ack(0));
        t.input(seg(F::RST | F::ACK).seq(0).ack(ISS + 7));
        assert_eq!(t.tcb.state(), State::SynSent);
        t.none();
    }

    /// RFC 9293 §3.10.7.3: an ACK outside (ISS, SND.NXT] gets <SEQ=SEG.ACK><CTL=RST>.
    #[test]
    fn unacceptable_ack_gets_reset() {
        let mut t = T::active(cfg());
        t.output().unwrap();
        t.input(seg(F::SYN | F::ACK).seq(PEER_ISS).ack(ISS + 50));
        t.expect(F::RST, ISS + 50, 0);
        assert_eq!(t.tcb.state(), State::SynSent);
    }

    /// RFC 9293 §3.10.7.3: a segment with neither SYN nor RST is dropped.
    #[test]
    fn plain_ack_is_dropped() {
        let mut t = T::active(cfg());
        t.output().unwrap();
        t.input(seg(F::ACK).seq(PEER_ISS).ack(ISS + 1));
        assert_eq!(t.tcb.state(), State::SynSent);
        t.none();
    }

    /// RFC 9293 §3.5 figure 8, simultaneous open: SYN-SENT + SYN → SYN-RECEIVED and SYN,ACK
    /// out; the peer's SYN,ACK then completes it. Four segments in all.
    #[test]
    fn simultaneous_open() {
        let mut t = T::active(cfg());
        t.expect(F::SYN, ISS, 0);
        t.input(seg(F::SYN).seq(PEER_ISS).ack(0));
        assert_eq!(t.tcb.state(), State::SynReceived);
        t.expect(F::SYN | F::ACK, ISS, PEER_ISS + 1);
        t.input(seg(F::SYN | F::ACK).seq(PEER_ISS).ack(ISS + 1));
        // The peer's SYN,ACK repeats its SYN (seq below RCV.NXT) but acknowledges ours: the
        // ACK part completes the handshake.
        assert_eq!(t.tcb.state(), State::Established);
        assert_eq!(t.events(), vec![Event::Connected]);
    }

    /// RFC 9293 §3.10.4: CLOSE in SYN-SENT deletes the TCB without sending anything.
    #[test]
    fn close_in_syn_sent_just_closes() {
        let mut t = T::active(cfg());
        t.output().unwrap();
        t.tcb.close().unwrap();
        assert_eq!(t.tcb.state(), State::Closed);
        t.none();
    }

    /// RFC 9293 §3.7.1: without an MSS option the peer gets at most 536 bytes a segment.
    #[test]
    fn default_mss_is_536() {
        let mut t = T::active(cfg());
        t.output().unwrap();
        t.input(seg(F::SYN | F::ACK).seq(PEER_ISS));
        t.output().unwrap();
        assert_eq!(t.tcb.send_mss(), 536);
    }
}

// ---------------------------------------------------------------------------- SYN-RECEIVED

mod syn_received {
    use super::*;

    fn syn_received() -> (T, u32) {
        let mut t = T::listener(cfg());
        t.input(seg(F::SYN).seq(PEER_ISS).ack(0));
        let iss = t.output().unwrap().seq;
        (t, iss)
    }

    /// Linux `tcp_synack_retries`: SYN-ACK at 1, 3, 7, 15, 31 s after the first; then the
    /// attempt is given up.
    #[test]
    fn synack_retransmitted_with_backoff_then_given_up() {
        let (mut t, iss) = syn_received();
        let mut at = 0;
        for k in 0..5 {
            at += 1000 << k;
            t.at(at - 1);
            t.none();
            t.at(at);
            t.expect(F::SYN | F::ACK, iss, PEER_ISS + 1);
        }
        t.at(at + (1000 << 5));
        assert_eq!(t.tcb.state(), State::Closed);
        assert_eq!(t.events(), vec![Event::Closed(CloseReason::TimedOut)]);
    }

    /// A retransmitted SYN (our SYN-ACK was lost) gets the SYN-ACK again at once.
    #[test]
    fn duplicate_syn_resends_synack() {
        let (mut t, iss) = syn_received();
        t.at(100);
        t.input(seg(F::SYN).seq(PEER_ISS).ack(0));
        t.expect(F::SYN | F::ACK, iss, PEER_ISS + 1);
        assert_eq!(t.tcb.state(), State::SynReceived);
    }

    /// RFC 9293 §3.10.7.4 second: RST in SYN-RECEIVED from a passive open returns to LISTEN.
    #[test]
    fn rst_returns_passive_open_to_listen() {
        let (mut t, _) = syn_received();
        t.input(seg(F::RST).seq(PEER_ISS + 1));
        assert_eq!(t.tcb.state(), State::Listen);
        t.none();
        // And it can accept again.
        t.input(seg(F::SYN).seq(7000).ack(0));
        assert_eq!(t.tcb.state(), State::SynReceived);
    }

    /// RFC 9293 §3.10.7.4 second: RST in SYN-RECEIVED from an active open (simultaneous open)
    /// closes: connection refused.
    #[test]
    fn rst_closes_active_open() {
        let mut t = T::active(cfg());
        t.output().unwrap();
        t.input(seg(F::SYN).seq(PEER_ISS).ack(0));
        t.output().unwrap();
        t.input(seg(F::RST).seq(PEER_ISS + 1));
        assert_eq!(t.tcb.state(), State::Closed);
        assert_eq!(t.events(), vec![Event::Closed(CloseReason::Refused)]);
    }

    /// RFC 9293 §3.10.7.4 fifth: an unacceptable ACK in SYN-RECEIVED gets
    /// <SEQ=SEG.ACK><CTL=RST>.
    #[test]
    fn unacceptable_ack_gets_reset() {
        let (mut t, iss) = syn_received();
        t.input(seg(F::ACK).seq(PEER_ISS + 1).ack(iss + 100));
        t.expect(F::RST, iss + 100, 0);
        assert_eq!(t.tcb.state(), State::SynReceived);
    }

    /// RFC 9293 §3.10.4: CLOSE in SYN-RECEIVED → FIN-WAIT-1; the FIN follows the handshake.
    #[test]
    fn close_goes_to_fin_wait_1() {
        let (mut t, iss) = syn_received();
        t.tcb.close().unwrap();
        assert_eq!(t.tcb.state(), State::FinWait1);
        t.input(seg(F::ACK).seq(PEER_ISS + 1).ack(iss + 1));
        t.expect(F::FIN | F::ACK, iss + 1, PEER_ISS + 1);
        assert_eq!(t.tcb.state(), State::FinWait1);
        t.input(seg(F::ACK).seq(PEER_ISS + 1).ack(iss + 2));
        assert_eq!(t.tcb.state(), State::FinWait2);
    }

    /// Data queued before the handshake completes goes out right after it (§3.10.2).
    #[test]
    fn data_queued_before_established_is_sent_after() {
        let mut t = T::active(cfg());
        t.output().unwrap();
        assert_eq!(t.tcb.send(b"early"), Ok(5));
        t.input(seg(F::SYN | F::ACK).seq(PEER_ISS).opts(TcpOptions { mss: Some(1460), ..Default::default() }));
        let o = t.expect(F::ACK | F::PSH, ISS + 1, PEER_ISS + 1);
        assert_eq!(o.payload, b"early");
    }
}

// ----------------------------------------------------------------------------- ESTABLISHED

mod established;

// ------------------------------------------------------------------------------ the closes

mod close;

// ------------------------------------------------- loss recovery, congestion control, ECN

mod recovery;

// ------------------------------------------------------------------------- sequence wrap

mod wrap {
    use super::*;

    /// Transfer across the 2^32 wrap of the sequence space.
    #[test]
    fn data_across_the_sequence_wrap() {
        let iss = u32::MAX - 5;
        let mut t = T { tcb: Tcb::connect(cfg(), LOCAL, REMOTE, SeqNum(iss), Instant::ZERO), now: Instant::ZERO };
        t.output().unwrap();
        let peer = u32::MAX - 2;
        t.input(
            seg(F::SYN | F::ACK)
                .seq(peer)
                .ack(iss.wrapping_add(1))
                .opts(TcpOptions { mss: Some(1460), ..Default::default() }),
        );
        t.output().unwrap();
        t.tcb.send(b"0123456789").unwrap();
        let o = t.output().unwrap();
        assert_eq!(o.seq, iss.wrapping_add(1));
        t.input(seg(F::ACK).seq(peer.wrapping_add(1)).ack(iss.wrapping_add(11)).data(b"abcdefghij"));
        assert_eq!(t.tcb.send_queued(), 0);
        assert_eq!(t.tcb.recv_available(), 10);
        t.at(40);
        assert_eq!(t.output().unwrap().ack, peer.wrapping_add(11));
    }
}

// ------------------------------------------------------------------------------ SYN cookies

mod syn_cookies {
    use super::*;
    use crate::tcp::cookie::SynCookies;

    /// RFC 4987 §3.6: the SYN-ACK a cookie answers with is the one a queued connection would
    /// send, and the connection built from the ACK that brings the cookie back is ESTABLISHED
    /// with the SYN's options, takes the ACK's data, and keeps the SYN-ACK's timestamp clock.
    #[test]
    fn a_connection_from_a_cookie_is_the_one_a_queued_handshake_makes() {
        let c = SynCookies::new([3; 16]);
        let cfg = TcpConfig { sack: true, timestamps: true, ..cfg() };
        let now = Instant::from_millis(5000);
        let syn = TcpRepr {
            src_port: REMOTE.port(),
            dst_port: LOCAL.port(),
            seq: PEER_ISS,
            ack: 0,
            flags: F::SYN,
            window: 65535,
            urgent: 0,
            options: TcpOptions {
                mss: Some(1460),
                sack_permitted: true,
                timestamp: Some(Timestamp { tsval: 100, tsecr: 0 }),
                ..Default::default()
            },
            payload: &[],
        };
        let sa = c.syn_ack(&cfg, now, LOCAL, REMOTE, &syn);
        let mut queued = Tcb::from_syn(cfg.clone(), LOCAL, REMOTE, SeqNum(sa.seq), &syn, now);
        let mut buf = [0u8; 64];
        let q = queued.poll_transmit(now, &mut buf).unwrap();
        assert_eq!((q.seq, q.ack, q.flags, q.window), (sa.seq, sa.ack, sa.flags, sa.window));
        assert_eq!(
            (q.options.mss, q.options.window_scale, q.options.sack_permitted),
            (sa.options.mss, sa.options.window_scale, sa.options.sack_permitted)
        );
        let synack_ts = sa.options.timestamp.expect("timestamps agreed").tsval;
        assert_eq!(sa.options.timestamp.unwrap().tsecr, 100);

        // The ACK comes back 20 ms later with the first request.
        let later = Instant::from_millis(5020);
        let ack = TcpRepr {
            seq: PEER_ISS + 1,
            ack: sa.seq.wrapping_add(1),
            flags: F::ACK | F::PSH,
            options: TcpOptions { timestamp: Some(Timestamp { tsval: 120, tsecr: synack_ts }), ..Default::default() },
            payload: b"GET /",
            ..syn
        };
        let from = c.check(later, LOCAL, REMOTE, &ack).expect("our cookie");
        let mut t =
            T { tcb: Tcb::from_cookie_in(cfg, LOCAL, REMOTE, from.iss, &from.syn(&ack), later, None), now: later };
        t.tcb.on_segment(later, REMOTE, &ack);
        assert_eq!(t.tcb.state(), State::Established);
        assert!(t.tcb.sack_enabled());
        assert_eq!(t.events(), vec![Event::Connected, Event::Readable]);
        let mut got = [0u8; 8];
        assert_eq!(t.tcb.recv(&mut got), Ok(5));
        assert_eq!(&got[..5], b"GET /");
        // Its ACK of the data (delayed) echoes the peer's newest timestamp, and its own clock
        // runs on from the SYN-ACK's.
        t.at(5300);
        let out = t.expect(F::ACK, sa.seq.wrapping_add(1), PEER_ISS + 6);
        let ts = out.options.timestamp.unwrap();
        assert_eq!(ts.tsecr, 120);
        assert!(ts.tsval.wrapping_sub(synack_ts) < 1000, "TSval {} after the SYN-ACK's {synack_ts}", ts.tsval);
    }
}
