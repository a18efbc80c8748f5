//! Packet conversations for loss recovery and congestion control: SACK-based recovery
//! (RFC 6675) with RACK-TLP (RFC 8985), PRR (RFC 6937), limited transmit (RFC 3042), DSACK
//! undo (RFC 2883), F-RTO (RFC 5682), CUBIC (RFC 9438), ECN (RFC 3168), and the timeout
//! behind a zero window.
//!
//! Times are in milliseconds; the handshake's RTT is the path's (`sack_conn(rtt)`), so RACK
//! and the RTO start from a measured RTT as on a real connection.

use super::*;
use crate::tcp::cc::Algorithm;
use crate::tcp::config::EcnMode;

const MSS: u32 = 1460;

/// Sequence number of our segment `k` (each one MSS).
fn s(k: u32) -> u32 {
    ISS + 1 + k * MSS
}

fn sack_opts(blocks: &[(u32, u32)]) -> TcpOptions {
    let mut sack = SackBlocks::default();
    for &(l, r) in blocks {
        sack.push(s(l), s(r));
    }
    TcpOptions { sack, ..Default::default() }
}

/// ACK of everything before segment `una`, SACKing segments `[l, r)` for each block.
fn sack_ack(una: u32, blocks: &[(u32, u32)]) -> In {
    seg(F::ACK).ack(s(una)).opts(sack_opts(blocks))
}

/// Established with SACK, the peer's SYN-ACK arriving `rtt` ms after our SYN; Nagle off.
fn sack_conn_with(rtt: u64, cfg: TcpConfig) -> T {
    let mut t = T::active(TcpConfig { sack: true, nagle: false, ..cfg });
    let syn = t.output().expect("SYN");
    assert!(syn.options.sack_permitted);
    t.at(rtt);
    t.input(seg(F::SYN | F::ACK).seq(PEER_ISS).opts(TcpOptions {
        mss: Some(1460),
        sack_permitted: true,
        ..Default::default()
    }));
    t.expect(F::ACK, ISS + 1, PEER_ISS + 1);
    assert_eq!(t.tcb.poll_event(), Some(Event::Connected));
    assert!(t.tcb.sack_enabled());
    t
}

fn sack_conn(rtt: u64) -> T {
    sack_conn_with(rtt, TcpConfig { send_buffer: 1 << 20, ..cfg() })
}

/// Send `n` full segments now; returns them.
fn send_segments(t: &mut T, n: u32) -> Vec<Out> {
    t.tcb.send(&vec![9u8; (n * MSS) as usize]).unwrap();
    t.outputs()
}

/// The sequence numbers of what we send now.
fn seqs(t: &mut T) -> Vec<u32> {
    t.outputs().iter().map(|o| o.seq).collect()
}

/// RFC 6675 §5 with RFC 8985: three holes in one window, all found and resent within the
/// round trip the SACKs arrive in; no timeout.
#[test]
fn several_holes_in_one_window_are_repaired_in_one_round_trip() {
    let mut t = sack_conn(10);
    assert_eq!(send_segments(&mut t, 10).len(), 10);
    // Segments 1, 4 and 7 are lost. The peer's ACKs arrive one per segment, 10 ms later.
    t.at(20);
    t.input(seg(F::ACK).ack(s(1)));
    let mut resent = Vec::new();
    for (k, blocks) in [
        (2, vec![(2, 3)]),
        (3, vec![(2, 4)]),
        (5, vec![(5, 6), (2, 4)]),
        (6, vec![(5, 7), (2, 4)]),
        (8, vec![(8, 9), (5, 7), (2, 4)]),
        (9, vec![(8, 10), (5, 7), (2, 4)]),
    ] {
        let _ = k;
        t.input(sack_ack(1, &blocks));
        resent.extend(seqs(&mut t).into_iter().filter(|&q| q < s(10)));
    }
    assert_eq!(resent, vec![s(1), s(4), s(7)], "each hole once, in order");
    assert!(t.tcb.in_recovery());
    assert_eq!(t.tcb.stats().recoveries, 1);
    // The retransmissions arrive: the full ACK ends recovery.
    t.at(30);
    t.input(seg(F::ACK).ack(s(10)));
    assert!(!t.tcb.in_recovery());
    assert_eq!(t.tcb.stats().rto_expirations, 0);
    assert_eq!(t.tcb.stats().retransmits, 3);
}

