//! Sockets' slots and handles, the end of a connection, the buffer pool, and the queues of
//! connections to flush and to report.

use super::*;

impl<D: Device> Stack<D> {
    pub(super) fn on_closed(&mut self, idx: u32) {
        let (key, timer, listener, opened) = {
            let c = self.conn(idx);
            (c.key(), c.timer, c.listener, c.opened)
        };
        if let Some(t) = timer {
            self.timers.cancel(t);
        }
        self.table.remove(&key);
        let st = self.conn(idx).tcb.stats();
        self.counters.add_tcb(&st);
        let c = self.conn_mut(idx);
        c.timer = None;
        c.deadline = None;
        if core::mem::take(&mut c.time_waiting) {
            self.time_wait_conns -= 1;
        }
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
        self.pool.take(tcp)
    }

    /// Storage from the pool for a connection's ring that gave its own up while idle
    /// (`Tcb::detach_idle_rings`) and is about to be written: the send ring (`send`) or the
    /// receive ring. Without storage of the size in the pool the ring allocates its own.
    pub(super) fn ring_storage_for(&mut self, idx: u32, send: bool) {
        let limit = self.cfg.buffer_pool_bytes;
        if let Entry::Conn(c) = &mut self.slots[idx as usize].entry {
            ring_storage_from(&mut self.pool, &mut c.tcb, send, limit);
        }
    }

    /// Keep a closed connection's buffer storage for the next, up to `buffer_pool_bytes`.
    pub(super) fn keep_buffers(&mut self, b: TcbBuffers) {
        self.pool.keep(b, self.cfg.buffer_pool_bytes);
    }

    pub(super) fn alloc_slot(&mut self) -> Result<u32, StackError> {
        self.free.pop().ok_or(StackError::TooManySockets)
    }

    pub(super) fn free_slot(&mut self, idx: u32) {
        let s = &mut self.slots[idx as usize];
        if let Entry::Conn(c) = core::mem::replace(&mut s.entry, Entry::Free) {
            // Frames the connection still held go back to the device.
            let c = *c;
            debug_assert!(self.table.get(&c.key()) != Some(idx), "slot {idx} freed while the table names it");
            if c.time_waiting {
                self.time_wait_conns -= 1;
            }
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
            c.wake();
            if c.listener.is_none() {
                c.ready = true;
                self.ready.push_back(idx);
            }
        }
    }

    pub(super) fn mark_ready(&mut self, idx: u32) {
        if let Entry::Conn(c) = &mut self.slots[idx as usize].entry {
            // Wakers are woken on every event, queued or not: a task that waits with one
            // need not have drained the queue since the last.
            c.wake();
            if !c.ready && c.listener.is_none() {
                c.ready = true;
                self.ready.push_back(idx);
            }
        }
    }

