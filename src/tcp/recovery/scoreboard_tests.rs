//! Tests of the scoreboard (`scoreboard.rs`).

use super::*;
use crate::time::Duration;
use proptest::prelude::*;

fn t(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

/// Ten 100-byte segments from 1000, each sent 1 ms after the previous.
fn ten() -> Scoreboard {
    let mut sb = Scoreboard::new(64);
    for i in 0..10u32 {
        let s = SeqNum(1000 + i * 100);
        assert!(sb.can_send_new(s, t(i as u64), TxRate::default()));
        sb.on_send(s, s + 100u32, t(i as u64), TxRate::default());
    }
    sb
}

#[test]
fn a_burst_fills_one_entry() {
    let mut sb = Scoreboard::new(64);
    for i in 0..10u32 {
        sb.on_send(SeqNum(i * 100), SeqNum(i * 100 + 100), t(5), TxRate::default());
    }
    assert_eq!(sb.len(), 1);
    sb.check(SeqNum(0), SeqNum(1000)).unwrap();
}

#[test]
fn sack_splits_and_counts() {
    let mut sb = ten();
    let mut d = Delivered::default();
    sb.on_sack(SeqNum(1300), SeqNum(1500), SeqNum(1000), 1, &mut d);
    assert_eq!(sb.sacked_bytes(), 200);
    assert_eq!(d.bytes, 200);
    assert_eq!(d.last_orig, Some((t(4), SeqNum(1500))));
    assert_eq!(sb.high_sacked(), Some(SeqNum(1500)));
    assert_eq!(sb.pipe(1000), 800);
    // The two SACKed segments became one entry.
    assert_eq!(sb.len(), 9);
    // The same block again delivers nothing.
    let mut d = Delivered::default();
    sb.on_sack(SeqNum(1300), SeqNum(1500), SeqNum(1500), 1, &mut d);
    assert_eq!(d, Delivered::default());
    sb.check(SeqNum(1000), SeqNum(2000)).unwrap();
}

#[test]
fn cumulative_ack_delivers_only_what_was_not_sacked() {
    let mut sb = ten();
    let mut d = Delivered::default();
    sb.on_sack(SeqNum(1200), SeqNum(1400), SeqNum(1000), 1, &mut d);
    let mut d = Delivered::default();
    sb.on_cumulative_ack(SeqNum(1450), SeqNum(1400), &mut d);
    // 1000..1200 and 1400..1450 are new; 1200..1400 were SACKed already.
    assert_eq!(d.bytes, 250);
    assert_eq!(d.first_orig_cum, Some(t(0)));
    // 1000..1200 were delivered below the highest SACKed byte (1400): reordering.
    assert!(d.reordered);
    assert_eq!(sb.sacked_bytes(), 0);
    assert_eq!(sb.head().unwrap().start, SeqNum(1450));
    sb.check(SeqNum(1450), SeqNum(2000)).unwrap();
}

#[test]
fn a_partial_cumulative_ack_delivers_up_to_the_ack_only() {
    let mut sb = Scoreboard::new(64);
    sb.on_send(SeqNum(0), SeqNum(1000), t(1), TxRate::default()); // one burst, one entry
    let mut d = Delivered::default();
    sb.on_cumulative_ack(SeqNum(100), SeqNum(0), &mut d);
    assert_eq!(d.last_orig, Some((t(1), SeqNum(100))));
    assert_eq!(d.bytes, 100);
}

#[test]
fn rack_marks_what_was_sent_before_the_newest_delivered_after_the_wait() {
    let mut sb = ten();
    let mut d = Delivered::default();
    // Segment 5 (sent at 5 ms) is SACKed.
    sb.on_sack(SeqNum(1500), SeqNum(1600), SeqNum(1000), 1, &mut d);
    let (xmit, end) = d.last_orig.unwrap();
    // At 12 ms with a 5 ms wait: segments sent at 0..=7 ms... only those before 5 ms
    // qualify, and of them those sent at or before 7 ms - 5 ms... i.e. deadline 0+5..4+5.
    let (lost, left) = sb.rack_detect_loss(xmit, end, Duration::from_millis(5), t(7));
    // Sent at 0, 1, 2: deadlines 5, 6, 7 <= 7. Sent at 3, 4: 1 and 2 ms left.
    assert_eq!(lost, 300);
    assert_eq!(left, Some(Duration::from_millis(2)));
    assert_eq!(sb.pending_bytes(), 300);
    // One original segment at a time (they were sent at different times).
    assert_eq!(sb.next_to_retransmit(), Some((SeqNum(1000), SeqNum(1100))));
    // Segments after the SACKed one are not candidates.
    let (lost, _) = sb.rack_detect_loss(xmit, end, Duration::from_millis(5), t(100));
    assert_eq!(lost, 200);
    sb.check(SeqNum(1000), SeqNum(2000)).unwrap();
}

#[test]
fn retransmission_splits_and_a_lost_retransmission_is_lost_again() {
    let mut sb = ten();
    let mut d = Delivered::default();
    sb.on_sack(SeqNum(1500), SeqNum(2000), SeqNum(1000), 1, &mut d);
    let (xmit, end) = d.last_orig.unwrap();
    sb.rack_detect_loss(xmit, end, Duration::ZERO, t(20));
    assert_eq!(sb.pending_bytes(), 500);
    // Resend the first 100 bytes at 20 ms.
    sb.on_retransmit(SeqNum(1000), SeqNum(1100), t(20), TxRate::default());
    assert_eq!((sb.pending_bytes(), sb.retrans_bytes()), (400, 100));
    assert_eq!(sb.pipe(1000), 100);
    assert_eq!(sb.next_to_retransmit(), Some((SeqNum(1100), SeqNum(1200))));
    sb.on_retransmit(SeqNum(1100), SeqNum(1200), t(20), TxRate::default());
    // One burst: the two retransmissions are one entry.
    assert_eq!(sb.iter().filter(|s| s.retrans()).count(), 1);
    // A later retransmission delivered (sent at 30 ms) shows the first ones (20 ms) lost.
    sb.on_retransmit(SeqNum(1200), SeqNum(1300), t(30), TxRate::default());
    let mut d = Delivered::default();
    sb.on_sack(SeqNum(1200), SeqNum(1300), SeqNum(2000), 1, &mut d);
    let (rx, re) = d.last_retrans.unwrap();
    assert_eq!(rx, t(30));
    let (lost, _) = sb.rack_detect_loss(rx, re, Duration::from_millis(1), t(40));
    assert_eq!(lost, 200, "the retransmissions sent at 20 ms");
    assert_eq!(sb.retrans_bytes(), 0);
    sb.check(SeqNum(1000), SeqNum(2000)).unwrap();
}

#[test]
fn rto_marks_the_head_and_what_is_older_than_an_rtt_and_handles_reneging() {
    let mut sb = ten();
    // At 9.5 ms with RACK.rtt 3 ms: sent at 0..=6 are older; the head anyway.
    let n = sb.mark_lost_on_rto(Instant::from_micros(9_500), Duration::from_millis(3));
    assert_eq!(n, 700);
    let mut sb = ten();
    let mut d = Delivered::default();
    sb.on_sack(SeqNum(1000), SeqNum(1200), SeqNum(1000), 1, &mut d);
    // The head is SACKed yet unacknowledged at the timeout: reneging; all SACKs go.
    let n = sb.mark_lost_on_rto(t(100), Duration::from_millis(3));
    assert_eq!(n, 1000);
    assert_eq!(sb.sacked_bytes(), 0);
    sb.check(SeqNum(1000), SeqNum(2000)).unwrap();
    sb.unmark_lost();
    assert_eq!((sb.lost_bytes(), sb.pending_bytes()), (0, 0));
}

#[test]
fn a_full_ring_merges_and_ignores_blocks_it_cannot_hold() {
    let mut sb = Scoreboard::new(6);
    for i in 0..4u32 {
        let s = SeqNum(i * 100);
        assert!(sb.can_send_new(s, t(i as u64), TxRate::default()));
        sb.on_send(s, s + 100u32, t(i as u64), TxRate::default());
    }
    // 4 entries of 6 with two kept back: full. Same-state neighbours merge (oldest
    // first, the later send time kept), which makes room again.
    assert!(sb.can_send_new(SeqNum(400), t(9), TxRate::default()));
    assert!(sb.len() < 4);
    assert_eq!(sb.head().unwrap().start, SeqNum(0));
    let mut d = Delivered::default();
    sb.on_sack(SeqNum(150), SeqNum(160), SeqNum(0), 1, &mut d);
    sb.check(SeqNum(0), SeqNum(400)).unwrap();
    assert!(sb.len() <= 6);
}

/// A byte-by-byte model: for each byte, (sacked, lost, retransmitted-in-flight).
#[derive(Clone, Copy, Default, Debug)]
struct B {
    sacked: bool,
    lost: bool,
    retrans: bool,
}

proptest! {
    /// Random sends, SACKs, cumulative ACKs, RACK runs, retransmissions and timeouts keep
    /// the counters equal to a per-byte model, the entries contiguous and within bounds.
    #[test]
    fn agrees_with_a_per_byte_model(
        cap in 4usize..40,
        ops in proptest::collection::vec((0u8..6, 0u32..3000, 1u32..400), 1..120)
    ) {
        let base = SeqNum(u32::MAX - 1500);
        let mut sb = Scoreboard::new(cap);
        let mut model: Vec<B> = Vec::new(); // byte k is base + una_off + k
        let mut una = base;
        let mut nxt = base;
        let mut clock = 0u64;
        for (op, a, b) in ops {
            clock += 1;
            let now = Instant::from_millis(clock);
            match op {
                0 => {
                    if sb.can_send_new(nxt, now, TxRate::default()) {
                        sb.on_send(nxt, nxt + b, now, TxRate::default());
                        nxt += b;
                        model.extend((0..b).map(|_| B::default()));
                    }
                }
                1 => {
                    let l = una + a;
                    let r = l + b;
                    let mut d = Delivered::default();
                    let before = sb.ignored_blocks;
                    sb.on_sack(l, r, una, 1, &mut d);
                    if sb.ignored_blocks == before {
                        for (k, m) in model.iter_mut().enumerate() {
                            if (una + k).in_range(l, r) {
                                *m = B { sacked: true, lost: false, retrans: false };
                            }
                        }
                    }
                }
                2 => {
                    let n = (a as usize).min(model.len());
                    let ack = una + n;
                    let mut d = Delivered::default();
                    sb.on_cumulative_ack(ack, una, &mut d);
                    model.drain(..n);
                    una = ack;
                }
                3 => {
                    sb.rack_detect_loss(Instant::from_millis(clock), nxt, Duration::ZERO, now);
                    // Everything not SACKed and not already lost-pending sent before now
                    // is lost; the model learns it from the scoreboard itself below.
                }
                4 => {
                    if let Some((s, e)) = sb.next_to_retransmit() {
                        let e = e.min(s + b);
                        sb.on_retransmit(s, e, now, TxRate::default());
                    }
                }
                _ => {
                    sb.mark_lost_on_rto(now, Duration::from_millis(a as u64 % 5));
                }
            }
            prop_assert!(sb.check(una, nxt).is_ok(), "{:?}", sb.check(una, nxt));
            prop_assert!(sb.len() <= cap);
            // SACK marks agree with the model wherever the model knows them.
            let mut at = una;
            for s in sb.iter() {
                for k in 0..s.len() {
                    let m = model[(at.since(una) as usize) + k];
                    if m.sacked && !s.sacked() && op != 5 {
                        // Only a timeout (reneging) may clear a SACK mark.
                        prop_assert!(false, "byte {:?} lost its SACK", at + k);
                    }
                }
                at = s.end;
            }
            // Resync the model's SACK marks (a timeout may renege).
            let mut at = una;
            for s in sb.iter() {
                for k in 0..s.len() {
                    let m = &mut model[(at.since(una) as usize) + k];
                    m.sacked = s.sacked();
                    m.lost = s.lost();
                    m.retrans = s.retrans();
                }
                at = s.end;
            }
            let outstanding = nxt.since(una) as usize;
            let pipe: usize = model.iter().map(|m| usize::from(!m.sacked && !m.lost) + usize::from(m.retrans)).sum();
            prop_assert_eq!(sb.pipe(outstanding), pipe);
        }
    }
}

#[test]
fn a_block_names_whole_segments_only() {
    // One entry of four 1000-byte segments and a short one, sent at once.
    let mut sb = Scoreboard::new(16);
    sb.on_send(SeqNum(0), SeqNum(4500), Instant::ZERO, TxRate::default());
    let mut d = Delivered::default();
    // The last byte of the fourth segment: nothing (Linux's tcp_match_skb_to_sack).
    sb.on_sack(SeqNum(3999), SeqNum(4000), SeqNum(0), 1000, &mut d);
    assert_eq!(sb.sacked_bytes(), 0);
    // Half of the second through half of the fourth: the third only.
    sb.on_sack(SeqNum(1500), SeqNum(3500), SeqNum(0), 1000, &mut d);
    assert_eq!(sb.sacked_bytes(), 1000);
    // The short segment at the end counts whole.
    sb.on_sack(SeqNum(4000), SeqNum(4500), SeqNum(0), 1000, &mut d);
    assert_eq!(sb.sacked_bytes(), 1500);
}
