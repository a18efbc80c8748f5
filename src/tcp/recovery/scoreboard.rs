//! The sender's scoreboard (RFC 6675 §3): what was sent, when, and what the peer said about it.
//!
//! Every sequence number between SND.UNA and SND.NXT (our FIN included) belongs to exactly one
//! entry, in sequence order. An entry is a run of bytes sent at the same instant that share
//! their state: selectively acknowledged (SACKED), deemed lost (LOST), retransmitted and that
//! retransmission still in flight (RETRANS), ever retransmitted (EVER_RETRANS, for Karn's
//! algorithm and RACK's reordering detection). Segments sent in one burst share `now`, so they
//! fill one entry; ACK-clocked sending makes about one entry per segment.
//!
//! The counters give RFC 6675's `pipe` the way Linux computes it (`tcp_packets_in_flight`, in
//! bytes): outstanding − SACKed − lost + retransmitted.
//!
//! Bounded (DESIGN habit 9): the entries live in a ring reserved at construction. When it is
//! full, adjacent entries in the same state are merged (the later send time kept: RACK then
//! waits a little longer before calling the earlier bytes lost, never less). If that frees
//! nothing, a SACK block that would split entries is ignored (its bytes stay unSACKed: the
//! conservative reading) and new data waits ([`Scoreboard::can_send_new`]); one entry is
//! always kept back so that a retransmission can split what it resends.

use super::rate::{SampleBuilder, TxRate};
use crate::tcp::SeqNum;
use crate::time::Instant;
use std::collections::VecDeque;

const SACKED: u8 = 1;
const LOST: u8 = 2;
const RETRANS: u8 = 4;
const EVER_RETRANS: u8 = 8;

/// Entries kept free for retransmissions (each splits at most one entry into two... twice).
const RESERVE: usize = 2;

/// One run of sent sequence space.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seg {
    /// First sequence number of the run.
    pub start: SeqNum,
    /// One past the last sequence number of the run.
    pub end: SeqNum,
    /// When it was (re)sent last.
    pub xmit: Instant,
    /// The delivery state then (`recovery::rate`).
    pub tx: TxRate,
    flags: u8,
}

impl Seg {
    /// Sequence space the run covers, in bytes (a FIN counts as one).
    pub fn len(&self) -> usize {
        self.end.since(self.start) as usize
    }
    /// Whether the run covers no sequence space.
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }
    /// Selectively acknowledged by the peer (SACKED).
    pub fn sacked(&self) -> bool {
        self.flags & SACKED != 0
    }
    /// Deemed lost (LOST), by RACK, duplicate ACKs or a timeout.
    pub fn lost(&self) -> bool {
        self.flags & LOST != 0
    }
    /// A retransmission of it is in flight.
    pub fn retrans(&self) -> bool {
        self.flags & RETRANS != 0
    }
    /// Retransmitted at least once (EVER_RETRANS): Karn's algorithm takes no RTT sample from it.
    pub fn ever_retransmitted(&self) -> bool {
        self.flags & EVER_RETRANS != 0
    }
    /// Lost and not yet sent again: what a retransmission should carry next.
    pub fn needs_retransmit(&self) -> bool {
        self.flags & (LOST | RETRANS | SACKED) == LOST
    }
}

/// What one ACK delivered (the bytes cumulatively or selectively acknowledged for the first
/// time), as RFC 6298, RFC 6937 and RFC 8985 each need it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Delivered {
    /// RFC 6937's DeliveredData.
    pub bytes: usize,
    /// Send time of the oldest newly cumulatively acknowledged byte never retransmitted
    /// (RFC 6298's sample, as Linux's seq_rtt: Karn's algorithm leaves out the others).
    pub first_orig_cum: Option<Instant>,
    /// The same among newly SACKed bytes (Linux's sack_rtt).
    pub first_orig_sack: Option<Instant>,
    /// The most recently sent delivered entry never retransmitted: (send time, end).
    pub last_orig: Option<(Instant, SeqNum)>,
    /// The most recently sent delivered entry that was retransmitted: RACK checks it was the
    /// retransmission that arrived before taking its time (RFC 8985 §6.2 step 1).
    pub last_retrans: Option<(Instant, SeqNum)>,
    /// The lowest end of a delivered entry never retransmitted (F-RTO, RFC 5682 §3.1).
    pub first_orig_end: Option<SeqNum>,
    /// A never-retransmitted entry was delivered below the highest sequence number already
    /// (s)acknowledged: the network reordered it (RFC 8985 §6.2 step 3).
    pub reordered: bool,
    /// The lowest start of those reordered entries (Linux measures the reordering degree from
    /// it to the highest SACK, tcp_check_sack_reordering).
    pub reordered_low: Option<SeqNum>,
    /// A retransmitted entry was delivered.
    pub retrans_delivered: bool,
    /// The delivery-rate snapshot of the most recently sent delivered entry.
    pub rate: SampleBuilder,
}

