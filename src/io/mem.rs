//! An in-memory link: two [`MemDevice`]s joined by a wire with seeded faults (loss,
//! duplication, reordering, delay and jitter, corruption) — the simulator's link, for whole
//! stacks. Single-threaded and deterministic: time is whatever [`MemLink::set_now`] says, and
//! every fault comes from a seeded generator, so a run replays from its seed.
//!
//! Each device has its own pool of frame buffers, allocated up front. "Receiving" copies the
//! bytes off the wire into a pool frame, as a NIC's DMA would; transmitting copies them onto
//! the wire and returns the frame to the pool.

use super::pool::FramePool;
use super::{Device, Frame};
use crate::time::{Duration, Instant};
use crate::wire::MacAddr;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::cell::RefCell;
use std::collections::BinaryHeap;
use std::rc::Rc;

/// Impairments of the wire, per direction.
#[derive(Debug, Clone, PartialEq)]
pub struct Faults {
    /// Probability that a frame is dropped.
    pub loss: f64,
    /// Probability that a frame arrives twice.
    pub duplicate: f64,
    /// Probability that a frame is held back by `reorder_delay` (and so overtaken).
    pub reorder: f64,
    /// How much later a reordered frame arrives.
    pub reorder_delay: Duration,
    /// Probability that one byte of a frame is flipped (ARP frames excepted).
    pub corrupt: f64,
    /// One-way delay of every frame.
    pub delay: Duration,
    /// Extra delay, drawn uniformly from zero to this, per frame.
    pub jitter: Duration,
    /// Frames in flight per direction before the wire drops (a queue bound).
    pub capacity: usize,
    /// Probability that an ECN-capable IPv4 frame (ECT(0) or ECT(1)) is marked Congestion
    /// Experienced, as a congested router would (RFC 3168 §5).
    pub ce_mark: f64,
}

impl Faults {
    /// No loss, duplication, reordering, corruption, delay, jitter or marking: a frame
    /// arrives at once, intact, unless the queue is full.
    pub fn is_perfect(&self) -> bool {
        self.loss <= 0.0
            && self.duplicate <= 0.0
            && self.reorder <= 0.0
            && self.corrupt <= 0.0
            && self.ce_mark <= 0.0
            && self.delay.is_zero()
            && self.jitter.is_zero()
    }
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_delay: Duration::from_millis(5),
            corrupt: 0.0,
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            capacity: 65536,
            ce_mark: 0.0,
        }
    }
}

/// What happened on the wire (both directions).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WireStats {
    /// Frames sent onto the wire (before any fault).
    pub sent: u64,
    /// Frames the receiving device took off the wire when they were due (including those then
    /// dropped for want of a free frame, counted in `overflowed` too).
    pub delivered: u64,
    /// Frames dropped by `loss`.
    pub lost: u64,
    /// Frames sent twice by `duplicate`.
    pub duplicated: u64,
    /// Frames with a byte flipped by `corrupt`.
    pub corrupted: u64,
    /// Frames dropped because the direction held `capacity` frames, or the receiving device had no
    /// free frame.
    pub overflowed: u64,
    /// ECN-capable IPv4 frames marked Congestion Experienced by `ce_mark`.
    pub ce_marked: u64,
}

/// Items in flight, each due at a time, handed out in time order (ties in the order they
/// were put in): the wire's queues, and the TCB simulator's link.
#[derive(Debug)]
pub struct DelayQueue<T> {
    heap: BinaryHeap<Due<T>>,
    order: u64,
}

#[derive(Debug)]
struct Due<T> {
    at: Instant,
    order: u64,
    item: T,
}

