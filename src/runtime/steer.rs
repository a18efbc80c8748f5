//! Software steering: every TCP flow has one owner core, and frames that arrive on another
//! core's queue are handed to the owner over a bounded lock-free ring.
//!
//! # Why
//!
//! A veth spreads flows over its queues at random (the sender's per-socket `sk_txhash`,
//! AFXDP-NOTES.md), so the queue a frame arrives on says nothing about the core that holds its
//! connection. On a NIC with RSS it does: the NIC's Toeplitz hash of the 4-tuple picks the
//! queue. The owner function here is that same hash with the same key and indirection table
//! ([`Rss::queue_of`] with `queues` = cores), and the active-open port chooser of each core's
//! stack is given the same [`Rss`] (queue = core). So on an RSS NIC nothing needs steering and
//! every core's own connections come back to it; on veth the hand-off fixes what the queue
//! choice got wrong.
//!
//! # What goes where
//!
//! * TCP to us: the owner of the 4-tuple.
//! * ICMP destination-unreachable and time-exceeded quoting one of our TCP segments: the owner
//!   of the quoted 4-tuple (RFC 1122 §4.2.3.9: they are about that connection).
//! * ARP: every core (each stack keeps its own ARP cache): the frame is kept and a copy goes to
//!   each other core.
//! * Everything else (ICMP echo, UDP, malformed frames): the core that received it; its stack
//!   answers or drops and counts.
//!
//! # Buffers
//!
//! A hand-off copies the frame out of the receiving core's device pool (an AF_XDP UMEM belongs
//! to one socket) into a buffer taken from a pool shared by the cores, allocated up front: the
//! pool and the per-core inbound rings are `crossbeam_queue::ArrayQueue`s, so the hot path
//! neither allocates nor locks. The owner gives the buffer back to the pool when its stack
//! recycles the frame. A full ring or an empty pool drops the frame and counts it (TCP
//! recovers as from any loss).
//!
//! Frames handed over are shown to the stack with [`Frame::index`] | [`HANDOFF_BIT`]; the
//! wrapper recognises them in every [`Device`] call. Every other call goes to the inner device.

use core::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use crossbeam_queue::ArrayQueue;

use crate::io::{Device, Frame};
use crate::stack::Rss;
use crate::time::Duration;
use crate::wire::toeplitz::{Toeplitz4Tuple, MICROSOFT_KEY};
use crate::wire::{
    icmpv6, EtherType, EthernetFrame, IpProtocol, Ipv4Packet, Ipv6Packet, MacAddr, RxChecksum, TcpFlags, TcpPacket,
};

/// Set in [`Frame::index`] of a frame that another core handed over (backed by a hand-off
/// buffer, not by the inner device's pool).
pub const HANDOFF_BIT: u32 = 1 << 31;

/// How long a blocking wait may sleep while other cores might hand frames over: the inner
/// device's wait only wakes for its own queue.
pub const HANDOFF_WAIT: Duration = Duration::from_millis(1);

/// How flows are assigned to cores and how much room the hand-off has.
#[derive(Debug, Clone)]
pub struct SteeringConfig {
    /// The RSS key (at least 16 bytes; 40 on most NICs). Use the NIC's, so that the owner of a
    /// flow is the core of the queue the NIC puts it on.
    pub rss_key: Vec<u8>,
    /// Entries of the NIC's indirection table (a power of two; 128 on most NICs).
    pub table_size: u32,
    /// Frames each core's inbound ring holds.
    pub ring_capacity: usize,
    /// Hand-off buffers in the shared pool, per core.
    pub buffers_per_core: usize,
    /// SYNs logged per core (their 4-tuples), to show which core handled which flow.
    pub syn_log: usize,
}

impl Default for SteeringConfig {
    /// Microsoft's key (the default of many drivers), a 128-entry table, rings of 1024 frames
    /// and 2048 buffers per core, 4096 logged SYNs.
    fn default() -> Self {
        SteeringConfig {
            rss_key: MICROSOFT_KEY.to_vec(),
            table_size: 128,
            ring_capacity: 1024,
            buffers_per_core: 2048,
            syn_log: 4096,
        }
    }
}

/// A configuration that cannot work (API misuse, refused up front).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SteeringError {
    /// No device (no core) given.
    NoCores,
    /// More cores than queue numbers (`u16`).
    TooManyCores(usize),
    /// The RSS key is shorter than the 16 bytes the 4-tuple hash needs.
    KeyTooShort(usize),
    /// The indirection table size is not a power of two (or is 0).
    BadTableSize(u32),
    /// A ring or the buffer pool would hold nothing.
    ZeroCapacity,
}

