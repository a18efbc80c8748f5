//! A hierarchical timing wheel: one per core, holding that core's protocol timers
//! (retransmission, delayed ACK, TIME_WAIT, keep-alive).
//!
//! Why a wheel and not a heap: a TCP stack arms and cancels timers far more often than they
//! fire (every ACK restarts the retransmission timer), so schedule and cancel must be O(1).
//!
//! # Shape
//!
//! Time is counted in ticks of `resolution`. There are six levels of 64 slots; a slot at level
//! `k` spans 64^k ticks, so the levels together span 2^36 ticks (795 days at 1 ms, 19 hours at
//! 1 µs). A timer sits at the level of the highest bit in which its tick differs from the
//! wheel's current tick (the placement rule of tokio's timer wheel). That rule gives
//! three properties the code relies on:
//! * every timer of a slot shares the slot's upper bits, so a level-0 slot holds one tick;
//! * at every level the occupied slots all lie ahead of the current tick, and every timer on a
//!   lower level is earlier than every timer on a higher one;
//! * when the current tick reaches the start of a higher slot, its timers move down
//!   ("cascade"), so each timer is touched at most once per level.
//!
//! Deadlines past the top level go on one unsorted overflow list, with a lower bound on its
//! earliest tick. When time reaches that bound the whole list is placed again, relative to the
//! new current tick; the entries still too far go back on it. Jumping to the bound (rather than
//! walking the top level round by round) keeps a sparse wheel cheap under a simulator's jumps.
//!
//! # Rounding and order
//!
//! A deadline is rounded *up* to its tick, and a timer fires on the first `advance` (or
//! `poll_expired`) whose `now` reaches that tick: never before its deadline, at most one
//! resolution after it. Timers fire in tick order; within a tick, in no promised order. A timer
//! whose deadline is not later than the latest `now` the wheel has seen is due at once: it fires
//! on the next `advance`, before the timers that come due during that advance, in the order such
//! timers were scheduled (their true deadlines are not sorted; they are all overdue).
//!
//! # Cost
//!
//! Each level has a 64-bit occupancy bitmap, so finding the next occupied slot is a
//! `trailing_zeros` per level: `advance` costs per timer fired and per cascade, never per tick
//! elapsed, and `next_deadline` is O(levels). The slab of entries (with the intrusive circular
//! lists, one sentinel entry per list) is allocated in [`TimerWheel::new`]; nothing allocates
//! afterwards.

use super::{Duration, Instant};
use core::fmt;

const SLOT_BITS: u32 = 6;
const SLOTS: usize = 1 << SLOT_BITS;
const SLOT_MASK: u64 = SLOTS as u64 - 1;
const LEVELS: usize = 6;

// List ids: one per slot (`level * SLOTS + slot`), then the overflow list, then the due list.
const OVERFLOW: u16 = (LEVELS * SLOTS) as u16;
/// Timers that have come due and not yet been handed out, oldest first.
const DUE: u16 = OVERFLOW + 1;
const LISTS: u32 = DUE as u32 + 1;
/// `Entry::list` of an entry on the free list.
const FREE: u16 = u16::MAX;
/// End of the free list. Never a valid index, which is what bounds the capacity.
const NIL: u32 = u32::MAX;

/// The largest capacity [`TimerWheel::new`] accepts: indices (timers, then one sentinel per
/// list) must stay below `u32::MAX` so that handles and links are 32-bit.
pub const MAX_CAPACITY: usize = (u32::MAX - LISTS) as usize;

/// Names one scheduled timer. Stays valid until the timer fires or is cancelled; after that it
/// matches nothing, even once its entry is reused, because the entry's generation has moved on
/// (a stale handle would have to be kept across 2^32 reuses of one entry to match again).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimerHandle {
    index: u32,
    generation: u32,
}

/// [`TimerWheel::schedule`] found every entry in use. The wheel never grows (DESIGN.md habit 9):
/// the caller counts this and refuses what needed the timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WheelFull;

impl fmt::Display for WheelFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("timer wheel full")
    }
}

impl std::error::Error for WheelFull {}

/// [`TimerWheel::reschedule`] was given a handle whose timer already fired or was cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StaleHandle;

impl fmt::Display for StaleHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("timer already fired or cancelled")
    }
}

impl std::error::Error for StaleHandle {}

struct Entry<T> {
    /// The deadline in ticks, rounded up.
    tick: u64,
    prev: u32,
    /// Also the free-list link while the entry is free.
    next: u32,
    /// Bumped each time the entry is freed, so that handles to its earlier timers stop matching.
    generation: u32,
    /// The list the entry is on, or `FREE`. Sentinels carry their own list id.
    list: u16,
    /// `Some` exactly while a timer is live in this entry.
    payload: Option<T>,
}

