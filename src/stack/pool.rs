//! Buffer storage of closed connections, kept for new ones, so that opening a connection
//! neither allocates nor zeroes its buffers; bounded by `StackConfig::buffer_pool_bytes`.

use crate::tcp::recovery::Seg;
use crate::tcp::{TcbBuffers, TcpConfig};
use std::collections::VecDeque;

#[derive(Debug, Default)]
pub(super) struct BufferPool {
    /// Send and receive buffers, by size: a list, looked through, since a stack's
    /// connections use a handful of sizes (a map's hashing cost more, on the path every
    /// idle connection's rings take).
    by_size: Vec<(usize, Vec<Box<[u8]>>)>,
    scoreboards: Vec<VecDeque<Seg>>,
    /// Bytes held, scoreboard entries included.
    bytes: usize,
}

impl BufferPool {
    /// Storage for a connection with settings `tcp`: from the pool when it has the sizes,
    /// else new.
    pub fn take(&mut self, tcp: &TcpConfig) -> TcbBuffers {
        let mut take = |size: usize| self.take_size(size).unwrap_or_else(|| vec![0u8; size].into_boxed_slice());
        let send = take(tcp.send_buffer);
        let recv = take(tcp.recv_buffer);
        let scoreboard = self.take_scoreboard().unwrap_or_default();
        TcbBuffers { send, recv, scoreboard }
    }

    /// One ring's storage of `size` bytes, if the pool has one.
    #[inline]
    pub fn take_size(&mut self, size: usize) -> Option<Box<[u8]>> {
        let (_, list) = self.by_size.iter_mut().find(|(s, _)| *s == size)?;
        let b = list.pop()?;
        self.bytes -= size;
        Some(b)
    }

    /// A scoreboard's entries' storage, if the pool has one.
    pub fn take_scoreboard(&mut self) -> Option<VecDeque<Seg>> {
        let sb = self.scoreboards.pop()?;
        self.bytes -= sb.capacity() * core::mem::size_of::<Seg>();
        Some(sb)
    }

    /// Keep a scoreboard's entries' storage, while the pool holds at most `limit` bytes.
    pub fn keep_scoreboard(&mut self, sb: VecDeque<Seg>, limit: usize) {
        let bytes = sb.capacity() * core::mem::size_of::<Seg>();
        if bytes > 0 && self.bytes + bytes <= limit {
            self.bytes += bytes;
            self.scoreboards.push(sb);
        }
    }

    /// Keep a closed connection's storage, while the pool holds at most `limit` bytes.
    pub fn keep(&mut self, b: TcbBuffers, limit: usize) {
        // The scoreboard's entries (a few KiB) count against the same bound.
        self.keep_scoreboard(b.scoreboard, limit);
        self.keep_ring(b.send, limit);
        self.keep_ring(b.recv, limit);
    }

    /// Keep one ring's storage, while the pool holds at most `limit` bytes.
    #[inline]
    pub fn keep_ring(&mut self, buf: Box<[u8]>, limit: usize) {
        let size = buf.len();
        if size == 0 || self.bytes + size > limit {
            return;
        }
        self.bytes += size;
        match self.by_size.iter_mut().find(|(s, _)| *s == size) {
            Some((_, list)) => list.push(buf),
            None => self.by_size.push((size, vec![buf])),
        }
    }
}