impl Delivered {
    fn note(&mut self, s: &Seg, len: usize, fack: SeqNum, cumulative: bool) {
        self.bytes += len;
        self.rate.delivered(s.xmit, s.tx);
        if s.ever_retransmitted() {
            self.retrans_delivered = true;
            if self.last_retrans.is_none_or(|(t, e)| sent_after(s.xmit, s.end, t, e)) {
                self.last_retrans = Some((s.xmit, s.end));
            }
            return;
        }
        let first = if cumulative { &mut self.first_orig_cum } else { &mut self.first_orig_sack };
        if first.is_none_or(|t| s.xmit < t) {
            *first = Some(s.xmit);
        }
        if self.last_orig.is_none_or(|(t, e)| sent_after(s.xmit, s.end, t, e)) {
            self.last_orig = Some((s.xmit, s.end));
        }
        if self.first_orig_end.is_none_or(|e| s.end.lt(e)) {
            self.first_orig_end = Some(s.end);
        }
        if s.end.lt(fack) {
            self.reordered = true;
            if self.reordered_low.is_none_or(|l| s.start.lt(l)) {
                self.reordered_low = Some(s.start);
            }
        }
    }
}

/// `x` and the entry after it as one: the later send time and its delivery snapshot (RACK
/// then waits a little longer for the earlier bytes, never less).
fn absorb(x: Seg, y: Seg) -> Seg {
    let later = if y.xmit >= x.xmit { y } else { x };
    Seg { start: x.start, end: y.end, xmit: later.xmit, tx: later.tx, flags: x.flags }
}

/// RFC 8985 §6.2: was (t1, e1) sent after (t2, e2)? Ties in time go to the higher sequence
/// number (segments sent in one burst).
pub fn sent_after(t1: Instant, e1: SeqNum, t2: Instant, e2: SeqNum) -> bool {
    t1 > t2 || (t1 == t2 && e1.gt(e2))
}

/// The scoreboard.
#[derive(Debug)]
pub struct Scoreboard {
    segs: VecDeque<Seg>,
    cap: usize,
    /// Bytes in SACKED entries.
    sacked: usize,
    /// Bytes in LOST entries (never SACKED ones).
    lost: usize,
    /// Bytes in RETRANS entries.
    retrans: usize,
    /// Bytes LOST and not RETRANS: waiting to be sent again.
    pending: usize,
    /// One past the highest SACKed sequence number.
    high_sacked: Option<SeqNum>,
    /// Where to look for the next segment to retransmit: nothing below it needs it.
    rtx_hint: Option<SeqNum>,
    /// SACK blocks ignored because the ring was full.
    pub ignored_blocks: u64,
    /// Retransmissions found lost again (marked lost while in flight).
    pub lost_retransmits: u64,
    /// Bytes ever marked lost (a retransmission lost again counts again, as Linux's
    /// tp->lost): the difference across an ACK is what it made the sender mark.
    pub total_lost: u64,
}

impl Scoreboard {
    /// A scoreboard of at most `cap` entries (at least `RESERVE + 2`), allocated now.
    pub fn new(cap: usize) -> Scoreboard {
        Scoreboard::with_storage(VecDeque::new(), cap)
    }

    /// The same over storage used before (a connection's pooled buffers).
    pub fn with_storage(mut segs: VecDeque<Seg>, cap: usize) -> Scoreboard {
        let cap = cap.max(RESERVE + 2);
        segs.clear();
        segs.reserve_exact(cap);
        Scoreboard {
            segs,
            cap,
            sacked: 0,
            lost: 0,
            retrans: 0,
            pending: 0,
            high_sacked: None,
            rtx_hint: None,
            ignored_blocks: 0,
            lost_retransmits: 0,
            total_lost: 0,
        }
    }