/// RFC 8985 §6.2: a retransmission that is lost too is found by RACK — a segment sent after
/// it was delivered — and sent again, instead of waiting for the RTO.
#[test]
fn a_lost_retransmission_is_found_and_resent() {
    let mut t = sack_conn_with(10, TcpConfig { initial_window: 6, send_buffer: 1 << 20, ..cfg() });
    // Six segments go (the initial window); six more wait.
    assert_eq!(send_segments(&mut t, 12).len(), 6);
    t.at(20);
    // Segment 0 lost; 1..=3 SACKed: RACK (DupThresh SACKed, no reordering seen) marks 0 lost.
    for r in 2..=4 {
        t.input(sack_ack(0, &[(1, r)]));
    }
    let out = seqs(&mut t);
    assert_eq!(out[0], s(0), "the first retransmission");
    // The rest of the window's ACKs bring new data out (sent after the retransmission).
    t.at(21);
    t.input(sack_ack(0, &[(1, 5)]));
    t.input(sack_ack(0, &[(1, 6)]));
    let new: Vec<u32> = seqs(&mut t);
    assert!(!new.is_empty() && new.iter().all(|&q| q >= s(6)), "{new:?}");
    // The retransmission of 0 is lost; the new segments sent after it are SACKed 10 ms later.
    t.at(31);
    t.input(sack_ack(0, &[(1, 7)]));
    let again = seqs(&mut t);
    assert_eq!(again.first(), Some(&s(0)), "lost retransmission resent: {again:?}");
    assert_eq!(t.tcb.stats().lost_retransmits, 1);
    assert_eq!(t.tcb.stats().rto_expirations, 0);
}

/// RFC 8985 §6.2 step 4: reordering inside the reordering window (min_RTT/4) is waited out:
/// no retransmission, and the late segment teaches RACK that the path reorders.
#[test]
fn reordering_inside_the_rack_window_causes_no_retransmission() {
    let mut t = sack_conn(20);
    send_segments(&mut t, 4);
    // Segment 0 is delayed by 3 ms; 1 and 2 arrive first. RTT 20 ms, reo_wnd 5 ms.
    t.at(40);
    t.input(sack_ack(0, &[(1, 2)]));
    t.input(sack_ack(0, &[(1, 3)]));
    t.none();
    assert!(t.tcb.poll_timeout().unwrap() <= Instant::from_millis(45), "the reordering timer is armed");
    t.at(43);
    t.input(seg(F::ACK).ack(s(3)));
    t.at(44);
    t.input(seg(F::ACK).ack(s(4)));
    t.at(100);
    t.none();
    assert_eq!(t.tcb.stats().retransmits, 0);
    assert_eq!(t.tcb.stats().recoveries, 0);
}

/// RFC 8985 §6.2 step 5: when the hole is real, the reordering timer marks it lost once the
/// window has passed — at RTT + min_RTT/4, not at the RTO.
#[test]
fn the_reordering_timer_marks_a_real_hole_lost_after_the_window() {
    let mut t = sack_conn(20);
    send_segments(&mut t, 4);
    t.at(40);
    t.input(sack_ack(0, &[(1, 2)]));
    t.input(sack_ack(0, &[(1, 3)]));
    t.none();
    t.at(44);
    t.none();
    t.at(45);
    assert_eq!(t.output().map(|o| o.seq), Some(s(0)));
    assert_eq!(t.tcb.stats().reorder_timeouts, 1);
    assert!(t.tcb.in_recovery());
}

/// RFC 8985 §7: the last two segments of a burst are lost and no ACK will come; the tail loss
/// probe (2·SRTT + 2 ms, more than one segment in flight) resends the last one, its SACK
/// lets RACK find the other, and both are repaired in about two round trips, not an RTO.
#[test]
fn tail_loss_probe_repairs_a_lost_tail() {
    let mut t = sack_conn(10);
    send_segments(&mut t, 4);
    t.at(20);
    t.input(seg(F::ACK).ack(s(1)));
    t.input(seg(F::ACK).ack(s(2)));
    t.none();
    // SRTT ≈ 10 ms: the probe is due at 20 + 22 ms, long before the 200 ms RTO.
    let due = t.tcb.poll_timeout().unwrap();
    assert!(due <= Instant::from_millis(43), "{due:?}");
    t.at(42);
    let probe = t.expect(F::ACK | F::PSH, s(3), PEER_ISS + 1);
    assert_eq!(probe.payload.len(), MSS as usize);
    assert_eq!(t.tcb.stats().tlp_probes, 1);
    // The probe arrives: SACK of 3; RACK marks 2 lost at once (sent before 3, long ago).
    t.at(52);
    t.input(sack_ack(2, &[(3, 4)]));
    assert_eq!(seqs(&mut t), vec![s(2)]);
    t.at(62);
    t.input(seg(F::ACK).ack(s(4)));
    assert_eq!(t.tcb.stats().rto_expirations, 0);
    assert_eq!(t.tcb.send_queued(), 0);
}

