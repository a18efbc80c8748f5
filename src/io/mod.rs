//! Devices: where frames come from and go to.
//!
//! A [`Device`] owns a pool of fixed-size frame buffers (for AF_XDP, the UMEM; for DPDK,
//! mbufs; for [`mem`], plain memory) and hands the stack [`Frame`]s: small handles naming one
//! buffer and the bytes in use. Frames move, they are not copied: a received frame is read in
//! place and given back with [`Device::recycle`]; a frame to send is taken with
//! [`Device::alloc_tx`], written in place and passed to [`Device::tx_burst`], which owns it
//! from then on. Everything is batched (habit 10): bursts in, bursts out, one flush per burst.
//!
//! Unsafe code, where a backend needs it, lives here and only here (habit 4).
//!
//! Backends: [`afxdp`] (AF_XDP sockets and our XDP program; cargo feature `afxdp`, on by
//! default); [`dpdk`] (DPDK's poll-mode drivers through a C shim; cargo feature `dpdk`).
//! [`shutdown`] turns SIGINT/SIGTERM into a flag that device loops poll.
//! [`tcloss`] drops TCP segments on a kernel interface at random (the lab has no netem).

#[cfg(feature = "afxdp")]
#[allow(unsafe_code)]
pub mod afxdp;
#[cfg(feature = "dpdk")]
#[allow(unsafe_code)]
pub mod dpdk;
#[cfg(feature = "mem")]
pub mod mem;
pub mod pcap;
pub mod pool;
#[cfg(feature = "tokio")]
#[allow(unsafe_code)]
pub mod reactor;
pub mod shutdown;
/// Random loss on a kernel interface (tc BPF), for the interop tests and the loss benchmark.
#[cfg(feature = "afxdp")]
pub mod tcloss;

use crate::wire::{MacAddr, RxChecksum};

/// A frame buffer of a device's pool, and the part of it in use (`offset..offset + len`).
///
/// Not `Clone`: a frame has one owner at a time (the device, the stack, or the application
/// holding received payload), which is what makes handing it around without copies safe.
#[derive(Debug, PartialEq, Eq)]
pub struct Frame {
    /// Which buffer of the pool.
    pub index: u32,
    /// Start of the used bytes inside the buffer (headroom before it).
    pub offset: u32,
    /// Bytes in use.
    pub len: u32,
}

/// What a device can do for the stack.
pub trait Device {
    /// Bytes in one frame buffer (the largest frame, headroom included).
    fn frame_capacity(&self) -> usize;
    /// The device's MAC address.
    fn mac(&self) -> MacAddr;
    /// How received checksums should be treated (veth leaves L4 checksums partial, for one).
    fn rx_checksum(&self) -> RxChecksum {
        RxChecksum::Verify
    }
    /// Append up to `max` received frames to `out`; returns how many.
    fn rx_burst(&mut self, out: &mut Vec<Frame>, max: usize) -> usize;
    /// The used bytes of a frame.
    fn frame(&self, f: &Frame) -> &[u8];
    /// The whole buffer of a frame, for writing (set `offset`/`len` to what was written).
    fn buffer_mut(&mut self, f: &Frame) -> &mut [u8];
    /// Give a frame back to the pool (a received frame after use, or an unsent TX frame).
    fn recycle(&mut self, f: Frame);
    /// A free frame to transmit into, or `None` when the pool is exhausted (a bound, counted
    /// by the caller).
    fn alloc_tx(&mut self) -> Option<Frame>;
    /// Queue frames for transmission, taking them from the front of `frames`; returns how many
    /// were taken (the rest stay, for the next burst, when the TX ring is full).
    fn tx_burst(&mut self, frames: &mut Vec<Frame>) -> usize;
    /// Make queued frames go (the kick of a copy-mode AF_XDP socket). One per burst.
    fn flush(&mut self) {}
    /// Transmit `f` (its used bytes) while the caller keeps owning it: zero-copy send keeps
    /// a segment's frame until the peer acknowledges it, and may send it again. Returns false
    /// when the device cannot now (not supported, TX ring full, or a layout it cannot send in
    /// place); the caller then copies into a frame from `alloc_tx`. Frames queued with
    /// `tx_burst` before this call go out before it.
    fn tx_kept(&mut self, _f: &Frame) -> bool {
        false
    }
    /// Whether a frame passed to `tx_kept` may still be read by the device: it must not be
    /// written meanwhile. `recycle` of such a frame is allowed; the device frees it later.
    fn in_flight(&self, _f: &Frame) -> bool {
        false
    }
    /// Block until frames may have arrived or `timeout` passed: the blocking mode of a loop
    /// (a busy-polling loop never calls it). The default returns at once.
    fn wait(&mut self, _timeout: crate::time::Duration) {}
    /// How the checksums of received frame `f` should be treated: by default the device's
    /// [`Device::rx_checksum`]; a device that verified them itself (DPDK's RX checksum
    /// offload flags) says so per frame.
    fn rx_checksum_of(&self, _f: &Frame) -> RxChecksum {
        self.rx_checksum()
    }
    /// Whether the device fills in TCP checksums (TX checksum offload). The stack then writes
    /// the pseudo-header's sum in the checksum field of its connections' segments
    /// ([`crate::wire::TcpRepr::emit_header_over_offloaded`]) and marks each such frame with
    /// [`Device::set_l4_partial`]; other frames keep full checksums.
    fn tx_tcp_checksum_offload(&self) -> bool {
        false
    }
    /// Frame `f` (held by the caller, about to be sent) holds a TCP segment whose checksum the
    /// device must complete. Only called when [`Device::tx_tcp_checksum_offload`] is true.
    fn set_l4_partial(&mut self, _f: &Frame) {}
    /// The backend's own counters, by name, for `--stats` lines and benchmark reports (none
    /// by default). Not for the fast path: it allocates.
    fn counters(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }
}
