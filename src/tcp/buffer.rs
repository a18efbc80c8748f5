//! A fixed-capacity byte ring, allocated once: the send buffer (bytes from SND.UNA on, sent or
//! not) and the receive buffer (in-order bytes the application has not read, with room after
//! them where out-of-order segments are parked until the gap fills). An empty ring may give
//! its storage up ([`RingBuffer::detach`]) and keep its capacity: it takes storage back
//! before it next holds a byte ([`RingBuffer::attach`]), or allocates it then.

/// A ring of bytes with a fixed capacity.
#[derive(Debug)]
pub struct RingBuffer {
    /// `cap` bytes, or none while detached.
    storage: Box<[u8]>,
    /// Most bytes the ring holds, with storage or without.
    cap: usize,
    /// Index of the first byte.
    head: usize,
    /// Bytes held (from `head`).
    len: usize,
}

impl RingBuffer {
    /// A ring of `capacity` bytes, allocated and zeroed now.
    pub fn new(capacity: usize) -> RingBuffer {
        RingBuffer { storage: vec![0u8; capacity].into_boxed_slice(), cap: capacity, head: 0, len: 0 }
    }
    /// A ring over storage that was used before (its old bytes are never read: only what is
    /// pushed or written is).
    pub fn from_storage(storage: Box<[u8]>) -> RingBuffer {
        let cap = storage.len();
        RingBuffer { storage, cap, head: 0, len: 0 }
    }
    /// The storage, for reuse (empty while detached).
    pub fn into_storage(self) -> Box<[u8]> {
        self.storage
    }
    /// Give up the storage of an empty ring with nothing written past its end (the caller
    /// knows: no out-of-order bytes parked), keeping its capacity. `None` when it holds
    /// bytes or has no storage.
    #[inline]
    pub fn detach(&mut self) -> Option<Box<[u8]>> {
        if self.len != 0 || self.storage.is_empty() {
            return None;
        }
        self.head = 0;
        Some(core::mem::take(&mut self.storage))
    }
    /// Whether the ring has given up its storage (and will take storage of `capacity()` bytes).
    #[inline]
    pub fn is_detached(&self) -> bool {
        self.storage.is_empty() && self.cap > 0
    }
    /// Take storage back after [`RingBuffer::detach`]: it must be `capacity()` bytes, else
    /// (or when the ring has storage) it is handed back.
    pub fn attach(&mut self, storage: Box<[u8]>) -> Result<(), Box<[u8]>> {
        if !self.is_detached() || storage.len() != self.cap {
            return Err(storage);
        }
        self.storage = storage;
        Ok(())
    }
    /// Storage for a detached ring about to be written that nobody attached: allocated now.
    #[inline]
    fn storage_for_write(&mut self) {
        if self.is_detached() {
            self.storage = vec![0u8; self.cap].into_boxed_slice();
            self.head = 0;
        }
    }
    /// Most bytes the ring holds.
    pub fn capacity(&self) -> usize {
        self.cap
    }
    /// Bytes held.
    pub fn len(&self) -> usize {
        self.len
    }
    /// Whether no byte is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Move the held bytes into a larger storage (laid out from its start). The send buffer
    /// grows so (`TcpConfig::send_buffer_max`); offsets into the held bytes stay valid, bytes
    /// written after the end and not committed are not kept. A detached ring only grows its
    /// capacity.
    pub fn grow(&mut self, capacity: usize) {
        if capacity <= self.capacity() {
            return;
        }
        if self.is_detached() {
            self.cap = capacity;
            return;
        }
        let mut storage = vec![0u8; capacity].into_boxed_slice();
        let (a, b) = self.slices(0, self.len);
        storage[..a.len()].copy_from_slice(a);
        storage[a.len()..a.len() + b.len()].copy_from_slice(b);
        self.storage = storage;
        self.cap = capacity;
        self.head = 0;
    }
    /// Room after the held bytes.
    pub fn free(&self) -> usize {
        self.capacity() - self.len
    }

    /// The two slices of storage starting `offset` bytes after the end of the held bytes and
    /// running `len` bytes (wrapping); `offset + len` must not exceed `free()`.
    fn after_end_mut(&mut self, offset: usize, len: usize) -> (&mut [u8], &mut [u8]) {
        debug_assert!(offset + len <= self.free());
        let cap = self.capacity();
        if cap == 0 || len == 0 {
            return (&mut [], &mut []);
        }
        self.storage_for_write();
        let start = (self.head + self.len + offset) % cap;
        let first = len.min(cap - start);
        let (a, b) = self.storage.split_at_mut(start);
        (&mut b[..first], &mut a[..len - first])
    }

    /// Append as much of `data` as fits; returns how much.
    pub fn push(&mut self, data: &[u8]) -> usize {
        let n = data.len().min(self.free());
        self.write_after_end(0, &data[..n]);
        self.len += n;
        n
    }