/// RFC 8985 §7.3: with new data waiting (and the window open) the probe sends it rather
/// than resending old data.
#[test]
fn tail_loss_probe_prefers_new_data() {
    let mut t = sack_conn_with(10, TcpConfig { initial_window: 2, ..cfg() });
    send_segments(&mut t, 3);
    // cwnd 2: segments 0 and 1 are out, 2 waits. Both are lost.
    t.at(32);
    let probe = t.output().expect("probe");
    assert_eq!(probe.seq, s(2), "new data");
    assert_eq!(t.tcb.stats().retransmits, 0);
}

/// RFC 6937: during recovery PRR lets about ssthresh/RecoverFS of what is delivered go out
/// (Reno: every other segment), at most a segment per ACK, and cwnd ends at ssthresh.
#[test]
fn prr_spreads_sending_over_the_recovery() {
    let mut t = sack_conn_with(10, TcpConfig { congestion: Algorithm::Reno, send_buffer: 1 << 20, ..cfg() });
    // Grow cwnd to 20 segments: one window of 10, all acknowledged.
    send_segments(&mut t, 10);
    t.at(20);
    t.input(seg(F::ACK).ack(s(10)));
    assert_eq!(t.tcb.cwnd(), 20 * MSS as usize);
    // 20 more in flight (plus data queued behind them), segment 10 lost.
    let sent = send_segments(&mut t, 60);
    assert_eq!(sent.len(), 20);
    t.at(30);
    let mut per_ack = Vec::new();
    for r in 12..=30 {
        t.input(sack_ack(10, &[(11, r)]));
        per_ack.push(t.outputs().len());
    }
    assert!(t.tcb.in_recovery());
    // The first two SACKs each let one new segment out (RFC 6675's pipe: limited transmit);
    // the third began recovery, and the retransmission went out on it.
    assert_eq!(per_ack[..3], [1, 1, 1]);
    assert!(per_ack.iter().all(|&n| n <= 1), "{per_ack:?}");
    // ssthresh = FlightSize/2 = 11 segments (22 in flight with the two limited transmit
    // sent) of RecoverFS 22: about half of the 17 segments delivered since recovery began
    // are matched by one sent.
    let total: usize = per_ack[2..].iter().sum();
    assert!((8..=10).contains(&total), "{total} sent for 17 delivered: {per_ack:?}");
    assert_eq!(t.tcb.ssthresh(), 11 * MSS as usize);
    // The retransmission is acknowledged, up to the recovery point (what was in flight when
    // recovery began): recovery ends with cwnd = ssthresh.
    t.at(40);
    t.input(seg(F::ACK).ack(s(32)));
    assert!(!t.tcb.in_recovery());
    assert_eq!(t.tcb.cwnd(), 11 * MSS as usize);
}

/// A stack processes a burst of frames before it transmits. Three SACKs in one burst, the
/// third starting recovery, must give the sender what the same SACKs one at a time give it
/// (each of the first two lets a new segment out; the third, the retransmission): here the
/// retransmission and then the two new segments, which, sent after it, will show RACK
/// whether it arrived.
#[test]
fn acks_of_one_burst_give_the_sending_chances_of_acks_one_by_one() {
    let cfg = TcpConfig { initial_window: 4, send_buffer: 1 << 20, ..cfg() };
    // One at a time.
    let mut t = sack_conn_with(10, cfg.clone());
    assert_eq!(send_segments(&mut t, 20).len(), 4);
    t.at(20);
    let mut one_by_one = Vec::new();
    for r in 2..=4 {
        t.input(sack_ack(0, &[(1, r)]));
        one_by_one.extend(seqs(&mut t));
    }
    assert!(t.tcb.in_recovery());
    assert_eq!(one_by_one, vec![s(4), s(5), s(0)], "limited transmit twice, then the retransmission");
    // In one burst.
    let mut t = sack_conn_with(10, cfg);
    assert_eq!(send_segments(&mut t, 20).len(), 4);
    t.at(20);
    for r in 2..=4 {
        t.input(sack_ack(0, &[(1, r)]));
    }
    assert!(t.tcb.in_recovery());
    assert_eq!(seqs(&mut t), vec![s(0), s(4), s(5)], "the retransmission first, then as many new");
}

