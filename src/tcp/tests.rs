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
        self.tcb.on_segment(self.now, REMOTE, &repr);
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
        assert_eq!(t.tcb.remote(), REMOTE);
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

mod established {
    use super::*;

    /// RFC 1122 §4.2.3.2, RFC 5681 §4.2: one segment is ACKed after the delayed-ACK time
    /// (40 ms), two full-sized ones at once.
    #[test]
    fn delayed_ack_then_every_second_segment() {
        let mut t = T::established(cfg());
        t.input(seg(F::ACK | F::PSH).data(&[1; 100]));
        t.none();
        t.at(39);
        t.none();
        t.at(40);
        t.expect(F::ACK, ISS + 1, PEER_ISS + 101);
        t.input(seg(F::ACK).seq(PEER_ISS + 101).data(&[2; 1460]));
        t.none();
        t.input(seg(F::ACK).seq(PEER_ISS + 1561).data(&[3; 1460]));
        t.expect(F::ACK, ISS + 1, PEER_ISS + 3021);
        let mut buf = vec![0u8; 4000];
        assert_eq!(t.tcb.recv(&mut buf), Ok(3020));
        assert_eq!(&buf[..100], &[1; 100][..]);
        assert_eq!(&buf[100..1560], &[2; 1460][..]);
    }

    /// RFC 5681 §4.2: out-of-order data is ACKed at once (a duplicate ACK, with SACK blocks
    /// when agreed, RFC 2018 §4); the segment that fills the gap is ACKed at once too, and the
    /// data comes out in order.
    #[test]
    fn out_of_order_acked_at_once_with_sack_and_reassembled() {
        let mut t = T::active(TcpConfig { sack: true, ..cfg() });
        t.output().unwrap();
        t.input(seg(F::SYN | F::ACK).seq(PEER_ISS).opts(TcpOptions {
            mss: Some(1460),
            sack_permitted: true,
            ..Default::default()
        }));
        t.output().unwrap();
        t.input(seg(F::ACK).seq(PEER_ISS + 11).data(b"KLMNOPQRST"));
        let dup = t.expect(F::ACK, ISS + 1, PEER_ISS + 1);
        let mut want = SackBlocks::default();
        want.push(PEER_ISS + 11, PEER_ISS + 21);
        assert_eq!(dup.options.sack, want);
        assert_eq!(t.tcb.recv(&mut [0; 10]), Err(TcpError::WouldBlock));
        t.input(seg(F::ACK).seq(PEER_ISS + 1).data(b"ABCDEFGHIJ"));
        let ack = t.expect(F::ACK, ISS + 1, PEER_ISS + 21);
        assert!(ack.options.sack.is_empty());
        let mut buf = [0u8; 32];
        assert_eq!(t.tcb.recv(&mut buf), Ok(20));
        assert_eq!(&buf[..20], b"ABCDEFGHIJKLMNOPQRST");
        assert_eq!(t.tcb.stats().out_of_order_in, 1);
    }

    /// RFC 9293 §3.10.7.4: a duplicate is trimmed, ACKed, and delivered once; an overlap
    /// delivers only the new bytes.
    #[test]
    fn duplicates_and_overlaps_are_trimmed() {
        let mut t = T::established(cfg());
        t.input(seg(F::ACK).data(b"hello"));
        t.input(seg(F::ACK).data(b"hello"));
        t.expect(F::ACK, ISS + 1, PEER_ISS + 6);
        t.input(seg(F::ACK).seq(PEER_ISS + 3).data(b"llo world"));
        t.expect(F::ACK, ISS + 1, PEER_ISS + 12);
        let mut buf = [0u8; 32];
        assert_eq!(t.tcb.recv(&mut buf), Ok(11));
        assert_eq!(&buf[..11], b"hello world");
    }

    /// RFC 9293 §3.10.7.4 first: data outside the window is dropped and answered with
    /// <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>.
    #[test]
    fn data_outside_window_dropped_with_ack() {
        let mut t = T::established(cfg());
        t.input(seg(F::ACK).seq(PEER_ISS + 1 + 70000).data(b"far"));
        t.expect(F::ACK, ISS + 1, PEER_ISS + 1);
        t.input(seg(F::ACK).seq(PEER_ISS - 100).data(b"old"));
        t.expect(F::ACK, ISS + 1, PEER_ISS + 1);
        assert_eq!(t.tcb.stats().unacceptable_in, 2);
        assert_eq!(t.tcb.recv(&mut [0; 8]), Err(TcpError::WouldBlock));
    }