impl<T> PartialEq for Due<T> {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.order) == (o.at, o.order)
    }
}
impl<T> Eq for Due<T> {}
impl<T> PartialOrd for Due<T> {
    fn partial_cmp(&self, o: &Self) -> Option<core::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl<T> Ord for Due<T> {
    fn cmp(&self, o: &Self) -> core::cmp::Ordering {
        (o.at, o.order).cmp(&(self.at, self.order)) // earliest first in a max-heap
    }
}

impl<T> Default for DelayQueue<T> {
    fn default() -> Self {
        DelayQueue { heap: BinaryHeap::new(), order: 0 }
    }
}

impl<T> DelayQueue<T> {
    /// Put `item` in, due at `at`.
    pub fn push(&mut self, at: Instant, item: T) {
        self.order += 1;
        self.heap.push(Due { at, order: self.order, item });
    }
    /// The earliest item if it is due at `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<T> {
        if self.heap.peek()?.at <= now {
            self.heap.pop().map(|d| d.item)
        } else {
            None
        }
    }
    /// When the earliest item is due.
    pub fn next_at(&self) -> Option<Instant> {
        self.heap.peek().map(|d| d.at)
    }
    /// Items in the queue, due or not.
    pub fn len(&self) -> usize {
        self.heap.len()
    }
    /// Whether the queue holds no item.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

struct Wire {
    now: Instant,
    rng: ChaCha8Rng,
    faults: [Faults; 2],
    /// Frames travelling towards device 0 and device 1.
    queues: [DelayQueue<Vec<u8>>; 2],
    stats: WireStats,
    /// Byte buffers of delivered frames, reused for the next ones: after warm-up the wire
    /// allocates nothing, so allocation counts measure the stack alone.
    spare: Vec<Vec<u8>>,
}

impl Wire {
    fn buffer_with(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut b = self.spare.pop().unwrap_or_default();
        b.clear();
        b.extend_from_slice(bytes);
        b
    }

    /// A frame sent by device `from` onto the wire.
    fn send(&mut self, from: usize, bytes: &[u8]) {
        let to = 1 - from;
        self.stats.sent += 1;
        // A perfect link both ways (no fault can happen, in either direction): no random draw
        // either, so that benchmarks over it (bench/benches/ir_echo.rs) count the stack, not
        // the fault model. Only when both directions are perfect, so that a run with faults
        // one way draws exactly as before and its seeds replay.
        if self.faults.iter().all(Faults::is_perfect) {
            if self.queues[to].len() >= self.faults[from].capacity {
                self.stats.overflowed += 1;
                return;
            }
            let b = self.buffer_with(bytes);
            let at = self.now;
            self.queues[to].push(at, b);
            return;
        }
        let f = self.faults[from].clone();
        if self.rng.random_bool(f.loss.clamp(0.0, 1.0)) {
            self.stats.lost += 1;
            return;
        }
        let copies = if self.rng.random_bool(f.duplicate.clamp(0.0, 1.0)) {
            self.stats.duplicated += 1;
            2
        } else {
            1
        };
        for _ in 0..copies {
            if self.queues[to].len() >= f.capacity {
                self.stats.overflowed += 1;
                continue;
            }
            let mut b = self.buffer_with(bytes);
            // Corruption stands for errors that escape the Ethernet FCS and only IPv4/TCP
            // checksums catch. ARP has no checksum of its own: a corrupted reply would teach a
            // wrong address for a whole cache lifetime, a hazard the FCS makes negligible on a
            // real link, so ARP frames are left intact (the draw is made anyway, so seeds replay).
            let is_arp = b.get(12..14) == Some(&[0x08, 0x06][..]);
            if !b.is_empty() && self.rng.random_bool(f.corrupt.clamp(0.0, 1.0)) && !is_arp {
                let at = self.rng.random_range(0..b.len());
                b[at] ^= self.rng.random_range(1..=255u8);
                self.stats.corrupted += 1;
            }
            // (No draw unless marking is on, so that seeds without it replay as before.)
            if f.ce_mark > 0.0 && self.rng.random_bool(f.ce_mark.clamp(0.0, 1.0)) && mark_ce(&mut b) {
                self.stats.ce_marked += 1;
            }
            let mut at = self.now + f.delay;
            if !f.jitter.is_zero() {
                at += Duration::from_micros(self.rng.random_range(0..=f.jitter.as_micros() as u64));
            }
            if self.rng.random_bool(f.reorder.clamp(0.0, 1.0)) {
                at += f.reorder_delay;
            }
            self.queues[to].push(at, b);
        }
    }
}

/// Mark an ECN-capable IPv4 frame CE; false if it is not one.
fn mark_ce(frame: &mut [u8]) -> bool {
    if frame.get(12..14) != Some(&[0x08, 0x00][..]) {
        return false;
    }
    let Ok(mut ip) = crate::wire::Ipv4Packet::new_checked(&mut frame[14..]) else { return false };
    let tos = ip.dscp_ecn();
    if tos & 0b11 == 0 {
        return false; // Not-ECT: a router would drop rather than mark
    }
    ip.set_dscp_ecn_incremental(tos | 0b11);
    true
}

/// The shared wire of a device pair; the test or simulator drives its clock.
#[derive(Clone)]
pub struct MemLink {
    wire: Rc<RefCell<Wire>>,
}

impl core::fmt::Debug for MemLink {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("MemLink").field("stats", &self.stats()).finish()
    }
}