    /// The storage, for reuse.
    pub fn into_storage(self) -> VecDeque<Seg> {
        self.segs
    }

    /// Give up the entries' storage while none is in use (nothing outstanding), keeping the
    /// capacity; it comes back with [`Scoreboard::attach_storage`], or is reserved again, in
    /// one allocation, by the next send. `None` when entries are in use or it has none.
    pub fn detach_storage(&mut self) -> Option<VecDeque<Seg>> {
        if !self.segs.is_empty() || self.segs.capacity() == 0 {
            return None;
        }
        Some(core::mem::take(&mut self.segs))
    }

    /// Whether the storage was given up ([`Scoreboard::detach_storage`]).
    pub fn is_detached(&self) -> bool {
        self.segs.capacity() == 0
    }

    /// Storage back after [`Scoreboard::detach_storage`] (any capacity: it is reserved up to
    /// this scoreboard's); handed back when this one has storage.
    pub fn attach_storage(&mut self, mut segs: VecDeque<Seg>) -> Result<(), VecDeque<Seg>> {
        if !self.is_detached() {
            return Err(segs);
        }
        segs.clear();
        segs.reserve_exact(self.cap);
        self.segs = segs;
        Ok(())
    }

    /// Most entries the scoreboard holds.
    pub fn capacity(&self) -> usize {
        self.cap
    }
    /// Room for `cap` entries (never fewer than now): the send buffer grew.
    pub fn grow(&mut self, cap: usize) {
        if cap > self.cap {
            self.segs.reserve_exact(cap - self.segs.len());
            self.cap = cap;
        }
    }
    /// Entries in use.
    pub fn len(&self) -> usize {
        self.segs.len()
    }
    /// Whether nothing is outstanding (no entry in use).
    pub fn is_empty(&self) -> bool {
        self.segs.is_empty()
    }
    /// Bytes selectively acknowledged (SACKED entries).
    pub fn sacked_bytes(&self) -> usize {
        self.sacked
    }
    /// Bytes deemed lost (LOST entries, never SACKED ones).
    pub fn lost_bytes(&self) -> usize {
        self.lost
    }
    /// Bytes retransmitted whose retransmission is still in flight (RETRANS entries).
    pub fn retrans_bytes(&self) -> usize {
        self.retrans
    }
    /// Lost bytes not yet sent again.
    pub fn pending_bytes(&self) -> usize {
        self.pending
    }
    /// One past the highest SACKed sequence number, if any is SACKed.
    pub fn high_sacked(&self) -> Option<SeqNum> {
        self.high_sacked
    }
    /// The entries, in sequence order.
    pub fn iter(&self) -> impl Iterator<Item = &Seg> {
        self.segs.iter()
    }
    /// The first entry (starting at SND.UNA).
    pub fn head(&self) -> Option<&Seg> {
        self.segs.front()
    }

    /// The last entry (the most recent send of the highest sequence space).
    pub fn tail(&self) -> Option<&Seg> {
        self.segs.back()
    }

    /// Bytes in flight (RFC 6675 §4 `pipe`, as Linux counts it): outstanding, less what the
    /// peer holds (SACKED) and what left the network (LOST), plus retransmissions in flight.
    pub fn pipe(&self, outstanding: usize) -> usize {
        (outstanding + self.retrans).saturating_sub(self.sacked + self.lost)
    }

    /// Whether new data may be sent: an entry for it exists or can be made.
    pub fn can_send_new(&mut self, seq: SeqNum, now: Instant, tx: TxRate) -> bool {
        if let Some(last) = self.segs.back() {
            if last.end == seq && last.xmit == now && last.flags == 0 && last.tx == tx {
                return true;
            }
        }
        self.room(1)
    }

    /// Room for `n` more entries beyond the reserve, merging entries if needed.
    fn room(&mut self, n: usize) -> bool {
        if self.segs.len() + n + RESERVE <= self.cap {
            return true;
        }
        self.compact(n);
        self.segs.len() + n + RESERVE <= self.cap
    }