    /// RFC 5961 §3.2: RST with SEQ = RCV.NXT resets the connection.
    #[test]
    fn rst_exact_match_resets() {
        let mut t = T::established(cfg());
        t.input(seg(F::RST).seq(PEER_ISS + 1));
        assert_eq!(t.tcb.state(), State::Closed);
        assert_eq!(t.events(), vec![Event::Closed(CloseReason::Reset)]);
        t.none();
    }

    /// RFC 5961 §3.2: RST in the window but not at RCV.NXT gets a challenge ACK; outside the
    /// window it is dropped silently.
    #[test]
    fn rst_in_window_gets_challenge_ack_out_of_window_dropped() {
        let mut t = T::established(cfg());
        t.input(seg(F::RST).seq(PEER_ISS + 100));
        t.expect(F::ACK, ISS + 1, PEER_ISS + 1);
        assert_eq!(t.tcb.state(), State::Established);
        t.input(seg(F::RST).seq(PEER_ISS + 100_000));
        t.none();
        assert_eq!(t.tcb.stats().challenge_acks, 1);
    }

    /// RFC 5961 §4.2: a SYN in a synchronized state gets a challenge ACK.
    #[test]
    fn syn_gets_challenge_ack() {
        let mut t = T::established(cfg());
        t.input(seg(F::SYN).seq(PEER_ISS + 50).ack(0));
        t.expect(F::ACK, ISS + 1, PEER_ISS + 1);
        assert_eq!(t.tcb.state(), State::Established);
    }

    /// RFC 5961 §7: challenge ACKs are rate-limited.
    #[test]
    fn challenge_acks_rate_limited() {
        let mut t = T::established(TcpConfig { challenge_ack_limit: 3, ..cfg() });
        for _ in 0..10 {
            t.input(seg(F::RST).seq(PEER_ISS + 100));
            t.outputs();
        }
        assert_eq!(t.tcb.stats().challenge_acks, 3);
        assert_eq!(t.tcb.stats().challenge_acks_suppressed, 7);
        t.at(1000);
        t.input(seg(F::RST).seq(PEER_ISS + 100));
        assert_eq!(t.outputs().len(), 1, "a new second, a new allowance");
    }

    /// RFC 5961 §5.2: an ACK beyond what we sent is dropped and answered with an ACK; data in
    /// it is not accepted.
    #[test]
    fn ack_of_unsent_data_is_dropped() {
        let mut t = T::established(cfg());
        t.input(seg(F::ACK).ack(ISS + 5000).data(b"inject"));
        t.expect(F::ACK, ISS + 1, PEER_ISS + 1);
        assert_eq!(t.tcb.recv(&mut [0; 8]), Err(TcpError::WouldBlock));
    }

    /// RFC 6928: the initial window is 10 segments; RFC 5681 §3.1: slow start then grows it.
    #[test]
    fn initial_window_is_ten_segments() {
        let mut t = T::established(TcpConfig { nagle: false, ..cfg() });
        let data = vec![7u8; 20 * 1460];
        assert_eq!(t.tcb.send(&data), Ok(data.len()));
        let segs = t.outputs();
        assert_eq!(segs.len(), 10);
        assert!(segs.iter().all(|s| s.payload.len() == 1460));
        assert_eq!(segs[9].seq, ISS + 1 + 9 * 1460);
        // ACK of the first two segments opens room for more (slow start).
        t.at(10);
        t.input(seg(F::ACK).ack(ISS + 1 + 2 * 1460));
        // Two segments left the network and slow start grew cwnd by the two acknowledged
        // (byte counting, RFC 3465): four more go.
        assert_eq!(t.outputs().len(), 4);
    }

    /// RFC 6298: the RTO comes from measured RTT (min 200 ms, Linux), doubles on each
    /// expiry, and a retransmission resends from SND.UNA.
    #[test]
    fn retransmission_timeout_measured_and_backed_off() {
        let mut t = T::established(cfg());
        t.tcb.send(b"abc").unwrap();
        t.expect(F::ACK | F::PSH, ISS + 1, PEER_ISS + 1);
        t.at(5);
        t.input(seg(F::ACK).ack(ISS + 4));
        // SRTT from the handshake (0 ms) and this 5 ms sample: RTO is the 200 ms floor.
        assert_eq!(t.tcb.rto(), Duration::from_millis(200));
        t.tcb.send(b"def").unwrap();
        t.expect(F::ACK | F::PSH, ISS + 4, PEER_ISS + 1);
        t.at(204);
        t.none();
        t.at(205);
        let r = t.expect(F::ACK | F::PSH, ISS + 4, PEER_ISS + 1);
        assert_eq!(r.payload, b"def");
        t.at(205 + 399);
        t.none();
        t.at(205 + 400);
        t.expect(F::ACK | F::PSH, ISS + 4, PEER_ISS + 1);
        assert_eq!(t.tcb.stats().rto_expirations, 2);
        t.input(seg(F::ACK).ack(ISS + 7));
        t.at(10_000);
        t.none();
    }

