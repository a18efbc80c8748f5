//! Sockets' slots and handles, the end of a connection, the buffer pool, and the queues of
//! connections to flush and to report.

use super::*;

impl<D: Device> Stack<D> {
    pub(super) fn on_closed(&mut self, idx: u32) {
        let (key, timer, listener, opened) = {
            let c = self.conn(idx);
            (c.key, c.timer, c.listener, c.opened)
        };
        if let Some(t) = timer {
            self.timers.cancel(t);
        }
        self.table.remove(&key);
        let st = *self.conn(idx).tcb.stats();
        self.counters.add_tcb(&st);
        let c = self.conn_mut(idx);
        c.timer = None;
        c.deadline = None;
        // What ended it: peek without consuming (the application still gets the event).
        let failed = !opened;
        if failed {
            self.counters.tcp_failed_opens += 1;
        }
        if let Some(l) = listener {
            // Never accepted: nobody to tell; drop it from the listener's queues.
            if let Entry::Listener(lst) = &mut self.slots[l as usize].entry {
                if opened {
                    lst.accept_queue.retain(|&c| c != idx);
                } else {
                    lst.syn_pending = lst.syn_pending.saturating_sub(1);
                }
            }
            self.free_slot(idx);
            return;
        }
        self.mark_ready(idx);
    }

    pub(super) fn handle(&self, idx: u32) -> Handle {
        Handle { idx, gen: self.slots[idx as usize].gen, _core_local: PhantomData }
    }

    pub(super) fn check(&self, h: Handle) -> Result<u32, StackError> {
        match self.slots.get(h.idx as usize) {
            Some(s) if s.gen == h.gen && !matches!(s.entry, Entry::Free) => Ok(h.idx),
            _ => Err(StackError::InvalidHandle),
        }
    }

    pub(super) fn conn_idx(&self, h: Handle) -> Result<u32, StackError> {
        let idx = self.check(h)?;
        match &self.slots[idx as usize].entry {
            Entry::Conn(c) if !c.closed_reported => Ok(idx),
            Entry::Conn(_) => Err(StackError::InvalidHandle),
            Entry::Listener(_) => Err(StackError::IsListener),
            Entry::Free => Err(StackError::InvalidHandle),
        }
    }

    pub(super) fn conn(&self, idx: u32) -> &Conn {
        match &self.slots[idx as usize].entry {
            Entry::Conn(c) => c,
            _ => panic!("slot {idx} is not a connection"),
        }
    }

    pub(super) fn conn_mut(&mut self, idx: u32) -> &mut Conn {
        match &mut self.slots[idx as usize].entry {
            Entry::Conn(c) => c,
            _ => panic!("slot {idx} is not a connection"),
        }
    }

    /// Buffer storage for a new connection: from the pool when it has the sizes, else new.
    pub(super) fn take_buffers(&mut self, tcp: &TcpConfig) -> TcbBuffers {
        let mut take = |size: usize| match self.buffer_pool.get_mut(&size).and_then(Vec::pop) {
            Some(b) => {
                self.buffer_pool_bytes -= size;
                b
            }
            None => vec![0u8; size].into_boxed_slice(),
        };
        let send = take(tcp.send_buffer);
        let recv = take(tcp.recv_buffer);
        let scoreboard = match self.scoreboard_pool.pop() {
            Some(sb) => {
                self.buffer_pool_bytes -= sb.capacity() * core::mem::size_of::<crate::tcp::recovery::Seg>();
                sb
            }
            None => VecDeque::new(),
        };
        TcbBuffers { send, recv, scoreboard }
    }

    /// Keep a closed connection's buffer storage for the next, up to `buffer_pool_bytes`.
    pub(super) fn keep_buffers(&mut self, b: TcbBuffers) {
        // The scoreboard's entries (a few KiB) count against the same bound.
        let sb_bytes = b.scoreboard.capacity() * core::mem::size_of::<crate::tcp::recovery::Seg>();
        if sb_bytes > 0 && self.buffer_pool_bytes + sb_bytes <= self.cfg.buffer_pool_bytes {
            self.buffer_pool_bytes += sb_bytes;
            self.scoreboard_pool.push(b.scoreboard);
        }
        for buf in [b.send, b.recv] {
            let size = buf.len();
            if size > 0 && self.buffer_pool_bytes + size <= self.cfg.buffer_pool_bytes {
                self.buffer_pool_bytes += size;
                self.buffer_pool.entry(size).or_default().push(buf);
            }
        }
    }

    pub(super) fn alloc_slot(&mut self) -> Result<u32, StackError> {
        self.free.pop().ok_or(StackError::TooManySockets)
    }

    pub(super) fn free_slot(&mut self, idx: u32) {
        let s = &mut self.slots[idx as usize];
        if let Entry::Conn(c) = core::mem::replace(&mut s.entry, Entry::Free) {
            // Frames the connection still held go back to the device.
            let c = *c;
            self.keep_buffers(c.tcb.into_buffers());
            for chunk in c.rxq {
                if let RxChunk::InFrame(f) = chunk {
                    self.dev.recycle(f);
                    self.rx_frames_held -= 1;
                }
            }
            for ch in c.txq {
                self.dev.recycle(ch.frame);
                self.tx_frames_held -= 1;
            }
            self.tx_waiters.retain(|&w| w != idx);
        }
        let s = &mut self.slots[idx as usize];
        s.entry = Entry::Free;
        s.gen = s.gen.wrapping_add(1);
        self.free.push(idx);
    }

    pub(super) fn mark_dirty(&mut self, idx: u32) {
        if let Entry::Conn(c) = &mut self.slots[idx as usize].entry {
            if !c.dirty {
                c.dirty = true;
                self.dirty.push(idx);
            }
        }
    }

    /// Queue a connection for `poll_event` even if it is queued already (a `Closed` that
    /// waited for unread data to be read).
    pub(super) fn mark_ready_always(&mut self, idx: u32) {
        if let Entry::Conn(c) = &mut self.slots[idx as usize].entry {
            if c.listener.is_none() {
                c.ready = true;
                self.ready.push_back(idx);
            }
        }
    }

    pub(super) fn mark_ready(&mut self, idx: u32) {
        if let Entry::Conn(c) = &mut self.slots[idx as usize].entry {
            if !c.ready && c.listener.is_none() {
                c.ready = true;
                self.ready.push_back(idx);
            }
        }
    }
}