    /// Write `data` at `offset` bytes past the end without taking it into the held bytes (an
    /// out-of-order segment); what does not fit in `free()` is cut off. Returns bytes written.
    pub fn write_after_end(&mut self, offset: usize, data: &[u8]) -> usize {
        if offset >= self.free() {
            return 0;
        }
        let n = data.len().min(self.free() - offset);
        let (a, b) = self.after_end_mut(offset, n);
        let split = a.len();
        a.copy_from_slice(&data[..split]);
        b.copy_from_slice(&data[split..n]);
        n
    }

    /// Take `n` bytes already written past the end (by `write_after_end`) into the held bytes.
    pub fn commit(&mut self, n: usize) {
        debug_assert!(n <= self.free());
        self.len += n.min(self.free());
    }

    /// Copy held bytes starting at `offset` into `out`, without consuming them.
    pub fn peek(&self, offset: usize, out: &mut [u8]) -> usize {
        if offset >= self.len {
            return 0;
        }
        let n = out.len().min(self.len - offset);
        let cap = self.capacity();
        let start = (self.head + offset) % cap;
        let first = n.min(cap - start);
        out[..first].copy_from_slice(&self.storage[start..start + first]);
        out[first..n].copy_from_slice(&self.storage[..n - first]);
        n
    }

    /// Held bytes `offset..offset + len` in place: two slices, as the ring wraps (the second
    /// may be empty). Clamped to what is held.
    pub fn slices(&self, offset: usize, len: usize) -> (&[u8], &[u8]) {
        if offset >= self.len {
            return (&[], &[]);
        }
        let n = len.min(self.len - offset);
        let cap = self.capacity();
        let start = (self.head + offset) % cap;
        let first = n.min(cap - start);
        (&self.storage[start..start + first], &self.storage[..n - first])
    }

    /// Copy out and consume up to `out.len()` bytes from the front.
    pub fn pop(&mut self, out: &mut [u8]) -> usize {
        let n = self.peek(0, out);
        self.discard(n);
        n
    }

    /// Drop `n` bytes from the front (acknowledged data).
    pub fn discard(&mut self, n: usize) {
        let n = n.min(self.len);
        if self.capacity() > 0 {
            self.head = (self.head + n) % self.capacity();
        }
        // `head` is not reset when the ring empties: out-of-order bytes parked past the end
        // must stay where they were written.
        self.len -= n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::VecDeque;

    #[test]
    fn out_of_order_then_commit() {
        let mut r = RingBuffer::new(8);
        assert_eq!(r.push(b"ab"), 2);
        assert_eq!(r.write_after_end(2, b"ef"), 2); // bytes 4..6
        assert_eq!(r.write_after_end(0, b"cd"), 2); // fills the gap
        r.commit(4);
        let mut out = [0u8; 8];
        assert_eq!(r.pop(&mut out), 6);
        assert_eq!(&out[..6], b"abcdef");
        assert_eq!(r.write_after_end(7, b"xyz"), 1, "cut at capacity");
    }

    proptest! {
        #[test]
        fn behaves_like_a_deque(ops in proptest::collection::vec((0u8..5, 0usize..20), 0..100)) {
            let mut r = RingBuffer::new(16);
            let mut model: VecDeque<u8> = VecDeque::new();
            let mut next = 0u8;
            for (op, n) in ops {
                match op {
                    0 => {
                        let data: Vec<u8> = (0..n).map(|_| { next = next.wrapping_add(1); next }).collect();
                        let took = r.push(&data);
                        prop_assert_eq!(took, n.min(r.capacity() - model.len()));
                        model.extend(&data[..took]);
                    }
                    // An empty ring gives its storage up and takes it (or another) back,
                    // or allocates anew when written while detached; nothing changes.
                    4 if model.is_empty() => {
                        if let Some(st) = r.detach() {
                            prop_assert!(r.is_detached());
                            prop_assert_eq!(st.len(), r.capacity());
                            if n % 2 == 0 {
                                prop_assert!(r.attach(st).is_ok());
                            }
                        }
                    }
                    4 => prop_assert!(r.detach().is_none(), "a ring holding bytes keeps its storage"),
                    // Growing keeps the bytes, wrapped or not (the send buffer's autotuning).
                    3 => {
                        let cap = r.capacity() + n;
                        r.grow(cap);
                        prop_assert_eq!(r.capacity(), cap);
                    }
                    1 => {
                        let mut out = vec![0u8; n];
                        let got = r.pop(&mut out);
                        let want: Vec<u8> = model.drain(..n.min(model.len())).collect();
                        prop_assert_eq!(&out[..got], &want[..]);
                    }
                    _ => {
                        let mut out = vec![0u8; 5];
                        let got = r.peek(n, &mut out);
                        let want: Vec<u8> = model.iter().skip(n).take(5).copied().collect();
                        prop_assert_eq!(&out[..got], &want[..]);
                        // The in-place view shows the same bytes.
                        let (a, b) = r.slices(n, 5);
                        prop_assert_eq!([a, b].concat(), want);
                    }
                }
                prop_assert_eq!(r.len(), model.len());
            }
        }
    }
}