    /// `data_retries` retransmissions without progress abort the connection: ETIMEDOUT.
    #[test]
    fn data_retries_exhausted_times_out() {
        let mut t = T::established(TcpConfig { data_retries: 3, ..cfg() });
        t.tcb.send(b"abc").unwrap();
        t.output().unwrap();
        let mut ms = 0;
        for _ in 0..3 {
            ms += t.tcb.rto().as_millis() as u64;
            t.at(ms);
            t.expect(F::ACK | F::PSH, ISS + 1, PEER_ISS + 1);
        }
        ms += t.tcb.rto().as_millis() as u64;
        t.at(ms);
        t.expect(F::RST | F::ACK, ISS + 4, PEER_ISS + 1);
        assert_eq!(t.events(), vec![Event::Closed(CloseReason::TimedOut)]);
    }

    /// RFC 5681 §3.2: the third duplicate ACK retransmits the missing segment at once;
    /// RFC 6582: a partial ACK retransmits the next hole; the full ACK ends recovery.
    #[test]
    fn fast_retransmit_and_newreno_recovery() {
        let mut t = T::established(TcpConfig { nagle: false, ..cfg() });
        t.tcb.send(&vec![1u8; 6 * 1460]).unwrap();
        assert_eq!(t.outputs().len(), 6);
        let s = |k: u32| ISS + 1 + k * 1460;
        for _ in 0..2 {
            t.input(seg(F::ACK).ack(s(1)));
        }
        // Two ACKs: the first acknowledges segment 0; the second is the first duplicate.
        t.none();
        t.input(seg(F::ACK).ack(s(1)));
        t.input(seg(F::ACK).ack(s(1)));
        let rtx = t.expect(F::ACK, s(1), PEER_ISS + 1);
        assert_eq!(rtx.payload.len(), 1460);
        assert_eq!(t.tcb.stats().fast_retransmits, 1);
        // Partial ACK: segments 1 and 2 arrived, 3 was lost too.
        t.input(seg(F::ACK).ack(s(3)));
        let outs = t.outputs();
        assert_eq!(outs[0].seq, s(3), "RFC 6582: partial ACK retransmits the first unacked segment");
        // Full ACK.
        t.input(seg(F::ACK).ack(s(6)));
        assert!(!t.tcb.in_recovery());
    }

    /// RFC 9293 §3.8.6.1 / RFC 1122 §4.2.2.17: a zero window is probed with one byte, with
    /// exponential backoff, for as long as the peer answers; a window update resumes sending.
    #[test]
    fn zero_window_probes_with_backoff() {
        let mut t = T::established(cfg());
        t.input(seg(F::ACK).win(0));
        t.tcb.send(b"waiting").unwrap();
        t.none();
        let rto = t.tcb.rto().as_millis() as u64;
        t.at(rto);
        let p = t.expect(F::ACK | F::PSH, ISS + 1, PEER_ISS + 1);
        assert_eq!(p.payload, b"w");
        t.input(seg(F::ACK).win(0));
        t.at(rto + 2 * rto - 1);
        t.none();
        t.at(rto + 2 * rto);
        assert_eq!(t.output().unwrap().payload, b"w");
        assert_eq!(t.tcb.stats().window_probes, 2);
        // The window opens (and the probe byte was taken).
        t.input(seg(F::ACK).ack(ISS + 2).win(1000));
        let o = t.expect(F::ACK | F::PSH, ISS + 2, PEER_ISS + 1);
        assert_eq!(o.payload, b"aiting");
        assert_eq!(t.tcb.state(), State::Established);
    }