/// A hierarchical timing wheel holding up to `capacity` timers, each with a payload `T`.
/// See the [module documentation](self) for the shape, the rounding and the order of firing.
pub struct TimerWheel<T> {
    /// `capacity` timer entries, then one sentinel per list (list `l` at `capacity + l`).
    entries: Vec<Entry<T>>,
    capacity: u32,
    /// Head of the free list, or `NIL` when full.
    free: u32,
    len: u32,
    /// Microseconds per tick, at least 1.
    resolution: u64,
    /// The latest `now` seen; time never runs backwards in the wheel.
    now: Instant,
    /// The current tick: every timer with a tick at or before it is on the due list (or fired).
    /// Every wheel event (slot start, overflow bound) is after it, which is what keeps the
    /// placement invariants true while it moves.
    tick: u64,
    /// Bit `s` of `occupied[k]`: slot `s` of level `k` is not empty.
    occupied: [u64; LEVELS],
    /// A lower bound on the ticks in each slot (`u64::MAX` when empty). Exact unless a timer
    /// was cancelled out of the slot; it lets `next_deadline` name the timer's own tick rather
    /// than the start of a higher slot, so a caller sleeping until then wakes once, not once
    /// per level.
    slot_min: [[u64; SLOTS]; LEVELS],
    /// A lower bound on the ticks on the overflow list (`u64::MAX` when empty): when the
    /// overflow list is next placed again.
    overflow_min: u64,
    /// Where the tick after `tick` begins, as the last `poll_expired` that found nothing left
    /// it (`Instant::ZERO` otherwise): before it, with nothing on the due list, nothing can be
    /// due, and a poll answers without running the wheel (a busy-polling loop polls many
    /// times a tick).
    next_tick_at: Instant,
}

impl<T> fmt::Debug for TimerWheel<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimerWheel")
            .field("len", &self.len)
            .field("capacity", &self.capacity)
            .field("resolution", &self.resolution())
            .field("now", &self.now)
            .field("next_deadline", &self.next_deadline())
            .finish()
    }
}

impl<T> TimerWheel<T> {
    /// A wheel for up to `capacity` timers, counting time in ticks of `resolution` from `now`.
    /// All storage is allocated here.
    ///
    /// # Panics
    /// If `resolution` is under a microsecond (the unit of [`Instant`]) or `capacity` is over
    /// [`MAX_CAPACITY`]: both are configuration errors, found at start-up.
    pub fn new(capacity: usize, resolution: Duration, now: Instant) -> Self {
        let resolution = u64::try_from(resolution.as_micros()).unwrap_or(u64::MAX);
        assert!(resolution > 0, "TimerWheel: resolution must be at least 1 µs");
        assert!(capacity <= MAX_CAPACITY, "TimerWheel: capacity {capacity} is over {MAX_CAPACITY}");
        let cap = capacity as u32;
        let mut entries = Vec::with_capacity(capacity + LISTS as usize);
        entries.extend((0..cap).map(|i| Entry {
            tick: 0,
            prev: NIL,
            next: if i + 1 < cap { i + 1 } else { NIL },
            generation: 0,
            list: FREE,
            payload: None,
        }));
        entries.extend((0..LISTS).map(|l| {
            let sentinel = cap + l;
            Entry { tick: 0, prev: sentinel, next: sentinel, generation: 0, list: l as u16, payload: None }
        }));
        TimerWheel {
            entries,
            capacity: cap,
            free: if cap > 0 { 0 } else { NIL },
            len: 0,
            resolution,
            now,
            tick: now.as_micros() / resolution,
            occupied: [0; LEVELS],
            slot_min: [[u64::MAX; SLOTS]; LEVELS],
            overflow_min: u64::MAX,
            next_tick_at: Instant::ZERO,
        }
    }

    /// Most timers the wheel holds at once.
    pub fn capacity(&self) -> usize {
        self.capacity as usize
    }

    /// Timers scheduled and not yet fired or cancelled.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether no timer is scheduled.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The length of one tick: a deadline is rounded up to a tick, so a timer fires at most this
    /// long after it (given an `advance` then).
    pub fn resolution(&self) -> Duration {
        Duration::from_micros(self.resolution)
    }

    /// Arms a timer for `deadline`. O(1). A deadline not later than the latest `now` the wheel
    /// has seen fires on the next `advance`.
    pub fn schedule(&mut self, deadline: Instant, payload: T) -> Result<TimerHandle, WheelFull> {
        let index = self.free;
        if index == NIL {
            return Err(WheelFull);
        }
        let e = &mut self.entries[index as usize];
        self.free = e.next;
        e.payload = Some(payload);
        let generation = e.generation;
        self.len += 1;
        self.arm(index, deadline);
        Ok(TimerHandle { index, generation })
    }