/// RFC 3042: the first two duplicate ACKs each let one new segment out beyond cwnd (here
/// without SACK: each duplicate counts as a segment that left the network).
#[test]
fn limited_transmit_on_the_first_two_duplicates() {
    let mut t = T::established(TcpConfig { nagle: false, ..cfg() });
    t.tcb.send(&vec![1u8; 14 * MSS as usize]).unwrap();
    assert_eq!(t.outputs().len(), 10);
    // A window update is not a duplicate (RFC 5681 §2): nothing goes.
    t.input(seg(F::ACK).ack(s(0)).win(65534));
    t.none();
    // The first and the second duplicate each send one new segment.
    t.input(seg(F::ACK).ack(s(0)).win(65534));
    assert_eq!(seqs(&mut t), vec![s(10)]);
    t.input(seg(F::ACK).ack(s(0)).win(65534));
    assert_eq!(seqs(&mut t), vec![s(11)]);
    // The third: fast retransmit.
    t.input(seg(F::ACK).ack(s(0)).win(65534));
    assert_eq!(seqs(&mut t).first(), Some(&s(0)));
    assert!(t.tcb.in_recovery());
}

/// RFC 2883 §5, and Linux's undo: a recovery started by reordering beyond the window is
/// shown spurious by the DSACK for the retransmission; cwnd and ssthresh come back, and
/// RACK's reordering window grows (RFC 8985 §6.2 step 4).
#[test]
fn dsack_undoes_a_spurious_recovery() {
    let mut t = sack_conn(10);
    send_segments(&mut t, 8);
    let cwnd = t.tcb.cwnd();
    t.at(20);
    // Segment 0 is held back by the network; three SACKs make RACK call it lost.
    for r in 2..=4 {
        t.input(sack_ack(0, &[(1, r)]));
    }
    assert!(t.tcb.in_recovery());
    assert_eq!(seqs(&mut t).first(), Some(&s(0)));
    assert!(t.tcb.ssthresh() < cwnd);
    // The original arrives after all; then the retransmission, which the peer reports as a
    // duplicate (DSACK block below the cumulative ACK).
    t.at(25);
    t.input(seg(F::ACK).ack(s(8)));
    t.at(30);
    t.input(seg(F::ACK).ack(s(8)).opts(sack_opts(&[(0, 1)])));
    assert_eq!(t.tcb.stats().dsacks_in, 1);
    assert_eq!(t.tcb.stats().undos, 1);
    assert!(t.tcb.cwnd() >= cwnd, "cwnd {} restored to at least {cwnd}", t.tcb.cwnd());
    assert_eq!(t.tcb.ssthresh(), usize::MAX, "back in slow start");
}

/// RFC 5682 (F-RTO, SACK-enhanced as Linux implements it): ACKs delayed past the RTO. After
/// the timeout resends segment 0, the delayed ACK acknowledges segments never resent: the
/// timeout was spurious, so cwnd is restored and nothing more is resent.
#[test]
fn frto_finds_a_spurious_timeout() {
    let mut t = sack_conn(10);
    send_segments(&mut t, 4);
    let cwnd = t.tcb.cwnd();
    // No ACK for 210 ms: the RTO (200 ms floor) fires and resends the first segment.
    t.at(10 + 200);
    assert_eq!(seqs(&mut t), vec![s(0)]);
    assert!(t.tcb.in_rto_recovery());
    // The delayed ACKs arrive, for all four originals.
    t.at(215);
    t.input(seg(F::ACK).ack(s(4)));
    assert_eq!(t.tcb.stats().spurious_rtos, 1);
    assert!(!t.tcb.in_rto_recovery());
    assert!(t.tcb.cwnd() >= cwnd);
    assert_eq!(t.tcb.stats().retransmits, 1);
}

/// F-RTO step 3a: when the timeout was real, the second ACK after it is a duplicate (SACK)
/// and recovery goes on conventionally: what was lost is resent.
#[test]
fn frto_lets_a_real_timeout_recover_conventionally() {
    let mut t = sack_conn(10);
    send_segments(&mut t, 4);
    t.tcb.send(&vec![9u8; 4 * MSS as usize]).unwrap(); // new data waiting
    t.at(210);
    assert_eq!(seqs(&mut t), vec![s(0)]);
    // Everything was lost; the retransmission arrives: the ACK covers it only.
    t.at(220);
    t.input(seg(F::ACK).ack(s(1)));
    // Step 2b: new data, not retransmissions.
    let out = seqs(&mut t);
    assert!(out.iter().all(|&q| q >= s(4)), "{out:?}");
    // Its SACK: the old segments really were lost.
    t.at(230);
    t.input(sack_ack(1, &[(4, 5)]));
    let out = seqs(&mut t);
    assert_eq!(out.first(), Some(&s(1)), "{out:?}");
    assert_eq!(t.tcb.stats().spurious_rtos, 0);
}