    /// RFC 1122 §4.2.3.4: a window too small for the sender's silly-window avoidance, with
    /// nothing in flight, arms the override timeout; when it fires, what the window allows
    /// goes. Without it a lost window update deadlocks the connection (tests/stack_sim.rs seed
    /// 2491: the receiver read everything, its update was lost, neither side had a timer).
    #[test]
    fn small_window_override_timeout() {
        let mut t = T::established(cfg());
        t.input(seg(F::ACK).win(60_000)); // MAX.SND.WND: SWS waits for 30,000 bytes or a full MSS
        t.input(seg(F::ACK).win(500));
        t.tcb.send(&[7u8; 3000]).unwrap();
        t.none(); // 500 bytes is neither a full segment nor half the largest window
        assert!(t.tcb.poll_timeout().is_some(), "a timer must be armed, or nothing ever happens");
        let rto = t.tcb.rto().as_millis() as u64;
        t.at(rto - 1);
        t.none();
        t.at(rto);
        let o = t.expect(F::ACK, ISS + 1, PEER_ISS + 1);
        assert_eq!(o.payload.len(), 500, "the window's worth, at the override timeout");
        // Its ACK brings the real (open) window: sending resumes with a full segment (the
        // rest then waits for Nagle, as usual).
        t.input(seg(F::ACK).ack(ISS + 501).win(60_000));
        let sizes: Vec<usize> = t.outputs().iter().map(|o| o.payload.len()).collect();
        assert_eq!(sizes, [1460]);
    }

    /// RFC 1122 §4.2.3.4 (Nagle): a small segment waits while data is unacknowledged;
    /// with Nagle off it goes at once.
    #[test]
    fn nagle_holds_small_segments_until_ack() {
        let mut t = T::established(cfg());
        t.tcb.send(b"a").unwrap();
        t.expect(F::ACK | F::PSH, ISS + 1, PEER_ISS + 1);
        t.tcb.send(b"b").unwrap();
        t.tcb.send(b"c").unwrap();
        t.none();
        t.input(seg(F::ACK).ack(ISS + 2));
        let o = t.expect(F::ACK | F::PSH, ISS + 2, PEER_ISS + 1);
        assert_eq!(o.payload, b"bc");
        t.tcb.set_nagle(false);
        t.tcb.send(b"d").unwrap();
        t.expect(F::ACK | F::PSH, ISS + 4, PEER_ISS + 1);
    }

    /// RFC 1122 §4.2.3.3: reading from a full buffer sends a window update once it opens by
    /// at least min(RCV.BUFF/2, MSS).
    #[test]
    fn window_update_after_the_application_reads() {
        let mut t = T::established(TcpConfig { recv_buffer: 4000, ..cfg() });
        t.input(seg(F::ACK).data(&[9u8; 1460]));
        t.input(seg(F::ACK).seq(PEER_ISS + 1461).data(&[9u8; 1460]));
        let a = t.expect(F::ACK, ISS + 1, PEER_ISS + 2921);
        assert_eq!(a.window, 4000 - 2920);
        t.tcb.recv(&mut [0u8; 100]).unwrap();
        t.none(); // 100 bytes is below the threshold
        t.tcb.recv(&mut [0u8; 2000]).unwrap();
        let u = t.expect(F::ACK, ISS + 1, PEER_ISS + 2921);
        assert_eq!(u.window, 4000 - 820, "820 bytes are still unread");
    }

    /// RFC 1122 §4.2.3.6: keep-alive probes after the idle time, at the interval; an answered
    /// probe keeps the connection; `probes` unanswered ones abort it.
    #[test]
    fn keepalive_detects_a_dead_peer() {
        let ka = Keepalive { idle: Duration::from_secs(10), interval: Duration::from_secs(2), probes: 3 };
        let mut t = T::established(TcpConfig { keepalive: Some(ka), ..cfg() });
        t.at(9_999);
        t.none();
        t.at(10_000);
        t.expect(F::ACK, ISS, PEER_ISS + 1); // SEG.SEQ = SND.NXT - 1
                                             // Answered: the idle period starts over.
        t.input(seg(F::ACK));
        t.at(12_000);
        t.none();
        t.at(20_000);
        t.expect(F::ACK, ISS, PEER_ISS + 1);
        t.at(22_000);
        t.expect(F::ACK, ISS, PEER_ISS + 1);
        t.at(24_000);
        t.expect(F::ACK, ISS, PEER_ISS + 1);
        t.at(26_000);
        t.expect(F::RST | F::ACK, ISS + 1, PEER_ISS + 1);
        assert_eq!(t.tcb.state(), State::Closed);
        assert_eq!(t.events(), vec![Event::Closed(CloseReason::TimedOut)]);
    }

    /// Keep-alive is off by default (RFC 1122 §4.2.3.6): an idle connection sends nothing.
    #[test]
    fn keepalive_off_by_default() {
        let mut t = T::established(cfg());
        assert_eq!(t.tcb.poll_timeout(), None);
        t.at(10_000_000);
        t.none();
        assert_eq!(t.tcb.state(), State::Established);
    }