    /// Disarms a timer and gives its payload back. O(1). `None` if the timer already fired or
    /// was cancelled, whatever has been scheduled in its entry since.
    pub fn cancel(&mut self, handle: TimerHandle) -> Option<T> {
        if !self.contains(handle) {
            return None;
        }
        self.unlink(handle.index);
        Some(self.release(handle.index))
    }

    /// Moves a live timer to a new deadline, keeping its payload. O(1). The handle stays valid,
    /// so a connection that restarts its retransmission timer on every ACK keeps the one handle.
    pub fn reschedule(&mut self, handle: TimerHandle, deadline: Instant) -> Result<(), StaleHandle> {
        if !self.contains(handle) {
            return Err(StaleHandle);
        }
        self.unlink(handle.index);
        self.arm(handle.index, deadline);
        Ok(())
    }

    /// The timer is scheduled: it has neither fired nor been cancelled.
    pub fn contains(&self, handle: TimerHandle) -> bool {
        handle.index < self.capacity && {
            let e = &self.entries[handle.index as usize];
            e.generation == handle.generation && e.list != FREE
        }
    }

    /// When the caller should next call `advance`: `None` if no timer is scheduled; the latest
    /// `now` seen if a timer is already due (call again at once); otherwise a time after that
    /// `now` and not later than the earliest deadline rounded up to the resolution. It is that
    /// rounded deadline exactly unless timers were cancelled since the wheel last moved time
    /// past them; then it may be earlier, and the `advance` there fires nothing but tightens
    /// the next answer. O(levels).
    pub fn next_deadline(&self) -> Option<Instant> {
        if !self.list_is_empty(DUE) {
            return Some(self.now);
        }
        let mut earliest = None;
        // Every timer on a lower level is earlier than any on a higher one, and within a level
        // the first occupied slot is the earliest: one slot to look at.
        if let Some(level) = (0..LEVELS).find(|&k| self.occupied[k] != 0) {
            earliest = Some(self.slot_min[level][self.occupied[level].trailing_zeros() as usize]);
        }
        // The overflow list is usually later than all levels, but not always: time may have
        // entered a new top-level round without reaching its bound.
        if !self.list_is_empty(OVERFLOW) {
            earliest = Some(earliest.map_or(self.overflow_min, |t: u64| t.min(self.overflow_min)));
        }
        earliest.map(|tick| Instant::from_micros(tick.saturating_mul(self.resolution)))
    }

    /// Takes one timer that is due at `now`, earliest tick first; `None` when no more are.
    /// Between calls the caller may schedule, cancel and reschedule (re-arming a timer from
    /// its expiry is the common case); a timer scheduled due in the middle of this comes out
    /// of the same run of calls.
    pub fn poll_expired(&mut self, now: Instant) -> Option<(TimerHandle, T)> {
        if now < self.next_tick_at && self.list_is_empty(DUE) {
            self.now = self.now.max(now);
            return None;
        }
        let target = self.observe(now);
        let fired = self.expire(target);
        self.next_tick_at = match fired {
            None => Instant::from_micros(self.tick.saturating_add(1).saturating_mul(self.resolution)),
            Some(_) => Instant::ZERO,
        };
        fired
    }

    /// Fires every timer due at `now`, earliest tick first, and returns how many fired.
    pub fn advance(&mut self, now: Instant, mut on_expired: impl FnMut(TimerHandle, T)) -> usize {
        let target = self.observe(now);
        let mut fired = 0;
        while let Some((handle, payload)) = self.expire(target) {
            on_expired(handle, payload);
            fired += 1;
        }
        fired
    }

    /// Takes in `now` and returns the tick to run the wheel to.
    fn observe(&mut self, now: Instant) -> u64 {
        self.now = self.now.max(now);
        if self.now == Instant::FAR_FUTURE {
            // Every deadline has passed, even one whose tick, rounded up, is past the last
            // whole tick in a u64 of microseconds.
            u64::MAX
        } else {
            self.now.as_micros() / self.resolution
        }
    }

    fn expire(&mut self, target: u64) -> Option<(TimerHandle, T)> {
        let due = self.sentinel(DUE);
        loop {
            let index = self.entries[due as usize].next;
            if index != due {
                self.unlink(index);
                let generation = self.entries[index as usize].generation;
                return Some((TimerHandle { index, generation }, self.release(index)));
            }
            // No tick has passed since the wheel last ran: nothing more can be due, since at
            // rest every slot's start and the overflow bound lie after the current tick. (The
            // common case of a busy-polling loop, which polls many times a tick.)
            if self.tick == target || !self.step(target) {
                return None;
            }
        }
    }