/// RFC 6675 §4 NextSeg rule 4: once in a recovery, when nothing else may be sent, the last
/// segment the peer said nothing about is resent (a lost tail behind a hole).
#[test]
fn rescue_retransmission_resends_the_unknown_tail() {
    let mut t = sack_conn(10);
    send_segments(&mut t, 8);
    t.at(20);
    // 0 lost; 1..=5 SACKed; 6 and 7 lost too (nothing after them to show it).
    for r in 2..=6 {
        t.input(sack_ack(0, &[(1, r)]));
    }
    let out = seqs(&mut t);
    assert_eq!(out, vec![s(0), s(7)], "the hole, then the rescue of the last segment");
    assert_eq!(t.tcb.stats().rescue_retransmits, 1);
}

/// RFC 9438 by default: a recovery reduces cwnd to 70 % (Reno: 50 %).
#[test]
fn cubic_is_the_default_and_reduces_to_seventy_percent() {
    for (alg, pct) in [(Algorithm::Cubic, 70), (Algorithm::Reno, 50)] {
        let mut t = sack_conn_with(10, TcpConfig { congestion: alg, send_buffer: 1 << 20, ..cfg() });
        assert_eq!(t.tcb.congestion().algorithm(), if pct == 70 { Algorithm::Cubic } else { Algorithm::Reno });
        send_segments(&mut t, 10);
        t.at(20);
        for r in 2..=4 {
            t.input(sack_ack(0, &[(1, r)]));
        }
        assert_eq!(t.tcb.ssthresh(), 10 * MSS as usize * pct / 100, "{alg:?}");
    }
}

fn bbr_conn(rtt: u64) -> T {
    sack_conn_with(rtt, TcpConfig { congestion: Algorithm::Bbr, send_buffer: 1 << 20, ..cfg() })
}

/// Queue `n` segments and let pacing send them all (time moves with the pacing timer).
fn send_paced(t: &mut T, n: u32) -> Vec<Out> {
    t.tcb.send(&vec![9u8; (n * MSS) as usize]).unwrap();
    let mut out = t.outputs();
    while out.len() < n as usize {
        t.now = t.tcb.poll_timeout().expect("the pacing timer");
        t.run_timers();
        out.extend(t.outputs());
    }
    out
}

/// BBR paces (Linux's tcp_bbr with internal pacing): the initial window goes out at
/// 2.885 · IW / RTT of the handshake (here 10 ms: 4.2 MB/s, a segment per 350 µs) in bursts
/// of about a millisecond, woken by the pacing timer — not in one burst as CUBIC sends it.
#[test]
fn bbr_paces_the_initial_window_over_the_handshake_rtt() {
    let mut t = bbr_conn(10);
    t.tcb.send(&vec![9u8; 10 * MSS as usize]).unwrap();
    let start = t.now;
    let mut sent = vec![(0u64, t.outputs().len())];
    assert!((2..=4).contains(&sent[0].1), "first burst {sent:?}");
    while sent.iter().map(|&(_, n)| n).sum::<usize>() < 10 {
        let next = t.tcb.poll_timeout().expect("the pacing timer");
        assert!(next < start + Duration::from_millis(10), "woken by pacing, not a later timer");
        t.now = next;
        t.run_timers();
        let n = t.outputs().len();
        if n > 0 {
            sent.push(((t.now - start).as_micros() as u64, n));
        }
    }
    // Ten segments at ~350 µs each: the last leaves about 2.5 ms after the first, within
    // the first round trip.
    let (last, _) = *sent.last().unwrap();
    assert!((2_000..=3_500).contains(&last), "{sent:?}");
    assert!(sent.iter().all(|&(_, n)| n <= 4), "bursts of at most ~1 ms: {sent:?}");
    // CUBIC, the same way: all ten at once.
    let mut c = sack_conn(10);
    c.tcb.send(&vec![9u8; 10 * MSS as usize]).unwrap();
    assert_eq!(c.outputs().len(), 10);
}

