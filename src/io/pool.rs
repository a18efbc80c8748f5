//! A pool of fixed-size frame buffers in plain memory, with the [`Device`](super::Device)
//! calls that only look after buffers: what the in-memory devices (the simulators' link and
//! the packetdrill interpreter's) share.

use super::Frame;

/// `frames` buffers of `frame_size` bytes, and which are free.
#[derive(Debug)]
pub struct FramePool {
    storage: Vec<u8>,
    frame_size: usize,
    free: Vec<u32>,
}

impl FramePool {
    /// A pool with every buffer free.
    pub fn new(frames: usize, frame_size: usize) -> FramePool {
        FramePool { storage: vec![0u8; frames * frame_size], frame_size, free: (0..frames as u32).rev().collect() }
    }

    /// Bytes in one buffer.
    pub fn frame_size(&self) -> usize {
        self.frame_size
    }

    /// Buffers not in use.
    pub fn free_frames(&self) -> usize {
        self.free.len()
    }

    fn range(&self, index: u32) -> core::ops::Range<usize> {
        let start = index as usize * self.frame_size;
        start..start + self.frame_size
    }

    /// The used bytes of a frame ([`Device::frame`](super::Device::frame)).
    pub fn frame(&self, f: &Frame) -> &[u8] {
        let start = self.range(f.index).start + f.offset as usize;
        &self.storage[start..start + f.len as usize]
    }

    /// The whole buffer of a frame ([`Device::buffer_mut`](super::Device::buffer_mut)).
    pub fn buffer_mut(&mut self, f: &Frame) -> &mut [u8] {
        let r = self.range(f.index);
        &mut self.storage[r]
    }

    /// Give a buffer back ([`Device::recycle`](super::Device::recycle)).
    pub fn recycle(&mut self, f: Frame) {
        debug_assert!(!self.free.contains(&f.index), "frame {} recycled twice", f.index);
        self.free.push(f.index);
    }

    /// A free buffer, empty ([`Device::alloc_tx`](super::Device::alloc_tx)).
    pub fn alloc(&mut self) -> Option<Frame> {
        self.free.pop().map(|index| Frame { index, offset: 0, len: 0 })
    }

    /// A free buffer holding `bytes` (cut to the buffer's size): a received frame. `None`
    /// when none is free.
    pub fn fill(&mut self, bytes: &[u8]) -> Option<Frame> {
        let index = self.free.pop()?;
        let len = bytes.len().min(self.frame_size);
        let start = self.range(index).start;
        self.storage[start..start + len].copy_from_slice(&bytes[..len]);
        Some(Frame { index, offset: 0, len: len as u32 })
    }
}