impl MemLink {
    /// Two devices joined by a wire with the given faults in each direction (`faults[0]`:
    /// frames device 0 sends).
    pub fn pair(
        seed: u64,
        faults: [Faults; 2],
        macs: [MacAddr; 2],
        frames: usize,
        frame_size: usize,
    ) -> (MemLink, MemDevice, MemDevice) {
        let wire = Rc::new(RefCell::new(Wire {
            now: Instant::ZERO,
            rng: ChaCha8Rng::seed_from_u64(seed),
            faults,
            queues: [DelayQueue::default(), DelayQueue::default()],
            stats: WireStats::default(),
            spare: Vec::new(),
        }));
        let link = MemLink { wire };
        let a = MemDevice::new(link.clone(), 0, macs[0], frames, frame_size);
        let b = MemDevice::new(link.clone(), 1, macs[1], frames, frame_size);
        (link, a, b)
    }

    /// Set the wire's clock: frames due at or before `now` can be received.
    pub fn set_now(&self, now: Instant) {
        self.wire.borrow_mut().now = now;
    }

    /// The wire's clock.
    pub fn now(&self) -> Instant {
        self.wire.borrow().now
    }

    /// Change the faults of frames sent by device `from`.
    pub fn set_faults(&self, from: usize, faults: Faults) {
        self.wire.borrow_mut().faults[from] = faults;
    }

    /// When the next frame in flight arrives, if any.
    pub fn next_arrival(&self) -> Option<Instant> {
        let w = self.wire.borrow();
        w.queues.iter().filter_map(|q| q.next_at()).min()
    }

    /// Frames on the wire, both directions.
    pub fn in_flight(&self) -> usize {
        let w = self.wire.borrow();
        w.queues.iter().map(|q| q.len()).sum()
    }

    /// What happened on the wire so far.
    pub fn stats(&self) -> WireStats {
        self.wire.borrow().stats
    }
}

/// One end of a [`MemLink`].
pub struct MemDevice {
    link: MemLink,
    side: usize,
    mac: MacAddr,
    pool: FramePool,
}

impl core::fmt::Debug for MemDevice {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("MemDevice").field("side", &self.side).field("free_frames", &self.pool.free_frames()).finish()
    }
}

impl MemDevice {
    fn new(link: MemLink, side: usize, mac: MacAddr, frames: usize, frame_size: usize) -> MemDevice {
        MemDevice { link, side, mac, pool: FramePool::new(frames, frame_size) }
    }

    /// Frames of the pool not in use (by the stack or the application).
    pub fn free_frames(&self) -> usize {
        self.pool.free_frames()
    }
}

impl Device for MemDevice {
    fn frame_capacity(&self) -> usize {
        self.pool.frame_size()
    }

    fn mac(&self) -> MacAddr {
        self.mac
    }