    /// RFC 7323 §5 (PAWS): a segment with an old timestamp is dropped and ACKed.
    #[test]
    fn paws_drops_old_timestamps() {
        let mut t = T::active(TcpConfig { timestamps: true, ..cfg() });
        t.output().unwrap();
        let ts = |v| TcpOptions { timestamp: Some(Timestamp { tsval: v, tsecr: 0 }), ..Default::default() };
        t.input(seg(F::SYN | F::ACK).seq(PEER_ISS).opts(TcpOptions { mss: Some(1460), ..ts(1000) }));
        t.output().unwrap();
        t.input(seg(F::ACK).data(b"new").opts(ts(1001)));
        t.input(seg(F::ACK).seq(PEER_ISS + 4).data(b"old").opts(ts(500)));
        let a = t.outputs();
        assert_eq!(a.last().unwrap().ack, PEER_ISS + 4);
        assert_eq!(t.tcb.recv_available(), 3);
    }

    /// The window offered from the first segment on is the receive buffer, no more (found by
    /// the simulator: the right edge once started from an uninitialised value).
    #[test]
    fn advertised_window_is_the_buffer_from_the_start() {
        let mut t = T::listener(TcpConfig { recv_buffer: 1000, ..cfg() });
        t.input(seg(F::SYN).seq(PEER_ISS).ack(0));
        let sa = t.output().unwrap();
        assert_eq!(sa.window, 1000);
        t.input(seg(F::ACK).seq(PEER_ISS + 1).ack(sa.seq + 1).data(&[0u8; 400]));
        t.at(40);
        let a = t.output().unwrap();
        assert_eq!((a.ack, a.window), (PEER_ISS + 401, 600));
    }

    /// After an RTO rewinds SND.NXT, a pure ACK still carries SND.MAX: the peer may have all
    /// we sent, and would drop an ACK numbered below its RCV.NXT (found by the simulator:
    /// two rewound sides dropped each other's ACKs forever).
    #[test]
    fn pure_ack_after_rto_is_numbered_snd_max() {
        let mut t = T::established(TcpConfig { nagle: false, ..cfg() });
        t.tcb.send(&[1u8; 3000]).unwrap();
        assert_eq!(t.outputs().len(), 3);
        let rto = t.tcb.rto().as_millis() as u64;
        t.at(rto);
        let r = t.output().unwrap();
        assert_eq!(r.seq, ISS + 1, "go back to SND.UNA");
        t.input(seg(F::ACK | F::PSH).data(b"x"));
        t.at(rto + 40);
        let a = t.outputs();
        let ack = a.iter().find(|o| o.payload.is_empty()).expect("a pure ACK");
        assert_eq!(ack.seq, ISS + 3001);
    }

    /// RFC 1122 §4.2.3.9: ICMP errors are soft; RFC 1191: "fragmentation needed" lowers the
    /// MSS to the path's MTU − 40, and the next segments fit it.
    #[test]
    fn icmp_errors_are_soft_and_frag_needed_lowers_the_mss() {
        let mut t = T::established(TcpConfig { nagle: false, ..cfg() });
        t.tcb.on_icmp_error(IcmpError::Unreachable);
        assert_eq!(t.tcb.state(), State::Established);
        assert_eq!(t.tcb.last_icmp_error(), Some(IcmpError::Unreachable));
        assert_eq!(t.tcb.send_mss(), 1460);
        t.tcb.on_icmp_error(IcmpError::FragmentationNeeded { mtu: 1000 });
        assert_eq!(t.tcb.send_mss(), 960);
        t.tcb.on_icmp_error(IcmpError::FragmentationNeeded { mtu: 1400 });
        assert_eq!(t.tcb.send_mss(), 960, "a larger MTU does not raise it");
        t.tcb.send(&[0u8; 2000]).unwrap();
        let segs = t.outputs();
        assert!(
            segs.iter().all(|o| o.payload.len() <= 960),
            "{:?}",
            segs.iter().map(|o| o.payload.len()).collect::<Vec<_>>()
        );
    }