    fn account(&mut self, s: Seg, add: bool) {
        let n = s.len();
        let f = |c: &mut usize| {
            if add {
                *c += n
            } else {
                *c -= n
            }
        };
        if s.sacked() {
            f(&mut self.sacked);
        }
        if s.lost() {
            f(&mut self.lost);
        }
        if s.retrans() {
            f(&mut self.retrans);
        }
        if s.needs_retransmit() {
            f(&mut self.pending);
        }
    }

    /// Change entry `i`'s flags, keeping the counters right.
    fn set_flags(&mut self, i: usize, flags: u8) {
        let s = self.segs[i];
        self.account(s, false);
        self.segs[i].flags = flags;
        let s = self.segs[i];
        self.account(s, true);
    }

    /// New data `[start, end)` went out at `now` with delivery state `tx` (after
    /// [`Scoreboard::can_send_new`] said yes).
    pub fn on_send(&mut self, start: SeqNum, end: SeqNum, now: Instant, tx: TxRate) {
        if start == end {
            return;
        }
        debug_assert!(self.segs.back().is_none_or(|l| l.end == start), "new data must follow what was sent");
        if let Some(last) = self.segs.back_mut() {
            if last.end == start && last.xmit == now && last.flags == 0 && last.tx == tx {
                last.end = end;
                return;
            }
        }
        if self.segs.len() >= self.cap {
            // The caller did not ask; keep the invariant (every sent byte in an entry) anyway.
            self.compact(1);
            if self.segs.len() >= self.cap {
                if let Some(last) = self.segs.back_mut() {
                    last.end = end;
                    last.xmit = last.xmit.max(now);
                    last.tx = tx;
                }
                return;
            }
        }
        if self.segs.capacity() == 0 {
            // Detached while idle and not given storage back: all of it at once.
            self.segs.reserve_exact(self.cap);
        }
        self.segs.push_back(Seg { start, end, xmit: now, tx, flags: 0 });
    }

    /// The index of the entry holding `seq`, if any.
    fn find(&self, seq: SeqNum) -> Option<usize> {
        let i = self.segs.partition_point(|s| s.end.le(seq));
        (i < self.segs.len() && self.segs[i].start.le(seq)).then_some(i)
    }

    /// Split so that an entry starts at `seq` (inside the scoreboard); returns its index.
    /// Needs one free entry when `seq` is inside one.
    fn split_at(&mut self, seq: SeqNum) -> Option<usize> {
        let i = self.find(seq)?;
        let s = self.segs[i];
        if s.start == seq {
            return Some(i);
        }
        if self.segs.len() >= self.cap {
            return None;
        }
        // Counters hold per byte, so moving bytes between two entries with the same flags
        // changes none of them.
        self.segs[i].end = seq;
        self.segs.insert(i + 1, Seg { start: seq, ..s });
        Some(i + 1)
    }

    /// The cumulative ACK moved SND.UNA to `ack`: forget what it covers. `fack` is the highest
    /// sequence number acknowledged before this ACK (for reordering detection).
    pub fn on_cumulative_ack(&mut self, ack: SeqNum, fack: SeqNum, out: &mut Delivered) {
        while let Some(&s) = self.segs.front() {
            if s.start.ge(ack) {
                break;
            }
            let covered = if s.end.le(ack) { s.len() } else { ack.since(s.start) as usize };
            if !s.sacked() {
                // What was delivered ends at the ACK when it covers part of the entry (RACK
                // must not take the rest of a burst for delivered).
                out.note(&Seg { end: s.end.min(ack), ..s }, covered, fack, true);
            }
            if s.end.le(ack) {
                self.account(s, false);
                self.segs.pop_front();
            } else {
                // Part of an entry: the rest stays, with its state.
                self.account(s, false);
                self.segs[0].start = ack;
                let rest = self.segs[0];
                self.account(rest, true);
                break;
            }
        }
        if self.high_sacked.is_some_and(|h| h.le(ack)) {
            self.high_sacked = None;
        }
        if self.rtx_hint.is_some_and(|h| h.lt(ack)) {
            self.rtx_hint = None;
        }
    }