    /// Runs the wheel to its next event (a slot's start, or the overflow bound) if that is not
    /// after `target`; otherwise moves the current tick to `target` and returns false.
    fn step(&mut self, target: u64) -> bool {
        debug_assert!(self.tick <= target);
        let mut next = None;
        if let Some(level) = (0..LEVELS).find(|&k| self.occupied[k] != 0) {
            let slot = u64::from(self.occupied[level].trailing_zeros());
            let shift = level as u32 * SLOT_BITS;
            // The slot's range shares the current tick's bits above this level.
            let round = self.tick >> (shift + SLOT_BITS) << (shift + SLOT_BITS);
            next = Some((round | slot << shift, (level * SLOTS) as u16 + slot as u16));
        }
        if !self.list_is_empty(OVERFLOW) && next.is_none_or(|(at, _)| self.overflow_min < at) {
            next = Some((self.overflow_min, OVERFLOW));
        }
        match next {
            Some((at, list)) if at <= target => {
                debug_assert!(at > self.tick, "a wheel event at or before the current tick");
                self.tick = at;
                self.drain(list);
                true
            }
            _ => {
                self.tick = target;
                false
            }
        }
    }

    /// Empties a list at its event: timers due now go on the due list, the others are placed
    /// again relative to the new current tick (lower levels, or back on the overflow list).
    fn drain(&mut self, list: u16) {
        let sentinel = self.sentinel(list);
        let mut index = self.entries[sentinel as usize].next;
        // Detach the chain first: entries of the overflow list may go back onto it.
        let s = &mut self.entries[sentinel as usize];
        s.next = sentinel;
        s.prev = sentinel;
        self.list_emptied(list);
        // The chain's last entry still points at the sentinel.
        while index != sentinel {
            let next = self.entries[index as usize].next;
            if self.entries[index as usize].tick <= self.tick {
                self.link_back(index, DUE);
            } else {
                self.place(index);
            }
            index = next;
        }
    }

    /// Sets the entry's tick from `deadline` and puts it on the due list or in the wheel.
    fn arm(&mut self, index: u32, deadline: Instant) {
        self.entries[index as usize].tick = deadline.as_micros().div_ceil(self.resolution);
        if deadline <= self.now {
            self.link_back(index, DUE);
        } else {
            self.place(index);
        }
    }

    /// Puts an entry whose tick is after the current tick on its level's slot, or on the
    /// overflow list.
    fn place(&mut self, index: u32) {
        let tick = self.entries[index as usize].tick;
        debug_assert!(tick > self.tick);
        // OR-ing in the slot mask makes differences within level 0 land on level 0.
        let level = ((63 - ((self.tick ^ tick) | SLOT_MASK).leading_zeros()) / SLOT_BITS) as usize;
        if level >= LEVELS {
            self.overflow_min = self.overflow_min.min(tick);
            self.link_back(index, OVERFLOW);
        } else {
            let slot = ((tick >> (level as u32 * SLOT_BITS)) & SLOT_MASK) as usize;
            self.occupied[level] |= 1 << slot;
            let min = &mut self.slot_min[level][slot];
            *min = (*min).min(tick);
            self.link_back(index, (level * SLOTS + slot) as u16);
        }
    }

    fn sentinel(&self, list: u16) -> u32 {
        self.capacity + u32::from(list)
    }

    fn list_is_empty(&self, list: u16) -> bool {
        let sentinel = self.sentinel(list);
        self.entries[sentinel as usize].next == sentinel
    }

    fn link_back(&mut self, index: u32, list: u16) {
        let sentinel = self.sentinel(list);
        let tail = self.entries[sentinel as usize].prev;
        self.entries[tail as usize].next = index;
        self.entries[sentinel as usize].prev = index;
        let e = &mut self.entries[index as usize];
        e.prev = tail;
        e.next = sentinel;
        e.list = list;
    }

    fn unlink(&mut self, index: u32) {
        let e = &self.entries[index as usize];
        let (prev, next, list) = (e.prev, e.next, e.list);
        self.entries[prev as usize].next = next;
        self.entries[next as usize].prev = prev;
        // Both neighbours are the same entry only when both are the sentinel.
        if prev == next {
            self.list_emptied(list);
        }
    }

    /// Keeps the bitmaps and lower bounds in step with a list that just became empty.
    fn list_emptied(&mut self, list: u16) {
        if list < OVERFLOW {
            let (level, slot) = (list as usize / SLOTS, list as usize % SLOTS);
            self.occupied[level] &= !(1 << slot);
            self.slot_min[level][slot] = u64::MAX;
        } else if list == OVERFLOW {
            self.overflow_min = u64::MAX;
        }
    }