impl core::fmt::Display for SteeringError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SteeringError::NoCores => f.write_str("no core to run on"),
            SteeringError::TooManyCores(n) => write!(f, "{n} cores: at most 65535"),
            SteeringError::KeyTooShort(n) => write!(f, "RSS key of {n} bytes: at least 16 needed"),
            SteeringError::BadTableSize(n) => write!(f, "indirection table of {n} entries: not a power of two"),
            SteeringError::ZeroCapacity => f.write_str("hand-off rings and buffer pool need room for a frame"),
        }
    }
}

impl std::error::Error for SteeringError {}

/// Steering counters of one core.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SteerStats {
    /// Frames this core's own queue delivered.
    pub rx_queue: u64,
    /// Frames (and ARP copies) handed to another core.
    pub steered_out: u64,
    /// Frames other cores handed to this one.
    pub steered_in: u64,
    /// Frames dropped because the owner's ring was full.
    pub drop_ring_full: u64,
    /// Frames dropped because the hand-off pool had no buffer.
    pub drop_no_buffer: u64,
    /// Frames too long for a hand-off buffer (dropped; never expected).
    pub drop_too_long: u64,
    /// TCP segments given to this core's stack whose flow another core owns. Steering makes
    /// this 0; it is counted, not assumed, as the proof that each flow stays on one core.
    pub foreign_tcp: u64,
    /// TCP segments given to this core's stack (its own flows).
    pub own_tcp: u64,
    /// Received frames handed over that the stack then sent (copied into the inner pool).
    pub tx_handoff_copies: u64,
}

impl SteerStats {
    /// Every frame the hand-off dropped.
    pub fn drops(&self) -> u64 {
        self.drop_ring_full + self.drop_no_buffer + self.drop_too_long
    }
}

impl core::fmt::Display for SteerStats {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "rx_queue={} steered_out={} steered_in={} steer_drops={} own_tcp={} foreign_tcp={}",
            self.rx_queue,
            self.steered_out,
            self.steered_in,
            self.drops(),
            self.own_tcp,
            self.foreign_tcp
        )
    }
}

/// A frame on its way to its owner: a pool buffer and the bytes used.
#[derive(Debug)]
struct Handoff {
    buf: Box<[u8]>,
    len: u32,
}

/// What the cores share: one inbound ring per core and the buffer pool.
#[derive(Debug)]
struct Shared {
    rings: Box<[ArrayQueue<Handoff>]>,
    pool: ArrayQueue<Box<[u8]>>,
}

/// Where a received frame belongs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dest {
    /// This core's stack (and, for `Tcp`, the flow's owner is `owner`).
    Here,
    Core(usize),
    /// Every core: this one and a copy to each other one.
    All,
}

/// What the steering reads of a frame: the kind, and for TCP the flow and whether it opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FlowKind {
    /// ARP or IPv6 neighbour discovery: every core keeps its own neighbour cache.
    Arp,
    /// TCP to `local` from `remote`; `syn`: a SYN without ACK (a new flow).
    Tcp {
        local: SocketAddr,
        remote: SocketAddr,
        syn: bool,
    },
    /// An ICMP error about our segment from `local` to `remote`.
    IcmpAbout {
        local: SocketAddr,
        remote: SocketAddr,
    },
    Other,
}

/// Read just enough of an untrusted frame to steer it. Anything that does not parse is
/// `Other` (its receiving core's stack drops it and counts why). Checksums are not checked
/// here: the owner's stack does that.
fn flow_kind(bytes: &[u8]) -> FlowKind {
    let Ok(eth) = EthernetFrame::new_checked(bytes) else { return FlowKind::Other };
    match eth.ethertype() {
        EtherType::Arp => return FlowKind::Arp,
        EtherType::Ipv4 => {}
        EtherType::Ipv6 => return flow_kind_v6(eth.payload()),
        _ => return FlowKind::Other,
    }
    let Ok(ip) = Ipv4Packet::new_checked(eth.payload()) else { return FlowKind::Other };
    if ip.is_fragment() {
        return FlowKind::Other;
    }
    match ip.protocol() {
        IpProtocol::Tcp => {
            let Ok(tcp) = TcpPacket::new_checked(ip.payload()) else { return FlowKind::Other };
            let f = tcp.flags();
            FlowKind::Tcp {
                local: SocketAddr::new(ip.dst_addr().into(), tcp.dst_port()),
                remote: SocketAddr::new(ip.src_addr().into(), tcp.src_port()),
                syn: f.contains(TcpFlags::SYN) && !f.contains(TcpFlags::ACK),
            }
        }
        IpProtocol::Icmp => icmp_error_about(ip.payload()).unwrap_or(FlowKind::Other),
        _ => FlowKind::Other,
    }
}