    /// RFC 7323 §2: with window scaling the window field is shifted both ways.
    #[test]
    fn window_scaling_applies_both_ways() {
        let mut t = T::active(TcpConfig { window_scaling: true, recv_buffer: 1 << 20, ..cfg() });
        let syn = t.output().unwrap();
        assert_eq!(syn.options.window_scale, Some(5));
        assert_eq!(syn.window, 65535, "the SYN's window is not scaled");
        t.input(seg(F::SYN | F::ACK).seq(PEER_ISS).win(100).opts(TcpOptions {
            mss: Some(1460),
            window_scale: Some(2),
            ..Default::default()
        }));
        let a = t.output().unwrap();
        assert_eq!(a.window, ((1 << 20) >> 5) as u16);
        // The peer's window field 100 means 400 bytes.
        t.input(seg(F::ACK).win(100));
        t.tcb.set_nagle(false);
        t.tcb.send(&[0u8; 1000]).unwrap();
        let o = t.output().unwrap();
        assert_eq!(o.payload.len(), 400);
    }
}

// ------------------------------------------------------------------------------ the closes

mod close {
    use super::*;

    /// RFC 9293 §3.6 figure 12: we close first. FIN-WAIT-1 → (ACK) FIN-WAIT-2 → (FIN)
    /// TIME-WAIT → 2·MSL (60 s) → CLOSED.
    #[test]
    fn four_way_close_active_side() {
        let mut t = T::established(cfg());
        t.tcb.close().unwrap();
        assert_eq!(t.tcb.state(), State::FinWait1);
        t.expect(F::FIN | F::ACK, ISS + 1, PEER_ISS + 1);
        t.input(seg(F::ACK).ack(ISS + 2));
        assert_eq!(t.tcb.state(), State::FinWait2);
        t.at(1000);
        t.input(seg(F::FIN | F::ACK).ack(ISS + 2));
        t.expect(F::ACK, ISS + 2, PEER_ISS + 2);
        assert_eq!(t.tcb.state(), State::TimeWait);
        t.at(60_999);
        assert_eq!(t.tcb.state(), State::TimeWait);
        t.at(61_000);
        assert_eq!(t.tcb.state(), State::Closed);
        assert_eq!(t.events(), vec![Event::Readable, Event::PeerClosed, Event::Closed(CloseReason::Normal)]);
        assert_eq!(t.tcb.poll_timeout(), None, "no timer left behind");
    }

    /// RFC 9293 §3.6: the peer closes first. CLOSE-WAIT → (our close) LAST-ACK → (ACK) CLOSED.
    #[test]
    fn four_way_close_passive_side() {
        let mut t = T::established(cfg());
        t.input(seg(F::FIN | F::ACK));
        t.expect(F::ACK, ISS + 1, PEER_ISS + 2);
        assert_eq!(t.tcb.state(), State::CloseWait);
        assert_eq!(t.tcb.recv(&mut [0; 8]), Ok(0), "end of stream");
        t.tcb.close().unwrap();
        assert_eq!(t.tcb.state(), State::LastAck);
        t.expect(F::FIN | F::ACK, ISS + 1, PEER_ISS + 2);
        t.input(seg(F::ACK).seq(PEER_ISS + 2).ack(ISS + 2));
        assert_eq!(t.tcb.state(), State::Closed);
        assert!(t.events().contains(&Event::Closed(CloseReason::Normal)));
    }

    /// The three-segment close: the application closes before we ACK the peer's FIN, so our
    /// FIN rides on that ACK.
    #[test]
    fn three_segment_close_fin_rides_on_the_ack() {
        let mut t = T::established(cfg());
        t.input(seg(F::FIN | F::ACK));
        t.tcb.close().unwrap();
        t.expect(F::FIN | F::ACK, ISS + 1, PEER_ISS + 2);
        t.none();
        t.input(seg(F::ACK).seq(PEER_ISS + 2).ack(ISS + 2));
        assert_eq!(t.tcb.state(), State::Closed);
    }

    /// RFC 9293 §3.10.7.4 eighth: FIN-WAIT-1 + a FIN that also ACKs our FIN → TIME-WAIT
    /// directly.
    #[test]
    fn fin_wait_1_fin_ack_goes_straight_to_time_wait() {
        let mut t = T::established(cfg());
        t.tcb.close().unwrap();
        t.output().unwrap();
        t.input(seg(F::FIN | F::ACK).ack(ISS + 2));
        assert_eq!(t.tcb.state(), State::TimeWait);
        t.expect(F::ACK, ISS + 2, PEER_ISS + 2);
    }

    /// RFC 9293 §3.6 figure 13, simultaneous close: FIN-WAIT-1 + FIN → CLOSING; the ACK of
    /// our FIN → TIME-WAIT.
    #[test]
    fn simultaneous_close_through_closing() {
        let mut t = T::established(cfg());
        t.tcb.close().unwrap();
        t.expect(F::FIN | F::ACK, ISS + 1, PEER_ISS + 1);
        t.input(seg(F::FIN | F::ACK).ack(ISS + 1));
        assert_eq!(t.tcb.state(), State::Closing);
        t.expect(F::ACK, ISS + 2, PEER_ISS + 2);
        t.input(seg(F::ACK).seq(PEER_ISS + 2).ack(ISS + 2));
        assert_eq!(t.tcb.state(), State::TimeWait);
    }