    /// The peer holds `[left, right)` (a SACK block, RFC 2018 §3). Parts outside the
    /// scoreboard are ignored. `fack` as for [`Scoreboard::on_cumulative_ack`]. Inside an
    /// entry, the block counts in whole segments of `mss` from the entry's start (and the
    /// short one at its end), as Linux's tcp_match_skb_to_sack rounds it: a block that
    /// names part of a segment says nothing about that segment.
    pub fn on_sack(&mut self, left: SeqNum, right: SeqNum, fack: SeqNum, mss: usize, out: &mut Delivered) {
        let (Some(first), Some(last)) = (self.segs.front(), self.segs.back()) else { return };
        let mut left = left.max(first.start);
        let mut right = right.min(last.end);
        if !left.lt(right) {
            return;
        }
        let mss = mss.max(1) as u32;
        if let Some(s) = self.find(left).map(|i| self.segs[i]) {
            let off = left.since(s.start);
            left = (s.start + off.div_ceil(mss).saturating_mul(mss)).min(s.end);
        }
        if let Some(s) = self.find(right).map(|i| self.segs[i]) {
            right = s.start + right.since(s.start) / mss * mss;
        }
        if !left.lt(right) {
            return;
        }
        // Anything new in it? (A block repeated on every ACK while a hole is open is the
        // common case: answer it without splitting anything.)
        let Some(mut i) = self.find(left) else { return };
        let mut news = false;
        let mut j = i;
        while j < self.segs.len() && self.segs[j].start.lt(right) {
            if !self.segs[j].sacked() {
                news = true;
                break;
            }
            j += 1;
        }
        if !news {
            return;
        }
        // Splits needed at the edges; refuse the block if the ring cannot take them.
        let splits = usize::from(self.segs[i].start != left)
            + usize::from(self.find(right).is_some_and(|k| self.segs[k].start != right));
        if !self.room(splits) {
            self.ignored_blocks += 1;
            return;
        }
        let Some(a) = self.split_at(left) else { return };
        if self.find(right).is_some() && self.split_at(right).is_none() {
            return;
        }
        i = a;
        while i < self.segs.len() && self.segs[i].start.lt(right) {
            let s = self.segs[i];
            if !s.sacked() {
                out.note(&s, s.len(), fack, false);
                // RFC 6675: SACKed bytes are neither lost nor in flight any more.
                self.set_flags(i, (s.flags & EVER_RETRANS) | SACKED);
            }
            i += 1;
        }
        if self.high_sacked.is_none_or(|h| h.lt(right)) {
            self.high_sacked = Some(right);
        }
        // Their send times no longer matter: runs of SACKed entries become one.
        self.merge_run(a, i, |x, y| x.sacked() && y.sacked());
    }

    /// Merge adjacent entries `k`, `k + 1` for `k` in `[from - 1, to]` while `same(k, k + 1)`
    /// (the later send time is kept; counters hold per byte, so they do not change).
    fn merge_run(&mut self, from: usize, to: usize, same: impl Fn(&Seg, &Seg) -> bool) {
        let mut k = from.saturating_sub(1);
        let mut to = to;
        while k < to && k + 1 < self.segs.len() {
            let (x, y) = (self.segs[k], self.segs[k + 1]);
            if x.end == y.start && same(&x, &y) {
                self.segs[k] = absorb(x, y);
                self.segs[k].flags |= y.flags & EVER_RETRANS;
                self.segs.remove(k + 1);
                to -= 1;
            } else {
                k += 1;
            }
        }
    }

    /// The ring is full: merge adjacent entries in the same state, oldest first, until a
    /// quarter of it is free, and at least `need` entries beyond the reserve (or nothing more
    /// can merge).
    fn compact(&mut self, need: usize) {
        let target = (self.cap - self.cap / 4).min(self.cap.saturating_sub(need + RESERVE));
        let mut k = 0;
        while self.segs.len() > target && k + 1 < self.segs.len() {
            let (x, y) = (self.segs[k], self.segs[k + 1]);
            if x.flags == y.flags && x.end == y.start {
                self.segs[k] = absorb(x, y);
                self.segs.remove(k + 1);
            } else {
                k += 1;
            }
        }
    }

