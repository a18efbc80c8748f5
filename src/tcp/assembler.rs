//! Which out-of-order bytes have arrived: the bookkeeping half of reassembly.
//!
//! The bytes themselves are written straight into the connection's receive ring at their
//! offset; [`Assembler`] only records which offsets, relative to RCV.NXT, hold data. When the
//! range at offset 0 exists the caller delivers it and advances RCV.NXT by
//! [`Assembler::take_front`]'s answer. The ranges also feed the SACK option (RFC 2018).
//!
//! The number of disjoint ranges is bounded at construction (DESIGN habit 9): a segment that
//! would need one more range than that is refused with [`TooManyRanges`], nothing changes, and
//! the caller drops the segment and counts it. A peer sending every other byte therefore costs
//! at most `max_ranges` entries, never memory.

use core::fmt;

/// [`Assembler::add`] refused a segment: it would have needed a new disjoint range beyond the
/// configured maximum. Nothing was changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooManyRanges;

impl fmt::Display for TooManyRanges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("out-of-order segment needs more ranges than the assembler holds")
    }
}

impl core::error::Error for TooManyRanges {}

/// One run of present bytes, `[start, end)`, plus when a segment last landed in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Range {
    start: u32,
    end: u32,
    /// Value of [`Assembler::clock`] at the latest `add` that touched this range. Unique per
    /// range: every `add` stamps exactly one range with a fresh value.
    stamp: u64,
}

/// The set of received offsets beyond RCV.NXT, as sorted, disjoint, non-adjacent ranges.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assembler {
    /// Sorted by `start`; no two ranges overlap or touch. Never holds more than `max_ranges`
    /// (plus, for a moment, the in-order range that [`Assembler::take_front`] takes next).
    /// Its capacity is reserved whole by the first insert (most connections never see data
    /// out of order, and hold nothing for it), so inserting allocates once at most.
    ranges: Vec<Range>,
    max_ranges: usize,
    /// Counts `add` calls, to order ranges by recency for SACK.
    clock: u64,
}

impl Assembler {
    /// An empty assembler that will track at most `max_ranges` disjoint ranges; it allocates
    /// nothing until its first insert.
    pub fn new(max_ranges: usize) -> Assembler {
        Assembler { ranges: Vec::new(), max_ranges, clock: 0 }
    }

    /// Mark `[offset, offset + len)` present, merging with every range it overlaps or touches.
    ///
    /// If the bytes touch no existing range and `max_ranges` ranges exist already, returns
    /// [`TooManyRanges`] and changes nothing — unless they start at offset 0: in-order data is
    /// always taken (the caller's `take_front` removes that range at once), or a receiver
    /// whose ranges are all used would refuse the very segment that fills its first hole. `len == 0` is a no-op. An end beyond `u32::MAX`
    /// is cut at `u32::MAX`; the caller trims segments to the receive window (at most 2^30,
    /// RFC 7323 §2.3) first, so this never happens to valid input.
    pub fn add(&mut self, offset: u32, len: u32) -> Result<(), TooManyRanges> {
        if len == 0 {
            return Ok(());
        }
        let start = offset;
        let end = offset.saturating_add(len);
        // The ranges that overlap or touch [start, end) are contiguous in the sorted vector:
        // from the first one ending at or after `start` to the last one starting at or before
        // `end`. Touching counts, so that ranges stay non-adjacent and the count stays minimal.
        let lo = self.ranges.partition_point(|r| r.end < start);
        let hi = self.ranges.partition_point(|r| r.start <= end);
        let stamp = self.clock + 1;
        if lo == hi {
            // Disjoint from everything: needs a new range, which is where the bound bites.
            if self.ranges.len() >= self.max_ranges && start != 0 {
                return Err(TooManyRanges);
            }
            // Within the reserved capacity, so no reallocation after the first.
            if self.ranges.capacity() == 0 {
                self.ranges.reserve_exact(self.max_ranges + 1);
            }
            self.ranges.insert(lo, Range { start, end, stamp });
        } else {
            let merged =
                Range { start: start.min(self.ranges[lo].start), end: end.max(self.ranges[hi - 1].end), stamp };
            self.ranges[lo] = merged;
            self.ranges.drain(lo + 1..hi);
        }
        self.clock = stamp;
        Ok(())
    }