    fn rx_burst(&mut self, out: &mut Vec<Frame>, max: usize) -> usize {
        let mut n = 0;
        while n < max {
            let bytes = {
                let mut w = self.link.wire.borrow_mut();
                let now = w.now;
                let Some(bytes) = w.queues[self.side].pop_due(now) else { break };
                w.stats.delivered += 1;
                bytes
            };
            // No free frame: the NIC would drop it (fill ring empty). Counted on the wire.
            let Some(frame) = self.pool.fill(&bytes) else {
                let mut w = self.link.wire.borrow_mut();
                w.stats.overflowed += 1;
                w.spare.push(bytes);
                continue;
            };
            self.link.wire.borrow_mut().spare.push(bytes);
            out.push(frame);
            n += 1;
        }
        n
    }

    fn frame(&self, f: &Frame) -> &[u8] {
        self.pool.frame(f)
    }

    fn buffer_mut(&mut self, f: &Frame) -> &mut [u8] {
        self.pool.buffer_mut(f)
    }

    fn recycle(&mut self, f: Frame) {
        self.pool.recycle(f);
    }

    fn alloc_tx(&mut self) -> Option<Frame> {
        self.pool.alloc()
    }

    fn tx_burst(&mut self, frames: &mut Vec<Frame>) -> usize {
        let n = frames.len();
        for f in frames.drain(..) {
            self.link.wire.borrow_mut().send(self.side, self.pool.frame(&f));
            self.pool.recycle(f);
        }
        n
    }

    fn tx_kept(&mut self, f: &Frame) -> bool {
        // The wire copies at once: the frame is never in flight.
        self.link.wire.borrow_mut().send(self.side, self.pool.frame(f));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(faults: Faults) -> (MemLink, MemDevice, MemDevice) {
        MemLink::pair(7, [faults.clone(), faults], [MacAddr([2, 0, 0, 0, 0, 1]), MacAddr([2, 0, 0, 0, 0, 2])], 8, 256)
    }

    fn send(d: &mut MemDevice, payload: &[u8]) {
        let f = d.alloc_tx().unwrap();
        d.buffer_mut(&f)[..payload.len()].copy_from_slice(payload);
        let mut v = vec![Frame { len: payload.len() as u32, ..f }];
        assert_eq!(d.tx_burst(&mut v), 1);
    }

    #[test]
    fn frames_cross_after_the_delay_and_pool_is_bounded() {
        let (link, mut a, mut b) = pair(Faults { delay: Duration::from_millis(1), ..Faults::default() });
        send(&mut a, b"hello");
        let mut rx = Vec::new();
        assert_eq!(b.rx_burst(&mut rx, 64), 0, "not before the delay");
        link.set_now(Instant::from_millis(1));
        assert_eq!(b.rx_burst(&mut rx, 64), 1);
        assert_eq!(b.frame(&rx[0]), b"hello");
        assert_eq!(b.free_frames(), 7);
        b.recycle(rx.pop().unwrap());
        assert_eq!(b.free_frames(), 8);
        // A full pool drops what arrives (a NIC with an empty fill ring).
        let held: Vec<_> = (0..8).map(|_| b.alloc_tx().unwrap()).collect();
        send(&mut a, b"x");
        link.set_now(Instant::from_millis(2));
        assert_eq!(b.rx_burst(&mut rx, 64), 0);
        assert_eq!(link.stats().overflowed, 1);
        drop(held);
    }

    #[test]
    fn loss_and_duplication_are_seeded() {
        let (link, mut a, mut b) = pair(Faults { loss: 0.5, duplicate: 0.2, ..Faults::default() });
        for _ in 0..200 {
            send(&mut a, b"p");
            let mut rx = Vec::new();
            b.rx_burst(&mut rx, 64);
            for f in rx {
                b.recycle(f);
            }
        }
        let s = link.stats();
        assert_eq!(s.sent, 200);
        assert!(s.lost > 60 && s.lost < 140, "{s:?}");
        assert!(s.duplicated > 0);
        assert_eq!(s.delivered, 200 - s.lost + s.duplicated);
    }
}
