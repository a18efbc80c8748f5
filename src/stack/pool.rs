//! Buffer storage of closed connections, kept for new ones, so that opening a connection
//! neither allocates nor zeroes its buffers; bounded by `StackConfig::buffer_pool_bytes`.

use crate::tcp::recovery::Seg;
use crate::tcp::{TcbBuffers, TcpConfig};
use std::collections::{HashMap, VecDeque};

#[derive(Debug, Default)]
pub(super) struct BufferPool {
    /// Send and receive buffers, by size.
    by_size: HashMap<usize, Vec<Box<[u8]>>, ahash::RandomState>,
    scoreboards: Vec<VecDeque<Seg>>,
    /// Bytes held, scoreboard entries included.
    bytes: usize,
}

impl BufferPool {
    /// Storage for a connection with settings `tcp`: from the pool when it has the sizes,
    /// else new.
    pub fn take(&mut self, tcp: &TcpConfig) -> TcbBuffers {
        let mut take = |size: usize| match self.by_size.get_mut(&size).and_then(Vec::pop) {
            Some(b) => {
                self.bytes -= size;
                b
            }
            None => vec![0u8; size].into_boxed_slice(),
        };
        let send = take(tcp.send_buffer);
        let recv = take(tcp.recv_buffer);
        let scoreboard = match self.scoreboards.pop() {
            Some(sb) => {
                self.bytes -= sb.capacity() * core::mem::size_of::<Seg>();
                sb
            }
            None => VecDeque::new(),
        };
        TcbBuffers { send, recv, scoreboard }
    }

    /// Keep a closed connection's storage, while the pool holds at most `limit` bytes.
    pub fn keep(&mut self, b: TcbBuffers, limit: usize) {
        // The scoreboard's entries (a few KiB) count against the same bound.
        let sb_bytes = b.scoreboard.capacity() * core::mem::size_of::<Seg>();
        if sb_bytes > 0 && self.bytes + sb_bytes <= limit {
            self.bytes += sb_bytes;
            self.scoreboards.push(b.scoreboard);
        }
        for buf in [b.send, b.recv] {
            let size = buf.len();
            if size > 0 && self.bytes + size <= limit {
                self.bytes += size;
                self.by_size.entry(size).or_default().push(buf);
            }
        }
    }
}