    /// RFC 8985 §6.2 step 5 (RACK_detect_loss) over the scoreboard: every entry not yet
    /// delivered and not already waiting for its retransmission that was sent before the most
    /// recently delivered one (`rack_xmit`, `rack_end`) is lost once `wait` (RACK.rtt +
    /// reo_wnd) has passed since it was sent. Returns the bytes newly marked lost and, for the
    /// entries still inside their wait, the longest time left (the reordering timer).
    pub fn rack_detect_loss(
        &mut self,
        rack_xmit: Instant,
        rack_end: SeqNum,
        wait: crate::time::Duration,
        now: Instant,
    ) -> (usize, Option<crate::time::Duration>) {
        let mut newly = 0;
        let mut timeout: Option<crate::time::Duration> = None;
        let any_retrans = self.retrans > 0;
        for i in 0..self.segs.len() {
            let s = self.segs[i];
            if s.sacked() || s.needs_retransmit() {
                continue;
            }
            if !sent_after(rack_xmit, rack_end, s.xmit, s.end) {
                // Sent after the newest delivered segment: not lost by this rule. Entries
                // never retransmitted are in send order, so when no retransmission is in
                // flight nothing further on can be older.
                if !any_retrans && !s.ever_retransmitted() {
                    break;
                }
                continue;
            }
            let deadline = s.xmit + wait;
            if deadline <= now {
                newly += s.len();
                self.mark_lost(i);
            } else {
                let left = deadline.saturating_duration_since(now);
                timeout = Some(timeout.map_or(left, |t| t.max(left)));
            }
        }
        (newly, timeout)
    }

    /// Mark entry `i` lost (a retransmission of it in flight is lost too).
    fn mark_lost(&mut self, i: usize) {
        let s = self.segs[i];
        if s.retrans() {
            self.lost_retransmits += 1;
        }
        if !s.lost() || s.retrans() {
            self.total_lost += s.len() as u64;
        }
        self.set_flags(i, (s.flags & !RETRANS) | LOST);
        if self.rtx_hint.is_none_or(|h| s.start.lt(h)) {
            self.rtx_hint = Some(s.start);
        }
    }

    /// Mark `[seq, seq + len)` lost, whatever RACK says (duplicate-ACK recovery without
    /// SACK, RFC 6582: one segment at SND.UNA). Returns the bytes newly marked.
    pub fn mark_lost_range(&mut self, seq: SeqNum, len: usize) -> usize {
        let Some(i) = self.find(seq) else { return 0 };
        let s = self.segs[i];
        if s.sacked() || s.needs_retransmit() {
            return 0;
        }
        // Split the entry so that only these bytes are marked (the reserve has room).
        let end = (seq + len).min(s.end);
        let Some(a) = self.split_at(seq) else { return 0 };
        if self.find(end).is_some() && self.split_at(end).is_none() {
            return 0;
        }
        let n = self.segs[a].len();
        self.mark_lost(a);
        n
    }

    /// Forget everything from `seq` on, as if it had not been sent (a window probe the peer
    /// refused: it goes again with the data after it).
    pub fn truncate(&mut self, seq: SeqNum) {
        while let Some(&last) = self.segs.back() {
            if last.start.ge(seq) {
                self.account(last, false);
                self.segs.pop_back();
            } else {
                if last.end.gt(seq) {
                    let i = self.segs.len() - 1;
                    self.account(last, false);
                    self.segs[i].end = seq;
                    let s = self.segs[i];
                    self.account(s, true);
                }
                break;
            }
        }
        if self.high_sacked.is_some_and(|h| h.gt(seq)) {
            self.high_sacked = self.segs.iter().rev().find(|s| s.sacked()).map(|s| s.end);
        }
        if self.rtx_hint.is_some_and(|h| h.ge(seq)) {
            self.rtx_hint = None;
        }
    }

    /// The retransmission timer expired (RFC 8985 §6.3, as Linux's tcp_timeout_mark_lost):
    /// the head is lost, and so is everything sent at least `rack_rtt` ago. If the head was
    /// SACKed the receiver reneged on its SACKs (RFC 2018 §8): they are all forgotten.
    pub fn mark_lost_on_rto(&mut self, now: Instant, rack_rtt: crate::time::Duration) -> usize {
        let reneged = self.segs.front().is_some_and(|s| s.sacked());
        let mut newly = 0;
        for i in 0..self.segs.len() {
            let s = self.segs[i];
            if reneged && s.sacked() {
                self.set_flags(i, s.flags & !SACKED);
            } else if s.sacked() {
                continue;
            }
            let s = self.segs[i];
            if i == 0 || s.xmit + rack_rtt <= now {
                if !s.needs_retransmit() {
                    newly += s.len();
                }
                self.mark_lost(i);
            }
        }
        if reneged {
            self.high_sacked = None;
        }
        newly
    }

