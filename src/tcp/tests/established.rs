//! Packet conversations in ESTABLISHED: data, ACKs, windows, timers, options.

use super::*;

/// RFC 1122 §4.2.3.2, RFC 5681 §4.2: one segment is ACKed after the delayed-ACK time
/// (40 ms), two full-sized ones at once.
#[test]
fn delayed_ack_then_every_second_segment() {
    let mut t = T::established(TcpConfig { quick_ack: false, ..cfg() });
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

/// Linux's quick-ACK mode: the first data segments are ACKed one by one (up to 16), then
/// delayed; a reply within the delayed-ACK time makes the connection interactive, so the next
/// request's ACK waits to ride on a reply.
#[test]
fn quick_acks_at_the_start_then_delayed_and_none_while_interactive() {
    let mut t = T::established(cfg());
    let mut seq = PEER_ISS + 1;
    for _ in 0..16 {
        t.input(seg(F::ACK | F::PSH).seq(seq).data(&[1; 10]));
        seq += 10u32;
        t.expect(F::ACK, ISS + 1, seq);
    }
    t.input(seg(F::ACK | F::PSH).seq(seq).data(&[1; 10]));
    seq += 10u32;
    t.none();
    t.at(40);
    t.expect(F::ACK, ISS + 1, seq);
    // A request answered at once: the reply carries the ACK and the exchange is interactive.
    t.at(50);
    t.input(seg(F::ACK | F::PSH).seq(seq).data(&[2; 10]));
    seq += 10u32;
    assert_eq!(t.tcb.send(b"reply"), Ok(5));
    t.expect(F::ACK | F::PSH, ISS + 1, seq);
    t.at(60);
    t.input(seg(F::ACK).seq(seq).ack(ISS + 6));
    t.none();
    // An idle time longer than the RTO would restart quick ACKs, but not while interactive.
    t.at(5_060);
    t.input(seg(F::ACK | F::PSH).seq(seq).ack(ISS + 6).data(&[3; 10]));
    seq += 10u32;
    t.none();
    t.at(5_100);
    t.expect(F::ACK, ISS + 6, seq);
    // That delayed ACK ended interactive mode: quick ACKs again.
    t.input(seg(F::ACK | F::PSH).seq(seq).ack(ISS + 6).data(&[4; 10]));
    seq += 10u32;
    t.expect(F::ACK, ISS + 6, seq);
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

/// RFC 2018 §3-4: with five holes' worth of data beyond RCV.NXT, an ACK reports four blocks
/// (the newest first) without timestamps and three beside them; the option always fits.
#[test]
fn sack_blocks_fill_the_option_space_four_without_timestamps_three_with() {
    for ts in [false, true] {
        let mut t = T::active(TcpConfig { sack: true, timestamps: ts, ..cfg() });
        t.output().unwrap();
        let tsopt = ts.then_some(Timestamp { tsval: 1, tsecr: 0 });
        t.input(seg(F::SYN | F::ACK).seq(PEER_ISS).opts(TcpOptions {
            mss: Some(1460),
            sack_permitted: true,
            timestamp: tsopt,
            ..Default::default()
        }));
        t.output().unwrap();
        let mut last = None;
        for k in 0..5u32 {
            // Ten bytes every twenty: five islands, each a hole before it.
            let mut s = seg(F::ACK).seq(PEER_ISS + 11 + 20 * k).data(b"0123456789");
            if let Some(o) = tsopt {
                s = s.opts(TcpOptions { timestamp: Some(Timestamp { tsval: 2 + k, ..o }), ..Default::default() });
            }
            t.input(s);
            last = Some(t.expect(F::ACK, ISS + 1, PEER_ISS + 1));
        }
        let blocks = last.unwrap().options.sack;
        let want = if ts { 3 } else { 4 };
        assert_eq!(blocks.len(), want, "timestamps {ts}");
        assert_eq!(blocks.as_slice()[0], (PEER_ISS + 91, PEER_ISS + 101), "the newest block first");
    }
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

/// RFC 5961 §4.2: "irrespective of the sequence number" — a SYN outside the window gets a
/// challenge ACK too (counted as one, and limited as one), not a plain duplicate ACK.
#[test]
fn syn_out_of_the_window_gets_a_challenge_ack() {
    let mut t = T::established(cfg());
    t.input(seg(F::SYN).seq(PEER_ISS + 3_000_000).ack(0));
    t.expect(F::ACK, ISS + 1, PEER_ISS + 1);
    assert_eq!(t.tcb.stats().challenge_acks, 1);
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
    // With PSH, as Linux's tcp_write_wakeup sends it.
    let o = t.expect(F::ACK | F::PSH, ISS + 1, PEER_ISS + 1);
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

/// RFC 1122 §4.2.3.9: a hard ICMP error about our SYN ends the open ("SHOULD abort"); soft
/// ones do not ("MUST NOT"), nor do hard ones once synchronized (RFC 5461 §4), nor any with
/// `icmp_aborts_open` off.
#[test]
fn hard_icmp_errors_end_an_open_in_syn_sent() {
    for hard in [
        IcmpError::PortUnreachable,
        IcmpError::ProtocolUnreachable,
        IcmpError::Prohibited { code: 13 },
        IcmpError::TimeExceeded,
    ] {
        let mut t = T::active(cfg());
        t.outputs();
        t.tcb.on_icmp_error(IcmpError::Unreachable);
        t.tcb.on_icmp_error(IcmpError::FragmentationNeeded { mtu: 1000 });
        assert_eq!(t.tcb.state(), State::SynSent, "soft errors leave the open alone");
        t.tcb.on_icmp_error(hard);
        assert_eq!(t.tcb.state(), State::Closed, "{hard:?}");
        assert_eq!(t.events(), vec![Event::Closed(CloseReason::Unreachable(hard))]);
        assert!(t.outputs().is_empty(), "nothing is sent after it");
    }
    let mut t = T::active(TcpConfig { icmp_aborts_open: false, ..cfg() });
    t.tcb.on_icmp_error(IcmpError::PortUnreachable);
    assert_eq!(t.tcb.state(), State::SynSent);
    let mut t = T::established(cfg());
    t.tcb.on_icmp_error(IcmpError::PortUnreachable);
    assert_eq!(t.tcb.state(), State::Established, "hard errors are soft once synchronized");
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

/// RFC 9293 §3.8.6.2.2 (SHLD-14): the right edge of the window never moves left. With a scale
/// the field is rounded to the unit; segments whose length is not a multiple of it would move
/// the edge left by up to one unit each time if every ACK rounded down, and the losses add up
/// (whole-stack seed 3091870 deadlocked that way). Rounded up, as Linux (tcp_select_window).
#[test]
fn scaled_window_edge_never_retracts() {
    let mut t = T::active(TcpConfig { window_scaling: true, recv_buffer: 200_000, ..cfg() });
    let syn = t.output().unwrap();
    let shift = syn.options.window_scale.expect("window scale offered");
    assert!(shift > 0, "the test needs a scale, got {shift}");
    t.input(seg(F::SYN | F::ACK).seq(PEER_ISS).opts(TcpOptions {
        mss: Some(1460),
        window_scale: Some(0),
        ..Default::default()
    }));
    let a = t.output().unwrap();
    let mut edge = a.ack.wrapping_add((a.window as u32) << shift);
    let mut seq = PEER_ISS + 1;
    // The application reads nothing: the window closes, 637 bytes (odd) at a time.
    for i in 0..300 {
        t.input(seg(F::ACK).seq(seq).data(&[7u8; 637]));
        seq += 637;
        // Every segment answered (the delayed-ACK timer run each time).
        t.at(i as u64 * 300);
        for o in t.outputs() {
            let e = o.ack.wrapping_add((o.window as u32) << shift);
            assert!((e.wrapping_sub(edge) as i32) >= 0, "segment {i}: right edge {e} left of {edge}");
            edge = e;
        }
        if t.tcb.recv_available() + 637 > 200_000 {
            break;
        }
    }
}

/// Send-buffer autotuning (Linux's tcp_sndbuf_expand): a sender held back by its buffer
/// while cwnd has room gets a buffer of twice cwnd, up to `send_buffer_max`.
#[test]
fn send_buffer_grows_when_it_limits_the_sender() {
    let mut t = T::established(TcpConfig { send_buffer: 8192, send_buffer_max: 1 << 20, ..cfg() });
    t.tcb.set_nagle(false);
    let data = [5u8; 100_000];
    assert_eq!(t.tcb.send(&data).unwrap(), 8192);
    assert_eq!(t.tcb.send(&data), Err(TcpError::WouldBlock));
    let sent: usize = t.outputs().iter().map(|o| o.payload.len()).sum();
    assert_eq!(sent, 8192);
    // Everything acknowledged: the initial window (10 · 1460) had room for more, and slow
    // start grew it by what was acknowledged.
    t.input(seg(F::ACK).ack(ISS + 1 + 8192));
    assert_eq!(t.tcb.cwnd(), 10 * 1460 + 8192);
    assert_eq!(t.tcb.send_buffer_size(), 2 * (10 * 1460 + 8192));
    assert_eq!(t.tcb.stats().send_buffer_grown, 1);
    assert!(t.events().contains(&Event::Writable));
    assert_eq!(t.tcb.send(&data).unwrap(), 2 * (10 * 1460 + 8192));
}

/// Not when cwnd is the limit (the data waiting would fill it), nor past the bound, nor when
/// the bound is at or below the initial size (a fixed buffer, as SO_SNDBUF).
#[test]
fn send_buffer_does_not_grow_for_a_full_cwnd_or_past_its_bound() {
    let data = [5u8; 200_000];
    // cwnd-limited: 64 KiB queued, 10 segments in flight, one acknowledged.
    let mut t = T::established(TcpConfig { send_buffer: 65536, send_buffer_max: 1 << 20, ..cfg() });
    t.tcb.set_nagle(false);
    assert_eq!(t.tcb.send(&data).unwrap(), 65536);
    assert_eq!(t.tcb.send(&data), Err(TcpError::WouldBlock));
    assert_eq!(t.outputs().len(), 10);
    t.input(seg(F::ACK).ack(ISS + 1 + 1460));
    assert_eq!(t.tcb.send_buffer_size(), 65536);
    // Fixed: the bound is the initial size.
    let mut t = T::established(TcpConfig { send_buffer: 8192, send_buffer_max: 8192, ..cfg() });
    t.tcb.set_nagle(false);
    assert_eq!(t.tcb.send(&data).unwrap(), 8192);
    assert_eq!(t.tcb.send(&data), Err(TcpError::WouldBlock));
    assert_eq!(t.outputs().iter().map(|o| o.payload.len()).sum::<usize>(), 8192);
    t.input(seg(F::ACK).ack(ISS + 1 + 8192));
    assert_eq!(t.tcb.send_buffer_size(), 8192);
    // Bounded: 20,000 bytes at most, whatever cwnd asks.
    let mut t = T::established(TcpConfig { send_buffer: 8192, send_buffer_max: 20_000, ..cfg() });
    t.tcb.set_nagle(false);
    assert_eq!(t.tcb.send(&data).unwrap(), 8192);
    assert_eq!(t.tcb.send(&data), Err(TcpError::WouldBlock));
    assert_eq!(t.outputs().iter().map(|o| o.payload.len()).sum::<usize>(), 8192);
    t.input(seg(F::ACK).ack(ISS + 1 + 8192));
    assert_eq!(t.tcb.send_buffer_size(), 20_000);
    assert_eq!(t.tcb.send(&data).unwrap(), 20_000);
}