    /// Returns an unlinked entry to the free list and hands back its payload.
    fn release(&mut self, index: u32) -> T {
        let e = &mut self.entries[index as usize];
        e.list = FREE;
        e.generation = e.generation.wrapping_add(1);
        e.next = self.free;
        self.free = index;
        self.len -= 1;
        e.payload.take().expect("TimerWheel: a live entry without a payload")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    const MS: Duration = Duration::from_millis(1);
    const US: Duration = Duration::from_micros(1);

    fn ms(n: u64) -> Instant {
        Instant::from_millis(n)
    }

    fn fire<T>(w: &mut TimerWheel<T>, now: Instant) -> Vec<T> {
        let mut out = Vec::new();
        w.advance(now, |_, p| out.push(p));
        out
    }

    #[test]
    fn fires_in_deadline_order_across_levels() {
        let mut w = TimerWheel::new(16, MS, Instant::ZERO);
        // One deadline per level and one in the overflow list (> 2^36 ms), in shuffled order.
        let deadlines = [90_000, 3, 7_200_000, 700, 50, 5_000, 3_000_000_000_000, 4, 1 << 30];
        for &d in &deadlines {
            w.schedule(ms(d), d).unwrap();
        }
        let mut sorted = deadlines;
        sorted.sort();
        // Step to just before each deadline, then onto it.
        for &d in &sorted {
            assert_eq!(fire(&mut w, ms(d) - US), Vec::<u64>::new(), "early at {d} ms");
            assert_eq!(w.next_deadline(), Some(ms(d)));
            assert_eq!(fire(&mut w, ms(d)), vec![d]);
        }
        assert!(w.is_empty());
        assert_eq!(w.next_deadline(), None);

        // And all at once.
        let mut w = TimerWheel::new(16, MS, Instant::ZERO);
        for &d in &deadlines {
            w.schedule(ms(d), d).unwrap();
        }
        assert_eq!(fire(&mut w, Instant::FAR_FUTURE), sorted);
    }

    /// Polls within one tick answer without running the wheel; a timer that is due, or that
    /// becomes due in the next tick, still comes out at once.
    #[test]
    fn polls_within_a_tick_still_see_what_is_due() {
        let mut w = TimerWheel::new(4, MS, Instant::ZERO);
        let t = Instant::from_micros(5_300);
        assert!(w.poll_expired(t).is_none());
        assert!(w.poll_expired(t + US).is_none(), "the same tick, nothing scheduled");
        w.schedule(ms(5), 'a').unwrap(); // already past: due now
        assert_eq!(w.poll_expired(t + US).map(|(_, p)| p), Some('a'));
        assert!(w.poll_expired(t + US).is_none());
        w.schedule(Instant::from_micros(5_900), 'b').unwrap(); // rounds up to tick 6
        assert!(w.poll_expired(Instant::from_micros(5_999)).is_none());
        assert_eq!(w.next_deadline(), Some(ms(6)));
        assert_eq!(w.poll_expired(ms(6)).map(|(_, p)| p), Some('b'));
        w.schedule(ms(6), 'c').unwrap(); // due in the tick just reached
        assert_eq!(w.poll_expired(ms(6)).map(|(_, p)| p), Some('c'));
        assert!(w.is_empty());
    }

    #[test]
    fn deadlines_round_up_to_the_resolution() {
        let mut w = TimerWheel::new(4, MS, Instant::ZERO);
        w.schedule(Instant::from_micros(2_500), ()).unwrap();
        assert_eq!(w.next_deadline(), Some(ms(3)));
        assert_eq!(w.advance(Instant::from_micros(2_500), |_, _| ()), 0);
        assert_eq!(w.advance(Instant::from_micros(2_999), |_, _| ()), 0);
        assert_eq!(w.advance(ms(3), |_, _| ()), 1);
    }

    #[test]
    fn cancel_before_expiry() {
        let mut w = TimerWheel::new(4, MS, Instant::ZERO);
        let a = w.schedule(ms(10), 'a').unwrap();
        let b = w.schedule(ms(10), 'b').unwrap();
        assert!(w.contains(a));
        assert_eq!(w.cancel(a), Some('a'));
        assert!(!w.contains(a));
        assert_eq!(w.len(), 1);
        assert_eq!(fire(&mut w, ms(10)), vec!['b']);
        assert_eq!(w.cancel(b), None);
    }

    #[test]
    fn cancel_after_expiry_or_twice_is_none() {
        let mut w = TimerWheel::new(4, MS, Instant::ZERO);
        let a = w.schedule(ms(1), 1).unwrap();
        let mut fired = Vec::new();
        w.advance(ms(1), |h, p| fired.push((h, p)));
        assert_eq!(fired, vec![(a, 1)]);
        assert_eq!(w.cancel(a), None);
        assert_eq!(w.reschedule(a, ms(5)), Err(StaleHandle));
        let b = w.schedule(ms(5), 2).unwrap();
        assert_eq!(w.cancel(b), Some(2));
        assert_eq!(w.cancel(b), None);
        assert!(w.is_empty());
    }

    #[test]
    fn stale_handle_does_not_touch_a_reused_entry() {
        let mut w = TimerWheel::new(1, MS, Instant::ZERO);
        let a = w.schedule(ms(1), "a").unwrap();
        assert_eq!(w.cancel(a), Some("a"));
        let b = w.schedule(ms(2), "b").unwrap();
        assert_eq!(a.index, b.index, "the one entry is reused");
        assert_eq!(w.cancel(a), None);
        assert_eq!(w.reschedule(a, ms(9)), Err(StaleHandle));
        assert_eq!(fire(&mut w, ms(2)), vec!["b"]);
        let c = w.schedule(ms(3), "c").unwrap();
        assert_eq!(w.cancel(b), None);
        assert_eq!(w.cancel(a), None);
        assert_eq!(w.cancel(c), Some("c"));
    }

    #[test]
    fn full_at_capacity_and_never_grows() {
        let mut w = TimerWheel::new(3, MS, Instant::ZERO);
        for i in 0..3 {
            w.schedule(ms(i + 1), i).unwrap();
        }
        assert_eq!(w.schedule(ms(9), 9), Err(WheelFull));
        assert_eq!(w.len(), 3);
        assert_eq!(w.capacity(), 3);
        assert_eq!(fire(&mut w, ms(1)), vec![0]);
        w.schedule(ms(9), 9).unwrap();
        assert_eq!(w.schedule(ms(9), 10), Err(WheelFull));

        let mut empty = TimerWheel::new(0, MS, Instant::ZERO);
        assert_eq!(empty.schedule(ms(1), ()), Err(WheelFull));
        assert_eq!(empty.next_deadline(), None);
    }

    #[test]
    fn past_deadlines_fire_on_the_next_advance_in_schedule_order() {
        let mut w = TimerWheel::new(8, MS, Instant::from_secs(10));
        w.schedule(ms(10_000), "now").unwrap();
        w.schedule(ms(1_000), "long ago").unwrap();
        w.schedule(ms(10_001), "later").unwrap();
        assert_eq!(w.next_deadline(), Some(Instant::from_secs(10)));
        assert_eq!(fire(&mut w, Instant::from_secs(10)), vec!["now", "long ago"]);
        // Inside a tick: 10.0005 s has been seen, so 10.0002 s is past and due, though its tick
        // (10.001 s) is not.
        assert_eq!(fire(&mut w, Instant::from_micros(10_000_500)), Vec::<&str>::new());
        w.schedule(Instant::from_micros(10_000_200), "just past").unwrap();
        assert_eq!(fire(&mut w, Instant::from_micros(10_000_500)), vec!["just past"]);
        // An earlier `now` does not take the wheel back.
        w.schedule(Instant::from_micros(10_000_400), "past again").unwrap();
        assert_eq!(fire(&mut w, Instant::ZERO), vec!["past again"]);
        assert_eq!(fire(&mut w, ms(10_001)), vec!["later"]);
    }

    #[test]
    fn big_jumps_skip_empty_time() {
        // At 1 µs a tick-by-tick walk to 2^62 µs would never finish; the bitmaps jump.
        let mut w = TimerWheel::new(8, US, Instant::ZERO);
        let hour = 3_600_000_000;
        for (i, d) in [hour, 24 * hour, 30 * 24 * hour, 1 << 61].into_iter().enumerate() {
            w.schedule(Instant::from_micros(d), i).unwrap();
        }
        assert_eq!(fire(&mut w, Instant::from_micros(1 << 62)), vec![0, 1, 2, 3]);
        // Many jumps of hours over an empty wheel, then one timer among them.
        let mut now = Instant::from_micros(1 << 62);
        for _ in 0..100_000 {
            now += Duration::from_secs(3 * 3600);
            assert_eq!(w.advance(now, |_, _| ()), 0);
        }
        w.schedule(now + Duration::from_secs(7 * 3600), 4).unwrap();
        assert_eq!(fire(&mut w, now + Duration::from_secs(6 * 3600)), Vec::<usize>::new());
        assert_eq!(fire(&mut w, now + Duration::from_secs(7 * 3600)), vec![4]);
    }

    #[test]
    fn deadlines_beyond_the_top_level() {
        // 2^36 ms is about 795 days; five years goes on the overflow list.
        let mut w = TimerWheel::new(8, MS, Instant::ZERO);
        let five_years = Instant::from_secs(5 * 365 * 86_400);
        w.schedule(five_years, "far").unwrap();
        w.schedule(ms(5), "near").unwrap();
        assert_eq!(w.next_deadline(), Some(ms(5)));
        assert_eq!(fire(&mut w, Instant::from_secs(3 * 365 * 86_400)), vec!["near"]);
        assert_eq!(w.next_deadline(), Some(five_years));
        assert_eq!(fire(&mut w, five_years - US), Vec::<&str>::new());
        assert_eq!(fire(&mut w, five_years), vec!["far"]);
        // FAR_FUTURE rounds up past the last whole tick at 1 ms; it still fires at FAR_FUTURE.
        w.schedule(Instant::FAR_FUTURE, "end of time").unwrap();
        assert_eq!(fire(&mut w, Instant::FAR_FUTURE - US), Vec::<&str>::new());
        assert_eq!(w.next_deadline(), Some(Instant::FAR_FUTURE));
        assert_eq!(fire(&mut w, Instant::FAR_FUTURE), vec!["end of time"]);
    }

    #[test]
    fn overflow_list_entered_round_before_its_bound() {
        // Time enters the next top-level round (2^36 ticks) before reaching the overflow
        // list's bound; a timer placed on a level then must not overtake the overflow timer.
        let round = 1u64 << 36;
        let mut w = TimerWheel::new(8, US, Instant::ZERO);
        w.schedule(Instant::from_micros(round + 50), 50).unwrap();
        assert_eq!(fire(&mut w, Instant::from_micros(round + 5)), Vec::<u64>::new());
        w.schedule(Instant::from_micros(round + 100), 100).unwrap();
        assert_eq!(w.next_deadline(), Some(Instant::from_micros(round + 50)));
        assert_eq!(fire(&mut w, Instant::from_micros(round + 200)), vec![50, 100]);
    }

    #[test]
    fn next_deadline_after_cancel_is_a_lower_bound_that_tightens() {
        let mut w = TimerWheel::new(8, MS, Instant::ZERO);
        // Both in one level-1 slot (3456..3520 ms): cancelling the earlier leaves its bound.
        let near = w.schedule(ms(3_490), 1).unwrap();
        w.schedule(ms(3_500), 2).unwrap();
        assert_eq!(w.next_deadline(), Some(ms(3_490)));
        w.cancel(near);
        let mut wakeups = 0;
        loop {
            let at = w.next_deadline().unwrap();
            assert!(at <= ms(3_500));
            wakeups += 1;
            if fire(&mut w, at) == vec![2] {
                assert_eq!(at, ms(3_500));
                break;
            }
        }
        assert!(wakeups <= LEVELS, "{wakeups} wake-ups");
    }

    #[test]
    fn reschedule_keeps_the_handle() {
        let mut w = TimerWheel::new(4, MS, Instant::ZERO);
        let h = w.schedule(ms(5_000), "rto").unwrap();
        w.reschedule(h, ms(200)).unwrap();
        assert_eq!(w.next_deadline(), Some(ms(200)));
        let mut fired = Vec::new();
        w.advance(ms(200), |h, p| fired.push((h, p)));
        assert_eq!(fired, vec![(h, "rto")]);
    }

    #[test]
    fn poll_expired_lets_the_caller_rearm() {
        let mut w = TimerWheel::new(4, MS, Instant::ZERO);
        w.schedule(ms(10), 0u32).unwrap();
        let mut fired = Vec::new();
        let mut now = Instant::ZERO;
        while now <= ms(100) {
            while let Some((_, n)) = w.poll_expired(now) {
                fired.push((now, n));
                // A keep-alive style timer: re-armed from its own expiry.
                w.schedule(now + Duration::from_millis(25), n + 1).unwrap();
            }
            now = w.next_deadline().unwrap();
        }
        assert_eq!(fired, vec![(ms(10), 0), (ms(35), 1), (ms(60), 2), (ms(85), 3)]);
    }

    // ---- Property test against a model ----

    #[derive(Debug, Clone)]
    enum Op {
        /// Deadline relative to the latest `now`, in µs.
        Schedule(i64),
        Cancel(usize),
        Reschedule(usize, i64),
        /// Move `now` on by this many µs.
        Advance(u64),
        /// Move `now` to `next_deadline()`, as a simulator does.
        AdvanceToNext,
    }

    fn offset() -> impl Strategy<Value = i64> {
        prop_oneof![
            -3_000i64..3_000, // around now: past, this tick, the next few
            0i64..1 << 20,    // the low levels
            0i64..1 << 50,    // the top levels and the overflow list, at any resolution used
            Just(i64::MAX),   // saturates to FAR_FUTURE
        ]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => offset().prop_map(Op::Schedule),
            2 => any::<usize>().prop_map(Op::Cancel),
            1 => (any::<usize>(), offset()).prop_map(|(i, o)| Op::Reschedule(i, o)),
            2 => prop_oneof![0u64..50, 0u64..5_000, 0u64..1 << 24, 0u64..1 << 48].prop_map(Op::Advance),
            1 => Just(Op::AdvanceToNext),
        ]
    }