    /// Half-close, our side: after shutdown() we keep reading until the peer's FIN.
    #[test]
    fn half_close_we_stop_writing_and_keep_reading() {
        let mut t = T::established(cfg());
        t.tcb.shutdown().unwrap();
        t.expect(F::FIN | F::ACK, ISS + 1, PEER_ISS + 1);
        t.input(seg(F::ACK).ack(ISS + 2));
        assert_eq!(t.tcb.state(), State::FinWait2);
        assert_eq!(t.tcb.send(b"x"), Err(TcpError::WriteClosed));
        t.input(seg(F::ACK | F::PSH).ack(ISS + 2).data(b"still flowing"));
        let mut buf = [0u8; 32];
        assert_eq!(t.tcb.recv(&mut buf), Ok(13));
        t.at(100);
        t.expect(F::ACK, ISS + 2, PEER_ISS + 14);
        // FIN-WAIT-2 does not time out after a shutdown (the application still reads).
        t.at(200_000);
        assert_eq!(t.tcb.state(), State::FinWait2);
        t.input(seg(F::FIN | F::ACK).seq(PEER_ISS + 14).ack(ISS + 2));
        assert_eq!(t.tcb.state(), State::TimeWait);
        assert_eq!(t.tcb.recv(&mut buf), Ok(0));
    }

    /// Half-close, the peer's side: after its FIN we keep writing (CLOSE-WAIT).
    #[test]
    fn half_close_peer_stops_writing_we_keep_writing() {
        let mut t = T::established(cfg());
        t.input(seg(F::FIN | F::ACK));
        t.expect(F::ACK, ISS + 1, PEER_ISS + 2);
        assert_eq!(t.tcb.send(b"reply"), Ok(5));
        let o = t.expect(F::ACK | F::PSH, ISS + 1, PEER_ISS + 2);
        assert_eq!(o.payload, b"reply");
        t.input(seg(F::ACK).seq(PEER_ISS + 2).ack(ISS + 6));
        assert_eq!(t.tcb.state(), State::CloseWait);
    }

    /// RFC 9293 §3.10.7.4: in TIME-WAIT a retransmitted FIN is ACKed again and restarts the
    /// 2·MSL timer.
    #[test]
    fn time_wait_reacks_fin_and_restarts_timer() {
        let mut t = T::established(cfg());
        t.tcb.close().unwrap();
        t.output().unwrap();
        t.input(seg(F::FIN | F::ACK).ack(ISS + 2));
        t.output().unwrap();
        t.at(30_000);
        t.input(seg(F::FIN | F::ACK).ack(ISS + 2));
        t.expect(F::ACK, ISS + 2, PEER_ISS + 2);
        t.at(60_000);
        assert_eq!(t.tcb.state(), State::TimeWait, "restarted at 30 s");
        t.at(90_000);
        assert_eq!(t.tcb.state(), State::Closed);
    }

    /// TIME-WAIT keeps no buffers: with nothing left to read their storage can go (the stack
    /// pools it), and the TCB still does its job (re-ACKs a retransmitted FIN) without them.
    /// Unread data keeps them.
    #[test]
    fn time_wait_gives_up_its_buffers_unless_data_is_unread() {
        let mut t = T::established(cfg());
        assert!(t.tcb.release_buffers().is_none(), "not in TIME-WAIT");
        t.tcb.close().unwrap();
        t.output().unwrap();
        t.input(seg(F::FIN | F::ACK).ack(ISS + 2));
        t.output().unwrap();
        let b = t.tcb.release_buffers().expect("idle TIME-WAIT");
        assert_eq!((b.send.len(), b.recv.len()), (65535, 65535));
        assert!(t.tcb.release_buffers().is_none(), "once");
        t.input(seg(F::FIN | F::ACK).ack(ISS + 2));
        t.expect(F::ACK, ISS + 2, PEER_ISS + 2);
        t.at(60_000);
        assert_eq!(t.tcb.state(), State::Closed);

        // Data received and not read before the connection reached TIME-WAIT.
        let mut t = T::established(cfg());
        t.input(seg(F::ACK | F::PSH).data(b"unread"));
        t.tcb.shutdown().unwrap();
        t.outputs();
        t.input(seg(F::FIN | F::ACK).seq(PEER_ISS + 7).ack(ISS + 2));
        t.outputs();
        assert_eq!(t.tcb.state(), State::TimeWait);
        assert!(t.tcb.release_buffers().is_none(), "six bytes still to read");
        let mut out = [0u8; 16];
        assert_eq!(t.tcb.recv(&mut out).unwrap(), 6);
        assert!(t.tcb.release_buffers().is_some());
    }