    /// If bytes are present at offset 0, remove that range and return its length; the caller
    /// advances RCV.NXT by it, and every remaining offset moves down by the same amount to stay
    /// relative to the new RCV.NXT. Otherwise 0.
    pub fn take_front(&mut self) -> u32 {
        match self.ranges.first() {
            Some(first) if first.start == 0 => {
                let n = first.end;
                self.ranges.remove(0);
                for r in &mut self.ranges {
                    // Ranges are non-adjacent, so every other one starts above `n`.
                    r.start -= n;
                    r.end -= n;
                }
                n
            }
            _ => 0,
        }
    }

    /// The ranges as `(start, end)` offsets, end exclusive, in offset order.
    pub fn ranges(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.ranges.iter().map(|r| (r.start, r.end))
    }

    /// The first part of `[offset, offset + len)` held already: its intersection with the
    /// first held range it overlaps (what RFC 2883 reports as duplicate), if any.
    pub fn first_overlap(&self, offset: u32, len: u32) -> Option<(u32, u32)> {
        let end = offset.saturating_add(len);
        let i = self.ranges.partition_point(|r| r.end <= offset);
        let r = self.ranges.get(i)?;
        (r.start < end).then(|| (r.start.max(offset), r.end.min(end)))
    }

    /// No bytes beyond RCV.NXT are held.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The number of disjoint ranges.
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    /// The bound given to [`Assembler::new`].
    pub fn max_ranges(&self) -> usize {
        self.max_ranges
    }

    /// Forget everything (the connection reset or its receive buffer was discarded).
    pub fn clear(&mut self) {
        self.ranges.clear();
    }