/// RFC 792: destination unreachable (3) and time exceeded (11) carry the IP header and the
/// first 8 bytes of the datagram that caused them; for a TCP segment of ours those name the
/// connection (source = our address and port).
fn icmp_error_about(icmp: &[u8]) -> Option<FlowKind> {
    if !matches!(icmp.first()?, 3 | 11) {
        return None;
    }
    let quoted = icmp.get(8..)?;
    let ihl = (*quoted.first()? as usize & 0x0f) * 4;
    if quoted.first()? >> 4 != 4 || ihl < 20 || *quoted.get(9)? != 6 {
        return None;
    }
    let addr = |at: usize| -> Option<Ipv4Addr> {
        let b = quoted.get(at..at + 4)?;
        Some(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
    };
    let (src, dst) = (addr(12)?, addr(16)?);
    let ports = quoted.get(ihl..ihl + 4)?;
    Some(FlowKind::IcmpAbout {
        local: SocketAddr::new(src.into(), u16::from_be_bytes([ports[0], ports[1]])),
        remote: SocketAddr::new(dst.into(), u16::from_be_bytes([ports[2], ports[3]])),
    })
}

/// The same for IPv6: TCP by its flow (after any extension headers), neighbour discovery to
/// every core, ICMPv6 errors (RFC 4443: unreachable, packet too big, time exceeded) to the
/// owner of the flow they quote.
fn flow_kind_v6(packet: &[u8]) -> FlowKind {
    let Ok(ip) = Ipv6Packet::new_checked(packet) else { return FlowKind::Other };
    let Ok((proto, at)) = ip.upper_layer() else { return FlowKind::Other };
    let upper = &ip.payload()[at..];
    match proto {
        IpProtocol::Tcp => {
            let Ok(tcp) = TcpPacket::new_checked(upper) else { return FlowKind::Other };
            let f = tcp.flags();
            FlowKind::Tcp {
                local: SocketAddr::new(ip.dst_addr().into(), tcp.dst_port()),
                remote: SocketAddr::new(ip.src_addr().into(), tcp.src_port()),
                syn: f.contains(TcpFlags::SYN) && !f.contains(TcpFlags::ACK),
            }
        }
        IpProtocol::Icmpv6 => match upper.first() {
            Some(&t) if icmpv6::is_ndp(t) => FlowKind::Arp,
            Some(1..=3) => icmpv6_error_about(upper).unwrap_or(FlowKind::Other),
            _ => FlowKind::Other,
        },
        _ => FlowKind::Other,
    }
}

/// The flow an ICMPv6 error quotes (`wire::icmpv6::quoted_tcp` on its invoking packet).
fn icmpv6_error_about(icmp: &[u8]) -> Option<FlowKind> {
    let q = icmpv6::quoted_tcp(icmp.get(8..)?)?;
    Some(FlowKind::IcmpAbout {
        local: SocketAddr::new(q.src.into(), q.src_port),
        remote: SocketAddr::new(q.dst.into(), q.dst_port),
    })
}

/// The flow → core function shared by steering and port choice.
#[derive(Debug, Clone)]
pub struct FlowSteering {
    rss: Rss,
}

impl FlowSteering {
    /// The steering function for `cores` cores: the Toeplitz hash with `cfg.rss_key` and an
    /// indirection table of `cfg.table_size` entries (a power of two), entry i = i mod `cores`.
    pub fn new(cores: usize, cfg: &SteeringConfig) -> Result<FlowSteering, SteeringError> {
        if cores == 0 {
            return Err(SteeringError::NoCores);
        }
        let queues = u16::try_from(cores).map_err(|_| SteeringError::TooManyCores(cores))?;
        if cfg.rss_key.len() < 16 {
            return Err(SteeringError::KeyTooShort(cfg.rss_key.len()));
        }
        if !cfg.table_size.is_power_of_two() {
            return Err(SteeringError::BadTableSize(cfg.table_size));
        }
        let hasher = Toeplitz4Tuple::new(&cfg.rss_key);
        Ok(FlowSteering { rss: Rss { hasher, queues, queue: 0, table_size: cfg.table_size } })
    }

    /// Cores flows are spread over.
    pub fn cores(&self) -> usize {
        self.rss.queues as usize
    }

    /// The core that owns the flow of a segment arriving from `remote` to `local`: the queue
    /// an RSS NIC with this key and table puts it on.
    pub fn owner(&self, local: impl Into<SocketAddr>, remote: impl Into<SocketAddr>) -> usize {
        self.rss.queue_of(local, remote) as usize
    }

    /// What `core`'s stack needs ([`crate::stack::StackConfig::rss`]) for its active opens to
    /// pick ports whose replies this function gives back to `core`.
    pub fn rss_for(&self, core: usize) -> Rss {
        Rss { queue: core as u16, ..self.rss.clone() }
    }
}

/// Wrap one device per core (device `i` is core `i`'s queue) for steering between them.
pub fn steer<D: Device>(devices: Vec<D>, cfg: &SteeringConfig) -> Result<Vec<SteeredDevice<D>>, SteeringError> {
    let cores = devices.len();
    let steering = FlowSteering::new(cores, cfg)?;
    if cfg.ring_capacity == 0 || cfg.buffers_per_core == 0 {
        return Err(SteeringError::ZeroCapacity);
    }
    let buffer_size = devices.iter().map(Device::frame_capacity).max().unwrap_or(0);
    let total = cfg.buffers_per_core * cores;
    let pool = ArrayQueue::new(total);
    for _ in 0..total {
        let _ = pool.push(vec![0u8; buffer_size].into_boxed_slice());
    }
    let rings = (0..cores).map(|_| ArrayQueue::new(cfg.ring_capacity)).collect();
    let shared = Arc::new(Shared { rings, pool });
    Ok(devices
        .into_iter()
        .enumerate()
        .map(|(core, inner)| SteeredDevice {
            inner,
            core,
            steering: steering.clone(),
            shared: Arc::clone(&shared),
            scratch: Vec::with_capacity(256),
            held: (0..total).map(|_| None).collect(),
            held_free: (0..total as u32).rev().collect(),
            tx_tail: Vec::with_capacity(256),
            buffer_size,
            syn_log: Vec::with_capacity(cfg.syn_log),
            syn_log_cap: cfg.syn_log,
            stats: SteerStats::default(),
        })
        .collect())
}

/// One core's device, steering: see the module docs. Forwards every [`Device`] call to the
/// inner device, except for frames handed over by other cores.
#[derive(Debug)]
pub struct SteeredDevice<D> {
    inner: D,
    core: usize,
    steering: FlowSteering,
    shared: Arc<Shared>,
    /// Frames of the inner device's burst being sorted.
    scratch: Vec<Frame>,
    /// Hand-off buffers the stack holds, by slot (the frame index without `HANDOFF_BIT`).
    held: Box<[Option<Handoff>]>,
    held_free: Vec<u32>,
    /// Frames of a TX burst after one that could not be moved into the inner pool.
    tx_tail: Vec<Frame>,
    buffer_size: usize,
    /// (local, remote) of each SYN given to this core's stack, up to `syn_log_cap`.
    syn_log: Vec<(SocketAddr, SocketAddr)>,
    syn_log_cap: usize,
    stats: SteerStats,
}

impl<D: Device> SteeredDevice<D> {
    /// This device's core (its queue).
    pub fn core(&self) -> usize {
        self.core
    }
    /// The flow → core function every core's device shares.
    pub fn steering(&self) -> &FlowSteering {
        &self.steering
    }
    /// This core's steering counters so far.
    pub fn stats(&self) -> SteerStats {
        self.stats
    }
    /// (local, remote) of the SYNs this core's stack was given (the flows it handled), in
    /// order, up to the configured bound.
    pub fn syn_log(&self) -> &[(SocketAddr, SocketAddr)] {
        &self.syn_log
    }
    /// Hand-off buffers free in the shared pool (all of them when no frame is in flight).
    pub fn handoff_buffers_free(&self) -> usize {
        self.shared.pool.len()
    }
    /// The wrapped device.
    pub fn inner(&self) -> &D {
        &self.inner
    }
    /// The wrapped device, mutably.
    pub fn inner_mut(&mut self) -> &mut D {
        &mut self.inner
    }

    /// Where a frame of `kind` belongs.
    fn dest(&self, kind: FlowKind) -> Dest {
        match kind {
            FlowKind::Arp => Dest::All,
            FlowKind::Tcp { local, remote, .. } | FlowKind::IcmpAbout { local, remote } => {
                match self.steering.owner(local, remote) {
                    c if c == self.core => Dest::Here,
                    c => Dest::Core(c),
                }
            }
            FlowKind::Other => Dest::Here,
        }
    }

    /// Count what reaches this core's stack: the proof of ownership, and the SYN log.
    fn account(&mut self, kind: FlowKind) {
        if let FlowKind::Tcp { local, remote, syn } = kind {
            if self.steering.owner(local, remote) == self.core {
                self.stats.own_tcp += 1;
            } else {
                self.stats.foreign_tcp += 1;
            }
            if syn && self.syn_log.len() < self.syn_log_cap {
                self.syn_log.push((local, remote));
            }
        }
    }

    /// Copy `bytes` into a pool buffer and queue it on `core`'s ring.
    fn hand_to(shared: &Shared, stats: &mut SteerStats, core: usize, bytes: &[u8]) {
        let Some(mut buf) = shared.pool.pop() else {
            stats.drop_no_buffer += 1;
            return;
        };
        if bytes.len() > buf.len() {
            stats.drop_too_long += 1;
            let _ = shared.pool.push(buf);
            return;
        }
        buf[..bytes.len()].copy_from_slice(bytes);
        match shared.rings[core].push(Handoff { buf, len: bytes.len() as u32 }) {
            Ok(()) => stats.steered_out += 1,
            Err(h) => {
                stats.drop_ring_full += 1;
                let _ = shared.pool.push(h.buf);
            }
        }
    }

    fn held(&self, f: &Frame) -> &Handoff {
        let slot = (f.index & !HANDOFF_BIT) as usize;
        match self.held.get(slot) {
            Some(Some(h)) => h,
            _ => panic!("frame {:#x} is not a hand-off frame held by the caller", f.index),
        }
    }
}

impl<D: Device> Device for SteeredDevice<D> {
    fn frame_capacity(&self) -> usize {
        self.inner.frame_capacity()
    }

    fn mac(&self) -> MacAddr {
        self.inner.mac()
    }

    fn rx_checksum(&self) -> RxChecksum {
        self.inner.rx_checksum()
    }

    fn rx_burst(&mut self, out: &mut Vec<Frame>, max: usize) -> usize {
        let mut taken = 0;
        // Frames other cores handed over first: they already waited in a ring.
        while taken < max {
            let Some(h) = self.shared.rings[self.core].pop() else { break };
            let Some(slot) = self.held_free.pop() else {
                // Cannot happen (a slot per pool buffer); drop rather than lose the buffer.
                let _ = self.shared.pool.push(h.buf);
                continue;
            };
            let kind = flow_kind(&h.buf[..h.len as usize]);
            self.account(kind);
            let len = h.len;
            self.held[slot as usize] = Some(h);
            out.push(Frame { index: slot | HANDOFF_BIT, offset: 0, len });
            self.stats.steered_in += 1;
            taken += 1;
        }
        if taken == max {
            return taken;
        }
        let mut frames = core::mem::take(&mut self.scratch);
        self.inner.rx_burst(&mut frames, max - taken);
        for f in frames.drain(..) {
            debug_assert_eq!(f.index & HANDOFF_BIT, 0, "the inner device's frame indices must be below 2^31");
            self.stats.rx_queue += 1;
            let bytes = self.inner.frame(&f);
            let kind = flow_kind(bytes);
            match self.dest(kind) {
                Dest::Here => {}
                Dest::Core(owner) => {
                    Self::hand_to(&self.shared, &mut self.stats, owner, bytes);
                    self.inner.recycle(f);
                    continue;
                }
                Dest::All => {
                    for core in (0..self.shared.rings.len()).filter(|&c| c != self.core) {
                        Self::hand_to(&self.shared, &mut self.stats, core, bytes);
                    }
                }
            }
            self.account(kind);
            out.push(f);
            taken += 1;
        }
        self.scratch = frames;
        taken
    }

    fn frame(&self, f: &Frame) -> &[u8] {
        if f.index & HANDOFF_BIT == 0 {
            return self.inner.frame(f);
        }
        let h = self.held(f);
        let (start, end) = (f.offset as usize, f.offset as usize + f.len as usize);
        h.buf.get(start..end).unwrap_or_else(|| panic!("frame {:#x}: {start}..{end} outside its buffer", f.index))
    }

    fn buffer_mut(&mut self, f: &Frame) -> &mut [u8] {
        if f.index & HANDOFF_BIT == 0 {
            return self.inner.buffer_mut(f);
        }
        let _ = self.held(f);
        let slot = (f.index & !HANDOFF_BIT) as usize;
        let cap = self.buffer_size.min(self.inner.frame_capacity());
        match &mut self.held[slot] {
            Some(h) => &mut h.buf[..cap],
            None => unreachable!("checked by held()"),
        }
    }

    fn recycle(&mut self, f: Frame) {
        if f.index & HANDOFF_BIT == 0 {
            return self.inner.recycle(f);
        }
        let _ = self.held(&f);
        let slot = f.index & !HANDOFF_BIT;
        if let Some(h) = self.held[slot as usize].take() {
            // The pool has room for every buffer, so this cannot fail.
            let _ = self.shared.pool.push(h.buf);
        }
        self.held_free.push(slot);
    }

    fn alloc_tx(&mut self) -> Option<Frame> {
        self.inner.alloc_tx()
    }

    fn tx_burst(&mut self, frames: &mut Vec<Frame>) -> usize {
        // A received frame sent back in place: hand-off frames are not the inner device's, so
        // they are copied into one of its frames first. If its pool is empty, that frame and
        // the ones after it wait for the next burst (the contract of `tx_burst`).
        for i in 0..frames.len() {
            if frames[i].index & HANDOFF_BIT == 0 {
                continue;
            }
            let Some(mut nf) = self.inner.alloc_tx() else {
                self.tx_tail.extend(frames.drain(i..));
                break;
            };
            let (off, len) = (frames[i].offset as usize, frames[i].len as usize);
            let slot = (frames[i].index & !HANDOFF_BIT) as usize;
            let src = match self.held.get(slot) {
                Some(Some(h)) => &h.buf[off..off + len],
                _ => panic!("frame {:#x} is not a hand-off frame held by the caller", frames[i].index),
            };
            let dst = self.inner.buffer_mut(&nf);
            if dst.len() < off + len {
                // Never expected (the buffers are as large as the inner frames): drop.
                self.inner.recycle(nf);
                self.stats.drop_too_long += 1;
                let old = frames.remove(i);
                self.recycle(old);
                self.tx_tail.extend(frames.drain(i..));
                break;
            }
            dst[off..off + len].copy_from_slice(src);
            nf.offset = off as u32;
            nf.len = len as u32;
            let old = core::mem::replace(&mut frames[i], nf);
            self.recycle(old);
            self.stats.tx_handoff_copies += 1;
        }
        let n = self.inner.tx_burst(frames);
        frames.append(&mut self.tx_tail);
        n
    }

    fn flush(&mut self) {
        self.inner.flush()
    }

    fn tx_kept(&mut self, f: &Frame) -> bool {
        // Zero-copy send keeps frames from `alloc_tx`, which are the inner device's; a
        // hand-off buffer is never one (and the caller copies when refused).
        f.index & HANDOFF_BIT == 0 && self.inner.tx_kept(f)
    }

    fn in_flight(&self, f: &Frame) -> bool {
        f.index & HANDOFF_BIT == 0 && self.inner.in_flight(f)
    }

    fn counters(&self) -> Vec<(&'static str, u64)> {
        self.inner.counters()
    }

    fn tx_tcp_checksum_offload(&self) -> bool {
        self.inner.tx_tcp_checksum_offload()
    }

    fn set_l4_partial(&mut self, f: &Frame) {
        // The stack marks only frames from `alloc_tx`, the inner device's.
        debug_assert_eq!(f.index & HANDOFF_BIT, 0, "a hand-off buffer marked for checksum offload");
        self.inner.set_l4_partial(f)
    }

    fn rx_checksum_of(&self, f: &Frame) -> RxChecksum {
        // A hand-off buffer came from another core's queue: its device's verdict did not
        // travel with it.
        if f.index & HANDOFF_BIT == 0 {
            self.inner.rx_checksum_of(f)
        } else {
            self.inner.rx_checksum()
        }
    }

    fn wait(&mut self, timeout: Duration) {
        if !self.shared.rings[self.core].is_empty() {
            return;
        }
        // With other cores, a hand-off may come at any time and does not wake the inner device.
        let t = if self.shared.rings.len() > 1 { timeout.min(HANDOFF_WAIT) } else { timeout };
        self.inner.wait(t)
    }
}

#[cfg(all(test, feature = "mem"))]
mod tests {
    use super::*;
    use crate::io::mem::{Faults, MemDevice, MemLink};
    use crate::wire::{
        ArpOperation, ArpRepr, EthernetRepr, FrameRepr, Icmpv4Repr, Ipv4Repr, L4Repr, NetRepr, TcpOptions, TcpRepr,
    };
    use core::net::SocketAddrV4;

    const US: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
    const PEER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
    const MAC_US: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
    const MAC_PEER: MacAddr = MacAddr([2, 0, 0, 0, 0, 2]);
    const LOCAL: SocketAddrV4 = SocketAddrV4::new(US, 7);

    /// Two cores, each on its own in-memory "queue"; `peers[i]` sends into core i's queue.
    struct Rig {
        cores: Vec<SteeredDevice<MemDevice>>,
        peers: Vec<MemDevice>,
        _links: Vec<MemLink>,
    }

    fn rig(cfg: SteeringConfig) -> Rig {
        let (mut devs, mut peers, mut links) = (Vec::new(), Vec::new(), Vec::new());
        for seed in 0..2 {
            let (link, dev, peer) =
                MemLink::pair(seed, [Faults::default(), Faults::default()], [MAC_US, MAC_PEER], 16, 2048);
            devs.push(dev);
            peers.push(peer);
            links.push(link);
        }
        Rig { cores: steer(devs, &cfg).unwrap(), peers, _links: links }
    }

    fn send(peer: &mut MemDevice, bytes: &[u8]) {
        let mut f = peer.alloc_tx().unwrap();
        peer.buffer_mut(&f)[..bytes.len()].copy_from_slice(bytes);
        f.offset = 0;
        f.len = bytes.len() as u32;
        let mut v = vec![f];
        assert_eq!(peer.tx_burst(&mut v), 1);
        peer.flush();
    }

    fn emit(net: NetRepr<'_>, ethertype: EtherType) -> Vec<u8> {
        let repr = FrameRepr { eth: EthernetRepr { src: MAC_PEER, dst: MAC_US, ethertype }, net };
        let mut buf = vec![0u8; repr.buffer_len()];
        repr.emit(&mut buf).unwrap();
        buf
    }

    fn ip(protocol: IpProtocol, src: Ipv4Addr, dst: Ipv4Addr, payload_len: usize) -> Ipv4Repr {
        Ipv4Repr { src, dst, protocol, payload_len, ttl: 64, ident: 0, dont_frag: true, dscp_ecn: 0 }
    }

    fn tcp_frame(remote: SocketAddrV4, syn: bool) -> Vec<u8> {
        let flags = if syn { TcpFlags::SYN } else { TcpFlags::ACK };
        let seg = TcpRepr {
            src_port: remote.port(),
            dst_port: LOCAL.port(),
            seq: 1,
            ack: 0,
            flags,
            window: 1000,
            urgent: 0,
            options: TcpOptions::default(),
            payload: b"hello",
        };
        let ipr = ip(IpProtocol::Tcp, *remote.ip(), US, seg.buffer_len());
        emit(NetRepr::Ipv4 { ip: ipr, l4: L4Repr::Tcp(seg) }, EtherType::Ipv4)
    }

    /// A remote address whose flow to LOCAL is owned by `core`.
    fn remote_owned_by(s: &FlowSteering, core: usize, skip: usize) -> SocketAddrV4 {
        (40000..60000)
            .map(|p| SocketAddrV4::new(PEER, p))
            .filter(|r| s.owner(LOCAL, *r) == core)
            .nth(skip)
            .expect("some port hashes to each core")
    }

    fn rx(d: &mut SteeredDevice<MemDevice>) -> Vec<Frame> {
        let mut v = Vec::new();
        d.rx_burst(&mut v, 64);
        v
    }

    #[test]
    fn foreign_flow_is_handed_to_its_owner_and_the_buffer_comes_back() {
        let mut r = rig(SteeringConfig::default());
        let pool = r.cores[0].handoff_buffers_free();
        let remote = remote_owned_by(r.cores[0].steering(), 1, 0);
        let bytes = tcp_frame(remote, true);
        send(&mut r.peers[0], &bytes);
        assert!(rx(&mut r.cores[0]).is_empty(), "core 0 does not own the flow");
        assert_eq!(r.cores[0].stats().steered_out, 1);
        assert_eq!(r.cores[0].stats().rx_queue, 1);
        let got = rx(&mut r.cores[1]);
        assert_eq!(got.len(), 1);
        assert_ne!(got[0].index & HANDOFF_BIT, 0);
        assert_eq!(r.cores[1].frame(&got[0]), &bytes[..]);
        let st = r.cores[1].stats();
        assert_eq!((st.steered_in, st.own_tcp, st.foreign_tcp), (1, 1, 0));
        assert_eq!(r.cores[1].syn_log(), &[(LOCAL.into(), remote.into())]);
        assert_eq!(r.cores[1].handoff_buffers_free(), pool - 1);
        r.cores[1].recycle(got.into_iter().next().unwrap());
        assert_eq!(r.cores[1].handoff_buffers_free(), pool);
        // The inner frame went back to core 0's pool.
        assert_eq!(r.cores[0].inner().free_frames(), 16);
    }

    #[test]
    fn own_flow_stays_and_counts() {
        let mut r = rig(SteeringConfig::default());
        let remote = remote_owned_by(r.cores[0].steering(), 0, 0);
        send(&mut r.peers[0], &tcp_frame(remote, false));
        let got = rx(&mut r.cores[0]);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].index & HANDOFF_BIT, 0, "a local frame is the inner device's own");
        let st = r.cores[0].stats();
        assert_eq!((st.steered_out, st.own_tcp, st.foreign_tcp), (0, 1, 0));
        assert!(r.cores[0].syn_log().is_empty(), "not a SYN");
        r.cores[0].recycle(got.into_iter().next().unwrap());
        assert!(rx(&mut r.cores[1]).is_empty());
    }

    #[test]
    fn arp_goes_to_every_core() {
        let mut r = rig(SteeringConfig::default());
        let arp = ArpRepr {
            operation: ArpOperation::Request,
            source_mac: MAC_PEER,
            source_ip: PEER,
            target_mac: MacAddr::UNSPECIFIED,
            target_ip: US,
        };
        let bytes = emit(NetRepr::Arp(arp), EtherType::Arp);
        send(&mut r.peers[1], &bytes);
        let here = rx(&mut r.cores[1]);
        let there = rx(&mut r.cores[0]);
        assert_eq!((here.len(), there.len()), (1, 1));
        assert_eq!(r.cores[0].frame(&there[0]), r.cores[1].frame(&here[0]));
        assert_eq!(r.cores[1].stats().steered_out, 1);
    }

    #[test]
    fn icmp_error_follows_the_quoted_flow_and_echo_stays() {
        let mut r = rig(SteeringConfig::default());
        let remote = remote_owned_by(r.cores[0].steering(), 1, 0);
        // Our segment LOCAL -> remote, quoted in a fragmentation-needed message.
        let quoted_ports = [&LOCAL.port().to_be_bytes()[..], &remote.port().to_be_bytes()[..], &[0u8; 4]].concat();
        let icmp = Icmpv4Repr::DstUnreachable {
            reason: crate::wire::DstUnreachable::FragRequired,
            next_hop_mtu: 1280,
            header: ip(IpProtocol::Tcp, US, *remote.ip(), 40),
            data: &quoted_ports,
        };
        let ipr = ip(IpProtocol::Icmp, PEER, US, icmp.buffer_len());
        send(&mut r.peers[0], &emit(NetRepr::Ipv4 { ip: ipr, l4: L4Repr::Icmp(icmp) }, EtherType::Ipv4));
        let echo = Icmpv4Repr::EchoRequest { ident: 1, seq_no: 1, data: b"ping" };
        let ipr = ip(IpProtocol::Icmp, PEER, US, echo.buffer_len());
        send(&mut r.peers[0], &emit(NetRepr::Ipv4 { ip: ipr, l4: L4Repr::Icmp(echo) }, EtherType::Ipv4));
        assert_eq!(rx(&mut r.cores[0]).len(), 1, "the echo request is answered where it arrived");
        assert_eq!(rx(&mut r.cores[1]).len(), 1, "the error went to the flow's owner");
    }

    #[test]
    fn full_ring_and_malformed_frames_are_counted_not_fatal() {
        let mut r = rig(SteeringConfig { ring_capacity: 2, ..SteeringConfig::default() });
        for k in 0..3 {
            let remote = remote_owned_by(r.cores[0].steering(), 1, k);
            send(&mut r.peers[0], &tcp_frame(remote, false));
        }
        send(&mut r.peers[0], &[0xff; 9]); // too short for Ethernet: stays here, the stack drops it
        let here = rx(&mut r.cores[0]);
        assert_eq!(here.len(), 1);
        let st = r.cores[0].stats();
        assert_eq!((st.steered_out, st.drop_ring_full, st.drops()), (2, 1, 1));
        assert_eq!(rx(&mut r.cores[1]).len(), 2);
    }

    #[test]
    fn a_handed_over_frame_can_be_sent_back() {
        let mut r = rig(SteeringConfig::default());
        let remote = remote_owned_by(r.cores[0].steering(), 1, 0);
        let bytes = tcp_frame(remote, false);
        send(&mut r.peers[0], &bytes);
        rx(&mut r.cores[0]);
        let mut got = rx(&mut r.cores[1]);
        assert_eq!(r.cores[1].tx_burst(&mut got), 1);
        r.cores[1].flush();
        assert!(got.is_empty());
        assert_eq!(r.cores[1].stats().tx_handoff_copies, 1);
        let mut back = Vec::new();
        r.peers[1].rx_burst(&mut back, 8);
        assert_eq!(back.len(), 1);
        assert_eq!(r.peers[1].frame(&back[0]), &bytes[..]);
    }

    #[test]
    fn port_choice_and_steering_agree() {
        let s = FlowSteering::new(4, &SteeringConfig::default()).unwrap();
        for port in 32768..33768 {
            let remote = SocketAddrV4::new(PEER, port);
            let owner = s.owner(LOCAL, remote);
            for core in 0..4 {
                assert_eq!(s.rss_for(core).queue_of(LOCAL, remote) as usize == core, owner == core);
            }
        }
    }

    #[test]
    fn bad_configurations_are_refused() {
        let d = SteeringConfig::default();
        assert_eq!(FlowSteering::new(0, &d).unwrap_err(), SteeringError::NoCores);
        let short = SteeringConfig { rss_key: vec![1; 8], ..d.clone() };
        assert_eq!(FlowSteering::new(2, &short).unwrap_err(), SteeringError::KeyTooShort(8));
        let table = SteeringConfig { table_size: 100, ..d.clone() };
        assert_eq!(FlowSteering::new(2, &table).unwrap_err(), SteeringError::BadTableSize(100));
        let none: Vec<MemDevice> = Vec::new();
        assert_eq!(steer(none, &d).unwrap_err(), SteeringError::NoCores);
    }
}