/// A paced sender's bursts: no longer than Linux's (64 KiB, `tcp_tso_autosize`) when its
/// timers are fine, a timer granularity's worth when they are coarse. A BBR sender over a
/// 400 MB/s bottleneck with 30 µs of propagation delay, every segment acknowledged, but the
/// ACKs read in batches every 250 µs (as a loop that polls its device in bursts does): each
/// batch opens about 69 segments of cwnd at once. With 10 µs timers they leave in bursts of
/// at most 45 (64 KiB) at the pacing rate; with 1 ms timers (a millisecond is 276 segments
/// here) they all go at once, and queue at the bottleneck.
#[test]
fn paced_bursts_are_linuxs_64_kib_with_fine_timers_and_a_tick_with_coarse_ones() {
    let longest_burst = |granularity: Duration| {
        let rtt = Duration::from_micros(30);
        let batch = Duration::from_micros(250);
        let per_segment = Duration::from_nanos(1448 * 1_000_000_000 / 400_000_000);
        let mut t = T::active(TcpConfig {
            sack: true,
            nagle: false,
            window_scaling: true,
            congestion: Algorithm::Bbr,
            send_buffer: 8 << 20,
            timer_granularity: granularity,
            ..cfg()
        });
        t.output().expect("SYN");
        t.now += rtt;
        let opts = TcpOptions { mss: Some(1460), sack_permitted: true, window_scale: Some(9), ..Default::default() };
        t.input(seg(F::SYN | F::ACK).seq(PEER_ISS).opts(opts));
        t.expect(F::ACK, ISS + 1, PEER_ISS + 1);
        t.tcb.send(&vec![9u8; 8 << 20]).unwrap();
        let (mut link_free, mut acks) = (t.now, std::collections::VecDeque::new());
        let (start, mut next_batch, mut longest) = (t.now, t.now + batch, 0);
        while t.now < start + Duration::from_millis(10) {
            let now = t.now;
            let mut n = 0;
            for o in std::iter::from_fn(|| t.output()).take(10_000) {
                n += 1;
                link_free = link_free.max(now) + per_segment;
                acks.push_back((link_free + rtt, o.seq + o.payload.len() as u32));
            }
            if now > start + Duration::from_millis(3) {
                longest = longest.max(n);
            }
            t.now = t.tcb.poll_timeout().map_or(next_batch, |d| d.min(next_batch));
            if t.now >= next_batch {
                next_batch += batch;
                while let Some(&(_, ack)) = acks.front().filter(|a| a.0 <= t.now) {
                    acks.pop_front();
                    t.input(seg(F::ACK).ack(ack).win(65535));
                }
            }
            t.run_timers();
        }
        let rate = crate::tcp::cc::CongestionControl::pacing_rate(t.tcb.congestion()).expect("BBR paces");
        assert!((200_000_000..800_000_000).contains(&rate), "BBR found the bottleneck: {rate} B/s");
        longest
    };
    let fine = longest_burst(Duration::from_micros(10));
    let coarse = longest_burst(Duration::from_millis(1));
    assert!((2..=46).contains(&fine), "longest burst with 10 µs timers: {fine} segments");
    assert!(coarse >= 60, "longest burst with 1 ms timers: {coarse} segments");
}

/// BBR does not read loss as congestion: a recovery keeps the cwnd it had (packet
/// conservation for a round, then the model's cwnd), and PRR does not run.
#[test]
fn bbr_keeps_its_window_through_a_recovery() {
    let mut t = bbr_conn(10);
    send_paced(&mut t, 10);
    let before = t.tcb.cwnd();
    t.at(20);
    // Segment 0 lost, 1..=9 SACKed: RACK marks it lost, recovery begins.
    for r in 2..=10 {
        t.input(sack_ack(0, &[(1, r)]));
    }
    assert!(t.tcb.in_recovery());
    assert_eq!(t.tcb.ssthresh(), usize::MAX, "BBR sets no ssthresh");
    let rtx: Vec<u32> = t.outputs().iter().map(|o| o.seq).collect();
    assert_eq!(rtx.first(), Some(&s(0)), "{rtx:?}");
    t.at(30);
    t.input(seg(F::ACK).ack(s(10)));
    assert!(!t.tcb.in_recovery());
    assert!(t.tcb.cwnd() >= before, "cwnd {} after recovery, {before} before", t.tcb.cwnd());
}