    /// Check the stack's bookkeeping against itself: every table entry names a live
    /// connection with that key, every connection in a state that is in the table is there,
    /// listeners' SYN counts match their handshakes in progress, the counts of held frames
    /// match the frames connections hold, and every bound holds. For fuzzing and tests (a
    /// walk over every slot; not for the hot path). Returns what is wrong.
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut in_table = 0;
        let (mut rx_held, mut tx_held) = (0, 0);
        let mut syn_pending: HashMap<u32, usize> = HashMap::new();
        let mut time_waiting = 0;
        for (idx, slot) in self.slots.iter().enumerate() {
            let Entry::Conn(c) = &slot.entry else { continue };
            let state = c.tcb.state();
            if c.time_waiting {
                time_waiting += 1;
                if state != State::TimeWait && state != State::Closed {
                    return Err(format!("connection {idx} is counted in TIME-WAIT but is {state:?}"));
                }
            }
            if state != State::Closed {
                in_table += 1;
                if self.table.get(&c.key()) != Some(idx as u32) {
                    return Err(format!("connection {idx} ({:?}, {state:?}) is not in the table", c.key()));
                }
            } else if self.table.get(&c.key()) == Some(idx as u32) {
                return Err(format!("connection {idx} ({:?}) is closed but still in the table", c.key()));
            }
            let frames = c.rxq.iter().filter(|ch| matches!(ch, RxChunk::InFrame(_))).count();
            if frames != c.rx_frames {
                return Err(format!("connection {idx} holds {frames} frames but counts {}", c.rx_frames));
            }
            if c.rx_frames > self.cfg.max_rx_frames_per_conn {
                return Err(format!("connection {idx} holds {} frames, over the bound", c.rx_frames));
            }
            rx_held += frames;
            tx_held += c.txq.len();
            if let (Some(l), false) = (c.listener, c.opened) {
                *syn_pending.entry(l).or_default() += 1;
            }
        }
        let max_tw = self.cfg.time_wait_limit();
        if time_waiting != self.time_wait_conns || time_waiting > max_tw {
            return Err(format!(
                "{time_waiting} connections counted in TIME-WAIT, the stack counts {} (at most {max_tw})",
                self.time_wait_conns
            ));
        }
        if in_table != self.table.len() {
            let stray = self
                .table
                .iter()
                .find(|&(k, i)| !matches!(&self.slots[i as usize].entry, Entry::Conn(c) if c.key() == *k));
            let what = stray.map(|(_, i)| match &self.slots[i as usize].entry {
                Entry::Free => "a free slot".to_string(),
                Entry::Listener(l) => format!("the listener on {}", l.port),
                Entry::Conn(c) => format!("a connection {:?} in {:?}", c.key(), c.tcb.state()),
            });
            return Err(format!(
                "{} table entries, {in_table} connections; first stray: {stray:?}, to {what:?}",
                self.table.len()
            ));
        }
        if (rx_held, tx_held) != (self.rx_frames_held, self.tx_frames_held) {
            return Err(format!(
                "frames held: connections hold {rx_held}/{tx_held}, the stack counts {}/{}",
                self.rx_frames_held, self.tx_frames_held
            ));
        }
        if self.rx_frames_held > self.cfg.max_rx_frames_held || self.tx_frames_held > self.cfg.max_tx_frames_held {
            return Err("frames held over their bound".into());
        }
        let used = self.slots.iter().filter(|s| !matches!(s.entry, Entry::Free)).count();
        if used + self.free.len() != self.slots.len() {
            return Err(format!("{used} slots used and {} free of {}", self.free.len(), self.slots.len()));
        }
        for (port, &lidx) in &self.listen_ports {
            let Entry::Listener(l) = &self.slots[lidx as usize].entry else {
                return Err(format!("port {port} names slot {lidx}, not a listener"));
            };
            let pending = syn_pending.get(&lidx).copied().unwrap_or(0);
            if l.syn_pending != pending || l.syn_pending > l.backlog || l.accept_queue.len() > l.backlog {
                return Err(format!(
                    "listener {port}: SYN queue {} (handshakes {pending}), accept queue {}, backlog {}",
                    l.syn_pending,
                    l.accept_queue.len(),
                    l.backlog
                ));
            }
        }
        if self.arp.len() > self.cfg.arp_cache_size || self.arp.pending.len() > self.cfg.arp_pending {
            return Err("the neighbour cache or its queue is over its bound".into());
        }
        Ok(())
    }
}

/// `Stack::ring_storage_for` over the fields it needs (callable while a received frame
/// borrows the device).
pub(super) fn ring_storage_from(pool: &mut BufferPool, tcb: &mut Tcb, send: bool, limit: usize) {
    if send && tcb.scoreboard_detached() {
        // What is sent needs scoreboard entries too.
        if let Some(sb) = pool.take_scoreboard() {
            if let Err(back) = tcb.attach_scoreboard_storage(sb) {
                pool.keep_scoreboard(back, limit);
            }
        }
    }
    let (s, r) = tcb.detached_ring_sizes();
    let size = if send { s } else { r };
    if size == 0 {
        return;
    }
    let Some(storage) = pool.take_size(size) else { return };
    if let Err(back) = tcb.attach_ring_storage(send, storage) {
        pool.keep_ring(back, limit);
    }
}
