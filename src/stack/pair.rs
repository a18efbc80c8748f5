//! Two stacks joined by an in-memory link, stepped in virtual time: what the stack's tests, its
//! scale test, its benchmarks and the in-memory examples all drive.

use super::{Handle, Stack, StackConfig, StackEvent};
use crate::io::mem::{Faults, MemDevice, MemLink};
use crate::time::{Duration, Instant};
use crate::wire::MacAddr;

pub const MAC_A: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
pub const MAC_B: MacAddr = MacAddr([2, 0, 0, 0, 0, 2]);

/// Stacks `a` and `b` on the two ends of one [`MemLink`].
#[derive(Debug)]
pub struct StackPair {
    pub link: MemLink,
    pub a: Stack<MemDevice>,
    pub b: Stack<MemDevice>,
    pub now: Instant,
}

impl StackPair {
    /// `frames` buffers of 2048 bytes per side; `faults` in both directions.
    pub fn new(seed: u64, faults: Faults, ca: StackConfig, cb: StackConfig, frames: usize) -> StackPair {
        let (link, da, db) = MemLink::pair(seed, [faults.clone(), faults], [MAC_A, MAC_B], frames, 2048);
        let now = Instant::from_secs(1);
        link.set_now(now);
        StackPair { a: Stack::new(da, ca, now), b: Stack::new(db, cb, now), link, now }
    }

    /// Poll both stacks once, then move time to the next thing due (staying at `now` while an
    /// application call left output pending). Returns the events of this step.
    pub fn step(&mut self, events: &mut Vec<(char, Handle, StackEvent)>) {
        let na = self.a.poll(self.now);
        let nb = self.b.poll(self.now);
        while let Some((h, e)) = self.a.poll_event() {
            events.push(('a', h, e));
        }
        while let Some((h, e)) = self.b.poll_event() {
            events.push(('b', h, e));
        }
        let busy = self.a.has_pending_output() || self.b.has_pending_output();
        let next = [na, nb, self.link.next_arrival()].into_iter().flatten().min();
        self.now = match next {
            _ if busy => self.now,
            Some(t) if t > self.now => t,
            _ => self.now + Duration::from_micros(10),
        };
        self.link.set_now(self.now);
    }
}