/// RFC 3168 §6.1.1: a peer's ECN-setup SYN is answered with ECE (Linux's default); data
/// goes out ECN-capable; a retransmission does not.
#[test]
fn ecn_is_agreed_when_the_peer_asks() {
    let mut t = T::listener(cfg());
    t.input(seg(F::SYN | F::ECE | F::CWR).seq(PEER_ISS).opts(TcpOptions { mss: Some(1460), ..Default::default() }));
    let synack = t.output().unwrap();
    assert_eq!(synack.flags, F::SYN | F::ACK | F::ECE);
    assert!(!t.tcb.last_tx_ect(), "no ECT on a SYN-ACK");
    let isn = synack.seq;
    t.input(seg(F::ACK).ack(isn + 1));
    assert!(t.tcb.ecn_enabled());
    t.tcb.send(b"data").unwrap();
    t.output().unwrap();
    assert!(t.tcb.last_tx_ect(), "ECT(0) on new data");
    t.at(1500);
    let r = t.output().unwrap();
    assert_eq!(r.payload, b"data");
    assert!(!t.tcb.last_tx_ect(), "no ECT on a retransmission");
    // Without ECE and CWR on the SYN: no ECN.
    let mut t = T::listener(cfg());
    t.input(seg(F::SYN | F::ECE).seq(PEER_ISS));
    assert_eq!(t.output().unwrap().flags, F::SYN | F::ACK);
}

/// RFC 3168 §6.1.1: asking (EcnMode::On) puts ECE and CWR on the SYN, not on a retransmitted
/// one; a SYN-ACK with ECE agrees, one without does not.
#[test]
fn ecn_setup_when_asking() {
    let mut t = T::active(TcpConfig { ecn: EcnMode::On, ..cfg() });
    assert_eq!(t.output().unwrap().flags, F::SYN | F::ECE | F::CWR);
    t.at(1000);
    assert_eq!(t.output().unwrap().flags, F::SYN, "retransmitted SYN without ECN");
    t.input(seg(F::SYN | F::ACK | F::ECE).seq(PEER_ISS));
    assert!(t.tcb.ecn_enabled());
    let mut t = T::active(TcpConfig { ecn: EcnMode::On, ..cfg() });
    t.output().unwrap();
    t.input(seg(F::SYN | F::ACK).seq(PEER_ISS));
    assert!(!t.tcb.ecn_enabled());
}

fn ecn_conn() -> T {
    let mut t = T::active(TcpConfig { ecn: EcnMode::On, nagle: false, ..cfg() });
    t.output().unwrap();
    t.at(10);
    t.input(seg(F::SYN | F::ACK | F::ECE).seq(PEER_ISS).opts(TcpOptions { mss: Some(1460), ..Default::default() }));
    t.expect(F::ACK, ISS + 1, PEER_ISS + 1);
    assert!(t.tcb.ecn_enabled());
    t
}

/// RFC 3168 §6.1.3: data that arrived with CE is echoed with ECE on every ACK until a
/// segment with CWR arrives.
#[test]
fn ecn_ce_is_echoed_until_cwr() {
    let mut t = ecn_conn();
    t.input_with(seg(F::ACK | F::PSH).data(b"abc"), RxInfo { ce: true, may_lend: false });
    let a = t.output().expect("a CE mark is ACKed at once");
    assert_eq!(a.flags, F::ACK | F::ECE);
    assert_eq!(t.tcb.stats().ecn_ce_in, 1);
    t.input(seg(F::ACK | F::PSH).seq(PEER_ISS + 4).data(b"defg"));
    t.at(100);
    assert_eq!(t.output().unwrap().flags, F::ACK | F::ECE, "still echoed");
    t.input(seg(F::ACK | F::PSH | F::CWR).seq(PEER_ISS + 8).data(b"h"));
    t.at(200);
    assert_eq!(t.output().unwrap().flags, F::ACK, "CWR ends the echo");
}

/// RFC 3168 §6.1.2: an echo reduces cwnd once per window (PRR), and the next new data
/// carries CWR; another echo within the same window changes nothing more.
#[test]
fn ecn_echo_reduces_cwnd_once_per_window() {
    let mut t = ecn_conn();
    t.tcb.send(&vec![0u8; 20 * MSS as usize]).unwrap();
    assert_eq!(t.outputs().len(), 10);
    let cwnd = t.tcb.cwnd();
    t.at(20);
    t.input(seg(F::ACK | F::ECE).ack(s(1)));
    assert_eq!(t.tcb.ssthresh(), cwnd * 7 / 10);
    assert_eq!(t.tcb.stats().ecn_reductions, 1);
    let out = t.outputs();
    let first_new = out.first().expect("PRR sends for what was delivered");
    assert!(first_new.flags.contains(F::CWR));
    t.input(seg(F::ACK | F::ECE).ack(s(2)));
    assert_eq!(t.tcb.stats().ecn_reductions, 1, "once per window");
    assert!(t.outputs().iter().all(|o| !o.flags.contains(F::CWR)));
    assert_eq!(t.tcb.stats().retransmits, 0);
}