    /// RFC 9293 §3.10.7.4: other segments in TIME-WAIT are not taken (old data is ACKed and
    /// dropped).
    #[test]
    fn time_wait_drops_old_data() {
        let mut t = T::established(cfg());
        t.tcb.close().unwrap();
        t.output().unwrap();
        t.input(seg(F::FIN | F::ACK).ack(ISS + 2));
        t.output().unwrap();
        t.input(seg(F::ACK).seq(PEER_ISS + 1).ack(ISS + 2).data(b"old"));
        t.expect(F::ACK, ISS + 2, PEER_ISS + 2);
        assert_eq!(t.tcb.recv_available(), 0);
    }

    /// Linux `tcp_fin_timeout`: after close() (not shutdown), FIN-WAIT-2 ends after 60 s.
    #[test]
    fn fin_wait_2_times_out_after_close() {
        let mut t = T::established(cfg());
        t.tcb.close().unwrap();
        t.output().unwrap();
        t.input(seg(F::ACK).ack(ISS + 2));
        assert_eq!(t.tcb.state(), State::FinWait2);
        t.at(60_000);
        assert_eq!(t.tcb.state(), State::Closed);
    }

    /// RFC 9293 §3.10.5: abort sends <SEQ=SND.NXT><CTL=RST>.
    #[test]
    fn abort_sends_reset() {
        let mut t = T::established(cfg());
        t.tcb.abort();
        t.expect(F::RST | F::ACK, ISS + 1, PEER_ISS + 1);
        assert_eq!(t.events(), vec![Event::Closed(CloseReason::Aborted)]);
    }

    /// RFC 2525 §2.17: closing with unread data resets instead of a FIN.
    #[test]
    fn close_with_unread_data_resets() {
        let mut t = T::established(cfg());
        t.input(seg(F::ACK).data(b"unread"));
        t.tcb.close().unwrap();
        t.expect(F::RST | F::ACK, ISS + 1, PEER_ISS + 7);
    }

    /// Data that arrives after close() (not shutdown) is answered with a reset: nobody will
    /// read it (RFC 2525 §2.17, as Linux does).
    #[test]
    fn data_after_close_is_reset() {
        let mut t = T::established(cfg());
        t.tcb.close().unwrap();
        t.expect(F::FIN | F::ACK, ISS + 1, PEER_ISS + 1);
        t.input(seg(F::ACK | F::PSH).ack(ISS + 2).data(b"too late"));
        // The reset the segment calls for (§3.10.7.1): <SEQ=SEG.ACK><CTL=RST>, as Linux sends.
        t.expect(F::RST, ISS + 2, 0);
        assert_eq!(t.tcb.state(), State::Closed);
    }

    /// The FIN is retransmitted like data when its ACK is lost.
    #[test]
    fn fin_is_retransmitted() {
        let mut t = T::established(cfg());
        t.tcb.close().unwrap();
        t.expect(F::FIN | F::ACK, ISS + 1, PEER_ISS + 1);
        let rto = t.tcb.rto().as_millis() as u64;
        t.at(rto);
        t.expect(F::FIN | F::ACK, ISS + 1, PEER_ISS + 1);
    }

    /// Data then FIN out of order: the FIN is held until the gap fills.
    #[test]
    fn fin_ahead_of_a_gap_waits_for_the_data() {
        let mut t = T::established(cfg());
        t.input(seg(F::FIN | F::ACK).seq(PEER_ISS + 4).data(b"def"));
        t.expect(F::ACK, ISS + 1, PEER_ISS + 1);
        assert_eq!(t.tcb.state(), State::Established);
        t.input(seg(F::ACK).data(b"abc"));
        t.expect(F::ACK, ISS + 1, PEER_ISS + 8);
        assert_eq!(t.tcb.state(), State::CloseWait);
        let mut buf = [0u8; 8];
        assert_eq!(t.tcb.recv(&mut buf), Ok(6));
        assert_eq!(&buf[..6], b"abcdef");
        assert_eq!(t.tcb.recv(&mut buf), Ok(0));
    }
}

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