    struct Timer {
        handle: TimerHandle,
        tick: u64,
        /// Already due when (re)scheduled: fires on the next advance, in `seq` order.
        overdue: bool,
        seq: u64,
    }

    fn at(now: Instant, offset: i64) -> Instant {
        if offset >= 0 {
            now + Duration::from_micros(offset as u64)
        } else {
            now - Duration::from_micros(offset.unsigned_abs())
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn matches_a_model(
            capacity in 0usize..40,
            resolution in prop_oneof![Just(1u64), Just(3), Just(1000)],
            start in prop_oneof![Just(0u64), 0u64..1 << 40],
            ops in proptest::collection::vec(op(), 1..200),
        ) {
            let mut w = TimerWheel::new(capacity, Duration::from_micros(resolution), Instant::from_micros(start));
            let mut now = Instant::from_micros(start);
            let mut live: BTreeMap<u64, Timer> = BTreeMap::new();
            let mut issued: Vec<(TimerHandle, u64)> = Vec::new();
            let mut seq = 0u64;
            let tick_of = |d: Instant| d.as_micros().div_ceil(resolution);
            for op in ops {
                let advance_to = match op {
                    Op::Schedule(off) => {
                        let deadline = at(now, off);
                        let id = seq;
                        seq += 1;
                        match w.schedule(deadline, id) {
                            Ok(handle) => {
                                prop_assert!(live.len() < capacity);
                                let overdue = deadline <= now;
                                live.insert(id, Timer { handle, tick: tick_of(deadline), overdue, seq: id });
                                issued.push((handle, id));
                            }
                            Err(WheelFull) => prop_assert_eq!(live.len(), capacity),
                        }
                        None
                    }
                    Op::Cancel(i) => {
                        if let Some(&(handle, id)) = issued.get(i % issued.len().max(1)) {
                            let expected = live.remove(&id).map(|_| id);
                            prop_assert_eq!(w.cancel(handle), expected);
                        }
                        None
                    }
                    Op::Reschedule(i, off) => {
                        if let Some(&(handle, id)) = issued.get(i % issued.len().max(1)) {
                            let deadline = at(now, off);
                            let result = w.reschedule(handle, deadline);
                            match live.get_mut(&id) {
                                Some(t) => {
                                    prop_assert_eq!(result, Ok(()));
                                    *t = Timer { handle, tick: tick_of(deadline), overdue: deadline <= now, seq };
                                    seq += 1;
                                }
                                None => prop_assert_eq!(result, Err(StaleHandle)),
                            }
                        }
                        None
                    }
                    Op::Advance(by) => Some(now + Duration::from_micros(by)),
                    Op::AdvanceToNext => w.next_deadline(),
                };
                if let Some(to) = advance_to {
                    now = now.max(to);
                    let target = if now == Instant::FAR_FUTURE { u64::MAX } else { now.as_micros() / resolution };
                    let mut fired = Vec::new();
                    w.advance(to, |h, id| fired.push((h, id)));
                    let mut expected: Vec<u64> =
                        live.iter().filter(|(_, t)| t.overdue || t.tick <= target).map(|(&id, _)| id).collect();
                    let mut got: Vec<u64> = fired.iter().map(|&(_, id)| id).collect();
                    // Overdue timers first in the order scheduled, then the rest in tick order.
                    let keys: Vec<(bool, u64)> = got
                        .iter()
                        .map(|id| {
                            let t = &live[id];
                            if t.overdue { (false, t.seq) } else { (true, t.tick) }
                        })
                        .collect();
                    prop_assert!(keys.windows(2).all(|k| k[0] <= k[1]), "out of order: {:?}", keys);
                    for &(h, id) in &fired {
                        prop_assert_eq!(h, live[&id].handle);
                    }
                    got.sort();
                    expected.sort();
                    prop_assert_eq!(got, expected);
                    for (_, id) in fired {
                        live.remove(&id);
                    }
                    // What was not due has now had its chance: nothing left is overdue.
                    for t in live.values() {
                        prop_assert!(!t.overdue);
                    }
                }
                prop_assert_eq!(w.len(), live.len());
                // next_deadline: not later than any timer's rounded deadline, and after `now`
                // unless something is overdue.
                match w.next_deadline() {
                    None => prop_assert!(live.is_empty()),
                    Some(next) => {
                        prop_assert!(!live.is_empty());
                        if live.values().any(|t| t.overdue) {
                            prop_assert_eq!(next, now);
                        } else {
                            let earliest = live.values().map(|t| t.tick).min().unwrap();
                            prop_assert!(next.as_micros() <= earliest.saturating_mul(resolution));
                            prop_assert!(next > now);
                        }
                    }
                }
            }
        }
    }
}