    /// Fill `out` with up to `out.len()` ranges for the SACK option and return how many.
    ///
    /// The ranges are in order of recency, most recent first: by the latest [`Assembler::add`]
    /// that landed in each. So the first is the range holding the segment just added, as
    /// RFC 2018 §4 requires ("the first SACK block ... MUST specify the contiguous block of
    /// data containing the segment which triggered this ACK"), and the rest approximate its
    /// "most recently reported" order, which makes a receiver with more ranges than fit in one
    /// option rotate through the newest ones. If the triggering segment advanced RCV.NXT, its
    /// range was taken and is rightly absent (same sentence of §4). Offsets are relative to
    /// RCV.NXT; the caller adds RCV.NXT to make sequence numbers (the right edge is the
    /// sequence number after the block, as RFC 2018 §3 wants).
    pub fn sack_blocks(&self, out: &mut [(u32, u32)]) -> usize {
        // Selection by repeated maximum: `out` holds at most four blocks (RFC 2018 §3), so
        // this is a few passes over a short vector, with no sorting buffer to allocate.
        let mut below = u64::MAX;
        let mut n = 0;
        for slot in out.iter_mut() {
            let next = self.ranges.iter().filter(|r| r.stamp < below).max_by_key(|r| r.stamp);
            match next {
                Some(r) => {
                    *slot = (r.start, r.end);
                    below = r.stamp;
                    n += 1;
                }
                None => break,
            }
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ranges(a: &Assembler) -> Vec<(u32, u32)> {
        a.ranges().collect()
    }

    fn sack(a: &Assembler, max: usize) -> Vec<(u32, u32)> {
        let mut out = vec![(0, 0); max];
        let n = a.sack_blocks(&mut out);
        out.truncate(n);
        out
    }

    #[test]
    fn empty_add_is_a_no_op() {
        let mut a = Assembler::new(4);
        a.add(10, 0).unwrap();
        assert!(a.is_empty());
        assert_eq!(a.len(), 0);
        assert_eq!(a.take_front(), 0);
    }

    #[test]
    fn merges_overlapping_and_adjacent_ranges() {
        let mut a = Assembler::new(8);
        a.add(10, 5).unwrap(); // [10,15)
        a.add(20, 5).unwrap(); // [20,25)
        a.add(30, 5).unwrap(); // [30,35)
        assert_eq!(ranges(&a), [(10, 15), (20, 25), (30, 35)]);
        a.add(15, 2).unwrap(); // adjacent on the left
        assert_eq!(ranges(&a), [(10, 17), (20, 25), (30, 35)]);
        a.add(18, 2).unwrap(); // adjacent on the right
        assert_eq!(ranges(&a), [(10, 17), (18, 25), (30, 35)]);
        a.add(17, 1).unwrap(); // fills the gap exactly: both sides merge
        assert_eq!(ranges(&a), [(10, 25), (30, 35)]);
        a.add(12, 2).unwrap(); // inside
        assert_eq!(ranges(&a), [(10, 25), (30, 35)]);
        a.add(5, 40).unwrap(); // covers everything
        assert_eq!(ranges(&a), [(5, 45)]);
        assert_eq!(a.len(), 1);
    }

    #[test]
    fn take_front_delivers_and_shifts() {
        let mut a = Assembler::new(4);
        a.add(100, 50).unwrap();
        a.add(300, 10).unwrap();
        assert_eq!(a.take_front(), 0, "a hole at RCV.NXT");
        a.add(0, 100).unwrap(); // the missing segment arrives and joins [100,150)
        assert_eq!(ranges(&a), [(0, 150), (300, 310)]);
        assert_eq!(a.take_front(), 150);
        assert_eq!(ranges(&a), [(150, 160)]);
        assert_eq!(a.take_front(), 0);
        a.add(0, 150).unwrap();
        assert_eq!(a.take_front(), 160);
        assert!(a.is_empty());
    }

    #[test]
    fn bound_refuses_a_new_disjoint_range_and_changes_nothing() {
        let mut a = Assembler::new(2);
        a.add(10, 5).unwrap();
        a.add(30, 5).unwrap();
        let before = a.clone();
        assert_eq!(a.add(50, 5), Err(TooManyRanges));
        assert_eq!(a.add(1, 5), Err(TooManyRanges));
        assert_eq!(a.add(20, 5), Err(TooManyRanges));
        assert_eq!(a, before);
        // Bytes that touch an existing range are still accepted at the bound.
        a.add(15, 5).unwrap();
        a.add(35, 100).unwrap();
        a.add(5, 5).unwrap();
        assert_eq!(ranges(&a), [(5, 20), (30, 135)]);
        // Filling a gap frees a range for the next disjoint segment.
        a.add(20, 10).unwrap();
        a.add(200, 1).unwrap();
        assert_eq!(ranges(&a), [(5, 135), (200, 201)]);
    }

    #[test]
    fn zero_ranges_refuses_everything_out_of_order() {
        let mut a = Assembler::new(0);
        assert_eq!(a.add(1, 1), Err(TooManyRanges));
        a.add(0, 0).unwrap();
        assert!(a.is_empty());
        // In-order data only, taken at once.
        a.add(0, 1).unwrap();
        assert_eq!(a.take_front(), 1);
    }

    #[test]
    fn never_grows_past_its_first_allocation() {
        let mut a = Assembler::new(3);
        assert_eq!(a.ranges.capacity(), 0, "nothing before the first insert");
        a.add(5, 1).unwrap();
        let cap = a.ranges.capacity();
        assert!(cap >= 4);
        for i in 0..100u32 {
            let _ = a.add(i * 7 % 61, 2);
            a.take_front();
        }
        assert_eq!(a.ranges.capacity(), cap);
        assert!(a.len() <= 3);
    }

    #[test]
    fn end_saturates_at_u32_max() {
        let mut a = Assembler::new(2);
        a.add(u32::MAX - 1, 10).unwrap();
        assert_eq!(ranges(&a), [(u32::MAX - 1, u32::MAX)]);
    }

    #[test]
    fn clear_empties() {
        let mut a = Assembler::new(2);
        a.add(5, 5).unwrap();
        a.clear();
        assert!(a.is_empty());
        assert_eq!(sack(&a, 4), []);
    }

    #[test]
    fn sack_blocks_most_recent_first() {
        let mut a = Assembler::new(8);
        a.add(100, 10).unwrap();
        a.add(300, 10).unwrap();
        a.add(200, 10).unwrap();
        assert_eq!(sack(&a, 4), [(200, 210), (300, 310), (100, 110)]);
        // A segment landing in an old range makes it the first block, even a pure duplicate.
        a.add(105, 2).unwrap();
        assert_eq!(sack(&a, 4), [(100, 110), (200, 210), (300, 310)]);
        // A merge: the merged range carries the new segment's recency.
        a.add(210, 90).unwrap();
        assert_eq!(sack(&a, 4), [(200, 310), (100, 110)]);
        // Fewer slots than ranges: the newest ones.
        a.add(400, 1).unwrap();
        assert_eq!(sack(&a, 2), [(400, 401), (200, 310)]);
        assert_eq!(sack(&a, 0), []);
        // The range at RCV.NXT is delivered, not SACKed; the rest shift with RCV.NXT.
        a.add(0, 100).unwrap();
        assert_eq!(a.take_front(), 110);
        assert_eq!(sack(&a, 4), [(290, 291), (90, 200)]);
    }

    /// A model of the set: one bool per byte offset.
    const MODEL_BYTES: usize = 2000;

    #[derive(Clone, Debug)]
    enum Op {
        Add(u32, u32),
        TakeFront,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0u32..1800, 0u32..200).prop_map(|(o, l)| Op::Add(o, l)),
            // Adds near the front, so that take_front has something to take.
            2 => (0u32..40, 1u32..60).prop_map(|(o, l)| Op::Add(o, l)),
            2 => Just(Op::TakeFront),
        ]
    }