    /// Forget every loss mark (a spurious timeout or recovery was undone, RFC 5682 / RFC 3522):
    /// the original transmissions are taken to be in flight again.
    pub fn unmark_lost(&mut self) {
        for i in 0..self.segs.len() {
            let s = self.segs[i];
            if s.lost() {
                self.set_flags(i, s.flags & !LOST);
            }
        }
        self.rtx_hint = None;
    }

    /// The first range waiting for a retransmission, from the hint on.
    pub fn next_to_retransmit(&mut self) -> Option<(SeqNum, SeqNum)> {
        if self.pending == 0 {
            return None;
        }
        let from = match self.rtx_hint {
            Some(h) => self.find(h).unwrap_or(0),
            None => 0,
        };
        for i in from..self.segs.len() {
            let s = self.segs[i];
            if s.needs_retransmit() {
                self.rtx_hint = Some(s.start);
                return Some((s.start, s.end));
            }
        }
        // The hint was past it (cannot happen, but a wrong hint must not hide a loss).
        self.rtx_hint = None;
        self.segs.iter().find(|s| s.needs_retransmit()).map(|s| (s.start, s.end))
    }

    /// The last range neither delivered, nor lost, nor retransmitted: what RFC 6675's rescue
    /// retransmission (NextSeg rule 4) resends, up to the highest outstanding byte.
    pub fn last_unknown(&self) -> Option<(SeqNum, SeqNum)> {
        self.segs.iter().rev().find(|s| s.flags & (SACKED | LOST | RETRANS) == 0).map(|s| (s.start, s.end))
    }

    /// `[start, end)` was sent again at `now`: RETRANS and EVER_RETRANS, with the new time.
    /// Splits entries at the edges (the reserve guarantees room for that).
    pub fn on_retransmit(&mut self, start: SeqNum, end: SeqNum, now: Instant, tx: TxRate) {
        let Some(a) = self.split_at(start) else { return };
        let b = self.split_at(end).unwrap_or(self.segs.len());
        for i in a..b {
            let s = self.segs[i];
            if s.sacked() {
                continue;
            }
            self.set_flags(i, s.flags | RETRANS | EVER_RETRANS);
            self.segs[i].xmit = now;
            self.segs[i].tx = tx;
        }
        if self.rtx_hint.is_some_and(|h| h.lt(end)) {
            self.rtx_hint = Some(end);
        }
        // Pieces of one burst of retransmissions merge back into one entry.
        self.merge_run(a, b, |x, y| x.flags == y.flags && x.xmit == y.xmit);
    }

    /// Drop everything (the connection closed).
    pub fn clear(&mut self) {
        self.segs.clear();
        self.sacked = 0;
        self.lost = 0;
        self.retrans = 0;
        self.pending = 0;
        self.high_sacked = None;
        self.rtx_hint = None;
    }

    /// Check the invariants (tests and debug builds): contiguous entries, counters that match.
    pub fn check(&self, una: SeqNum, nxt: SeqNum) -> Result<(), String> {
        let mut at = una;
        let (mut sacked, mut lost, mut retrans, mut pending) = (0, 0, 0, 0);
        for s in &self.segs {
            if s.start != at || !s.start.lt(s.end) {
                return Err(format!("entry {s:?} does not follow {at:?}"));
            }
            at = s.end;
            if s.sacked() {
                sacked += s.len();
                if s.lost() || s.retrans() {
                    return Err(format!("SACKed entry also lost/in flight: {s:?}"));
                }
            }
            if s.lost() {
                lost += s.len();
            }
            if s.retrans() {
                retrans += s.len();
            }
            if s.needs_retransmit() {
                pending += s.len();
            }
        }
        if !self.segs.is_empty() && at != nxt {
            return Err(format!("entries end at {at:?}, SND.NXT is {nxt:?}"));
        }
        if (sacked, lost, retrans, pending) != (self.sacked, self.lost, self.retrans, self.pending) {
            return Err(format!(
                "counters {:?} but entries say {:?}",
                (self.sacked, self.lost, self.retrans, self.pending),
                (sacked, lost, retrans, pending)
            ));
        }
        if self.segs.len() > self.cap {
            return Err(format!("{} entries, capacity {}", self.segs.len(), self.cap));
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "scoreboard_tests.rs"]
mod tests;