/// The regression from tests/stack_sim.rs seed 7340312: data in flight when the peer's
/// window closes, and its window update lost. RFC 9293 §3.8.6.1 wants the window probed;
/// the RTO resends the first segment even into the zero window, so the peer's answer
/// carries its open window and the transfer resumes — where before nothing went out and the
/// connection timed out after 15 silent RTOs. While the peer keeps answering with a zero
/// window, the timeouts do not count towards giving up (Linux).
#[test]
fn timeout_behind_a_zero_window_probes_and_never_gives_up_on_a_live_peer() {
    let mut t = T::established(TcpConfig { nagle: false, data_retries: 3, ..cfg() });
    t.tcb.send(&[5u8; 2000]).unwrap();
    assert_eq!(t.outputs().len(), 2);
    // The peer takes the first segment and closes its window; the rest is in flight.
    t.at(1);
    t.input(seg(F::ACK).ack(s(1)).win(0));
    t.none();
    let mut now = 1;
    for _ in 0..6 {
        now += t.tcb.rto().as_millis() as u64;
        t.at(now);
        let r = t.output().expect("the RTO resends into the zero window");
        assert_eq!(r.seq, s(1));
        // The peer answers, still with a zero window.
        t.input(seg(F::ACK).ack(s(1)).win(0));
        assert_eq!(t.tcb.state(), State::Established, "more than data_retries RTOs, peer alive");
    }
    // This time the answer opens the window and takes the segment: the transfer resumes.
    now += t.tcb.rto().as_millis() as u64;
    t.at(now);
    assert_eq!(t.output().unwrap().seq, s(1));
    t.input(seg(F::ACK).ack(s(1) + 540).win(65535));
    assert_eq!(t.tcb.send_queued(), 0);
    t.tcb.send(b"more").unwrap();
    assert_eq!(t.output().unwrap().payload, b"more");
}

/// Behind a zero window, a peer that stops answering is given up on once no ACK came for
/// longer than the maximum RTO (Linux's tcp_rtx_probe0_timed_out).
#[test]
fn timeout_behind_a_zero_window_gives_up_on_a_silent_peer() {
    let mut t = T::established(TcpConfig { nagle: false, max_rto: Duration::from_secs(2), data_retries: 100, ..cfg() });
    t.tcb.send(&[5u8; 2000]).unwrap();
    t.outputs();
    t.at(1);
    t.input(seg(F::ACK).ack(s(1)).win(0));
    let mut now = 1;
    while t.tcb.state() == State::Established {
        now += t.tcb.rto().as_millis() as u64;
        t.at(now);
        t.outputs();
        assert!(now < 10_000, "still {} at {now} ms", t.tcb.state());
    }
    assert_eq!(t.events(), vec![Event::Closed(CloseReason::TimedOut)]);
    assert!(now > 2_000);
}

/// RFC 2883 §3 as FreeBSD's rcv-data-segments suite checks it (and Linux does it): a segment
/// that fills the hole and also covers part of a range held out of order reports the
/// duplicate part, `200:275` here, in a D-SACK block before the SACK blocks still open.
#[test]
fn a_segment_partly_covering_held_data_reports_the_duplicate_part() {
    let mut t = sack_conn(10);
    let base = PEER_ISS + 1;
    let data = |a: u32, b: u32| seg(F::ACK).seq(base + a).data(&vec![9u8; (b - a) as usize]);
    t.input(data(0, 99));
    for (a, b) in [(199, 299), (399, 499), (599, 699)] {
        t.input(data(a, b));
        t.outputs();
    }
    t.outputs();
    t.input(data(99, 274));
    let ack = t.outputs().pop().expect("an ACK");
    assert_eq!(ack.ack, base + 299);
    let blocks: Vec<(u32, u32)> = ack.options.sack.as_slice().iter().map(|&(l, r)| (l - base, r - base)).collect();
    assert_eq!(blocks, [(199, 274), (599, 699), (399, 499)], "{ack:?}");
    assert_eq!(t.tcb.stats().dsacks_out, 1);
}