    fn runs(model: &[bool]) -> Vec<(u32, u32)> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < model.len() {
            if model[i] {
                let s = i;
                while i < model.len() && model[i] {
                    i += 1;
                }
                out.push((s as u32, i as u32));
            } else {
                i += 1;
            }
        }
        out
    }

    proptest! {
        #[test]
        fn matches_a_bitmap_model(max_ranges in 0usize..8, ops in proptest::collection::vec(op(), 1..120)) {
            let mut a = Assembler::new(max_ranges);
            let mut model = vec![false; MODEL_BYTES];
            for op in ops {
                match op {
                    Op::Add(off, len) => {
                        let (s, e) = (off as usize, (off + len) as usize);
                        // The bytes touch a run iff any of [s-1, e] is present.
                        let touches = len > 0 && model[s.saturating_sub(1)..=e.min(MODEL_BYTES - 1)].iter().any(|&b| b);
                        let refuse = len > 0 && !touches && off != 0 && runs(&model).len() >= max_ranges;
                        let before = a.clone();
                        match a.add(off, len) {
                            Ok(()) => {
                                prop_assert!(!refuse, "accepted {:?} at the bound", (off, len));
                                model[s..e].iter_mut().for_each(|b| *b = true);
                                if len > 0 {
                                    // RFC 2018 §4: the first block holds the segment just added.
                                    let first = sack(&a, 1);
                                    prop_assert!(first[0].0 <= off && off + len <= first[0].1);
                                }
                            }
                            Err(TooManyRanges) => {
                                prop_assert!(refuse, "refused {:?}", (off, len));
                                prop_assert_eq!(&a, &before);
                            }
                        }
                    }
                    Op::TakeFront => {
                        let lead = model.iter().take_while(|&&b| b).count();
                        prop_assert_eq!(a.take_front() as usize, lead);
                        model.drain(..lead);
                        model.resize(MODEL_BYTES, false);
                    }
                }
                let got = ranges(&a);
                prop_assert_eq!(&got, &runs(&model));
                // At most one more: an in-order range not taken yet (the caller takes it at
                // once; the model may not).
                let front = usize::from(got.first().is_some_and(|r| r.0 == 0));
                prop_assert!(got.len() <= max_ranges + front);
                prop_assert_eq!(a.len(), got.len());
                prop_assert_eq!(a.is_empty(), got.is_empty());
                // Sorted, non-empty, disjoint and non-adjacent (implied by equality with the
                // model's maximal runs, but stated for the reader).
                prop_assert!(got.iter().all(|&(s, e)| s < e));
                prop_assert!(got.windows(2).all(|w| w[0].1 < w[1].0));
                // SACK blocks are distinct ranges of the set, as many as fit.
                let blocks = sack(&a, 4);
                prop_assert_eq!(blocks.len(), got.len().min(4));
                for (i, b) in blocks.iter().enumerate() {
                    prop_assert!(got.contains(b));
                    prop_assert!(!blocks[..i].contains(b));
                }
            }
        }
    }

    #[test]
    fn in_order_data_is_taken_even_with_every_range_used() {
        // Found by the simulator (tiny-mss seed 1105): 1-byte segments with every other one
        // lost used all ranges, and the retransmission filling the first hole was refused.
        let mut a = Assembler::new(2);
        a.add(2, 1).unwrap();
        a.add(4, 1).unwrap();
        assert_eq!(a.add(6, 1), Err(TooManyRanges));
        a.add(0, 1).unwrap();
        assert_eq!(a.take_front(), 1);
        assert_eq!(a.len(), 2);
    }
}
