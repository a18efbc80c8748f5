//! The calls an application on this core makes: listen, connect, accept, send and receive
//! (copying and zero-copy), close, options, and the events it polls.

use super::*;

/// A zero-copy send buffer ([`Stack::send_buf`]): room for one segment's payload in a frame
/// of the device, with space for the headers before it. Write the payload in place through
/// `DerefMut<Target = [u8]>` (it is [`SendBuf::capacity`] bytes long), then
/// [`SendBuf::commit`] the first `len` bytes; the stack keeps the frame until the peer
/// acknowledges them and retransmits from it. Dropped without a commit, the frame goes back
/// to the device. It borrows the stack, so it can neither outlive it nor be forgotten in a
/// collection: a buffer cannot leak (only `mem::forget` can lose its frame).
pub struct SendBuf<'a, D: Device> {
    stack: &'a mut Stack<D>,
    idx: u32,
    frame: Option<Frame>,
    capacity: usize,
}

impl<D: Device> fmt::Debug for SendBuf<'_, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendBuf").field("conn", &self.idx).field("capacity", &self.capacity).finish()
    }
}

impl<D: Device> SendBuf<'_, D> {
    /// Payload bytes it holds at most (at most one segment).
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Queue the first `len` bytes of the payload on the connection. `BadSendBuf` if `len` is
    /// over the capacity; on any error the frame goes back to the device.
    pub fn commit(mut self, len: usize) -> Result<(), StackError> {
        let frame = self.frame.take().expect("a buffer is committed once");
        let stack = &mut *self.stack;
        if len > self.capacity {
            stack.dev.recycle(frame);
            return Err(StackError::BadSendBuf);
        }
        if len == 0 {
            stack.dev.recycle(frame);
            return Ok(());
        }
        let c = stack.conn_mut(self.idx);
        if let Err(e) = c.tcb.send_external(len) {
            stack.dev.recycle(frame);
            return Err(e.into());
        }
        let frame = Frame { len: len as u32, ..frame };
        let start = c.tx_end;
        c.tx_end += len as u64;
        c.txq.push_back(TxChunk { frame, start });
        stack.tx_frames_held += 1;
        stack.mark_dirty(self.idx);
        Ok(())
    }
}

impl<D: Device> core::ops::Deref for SendBuf<'_, D> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        let f = self.frame.as_ref().expect("present until committed");
        self.stack.dev.frame(f)
    }
}

impl<D: Device> core::ops::DerefMut for SendBuf<'_, D> {
    fn deref_mut(&mut self) -> &mut [u8] {
        let f = self.frame.as_ref().expect("present until committed");
        let start = f.offset as usize;
        &mut self.stack.dev.buffer_mut(f)[start..start + self.capacity]
    }
}

impl<D: Device> Drop for SendBuf<'_, D> {
    fn drop(&mut self) {
        if let Some(f) = self.frame.take() {
            self.stack.dev.recycle(f);
        }
    }
}

/// The readable bytes of a connection in place ([`Stack::recv_chunks`]): slices of the
/// frames they arrived in, or of the connection's buffer for data that arrived out of order.
pub struct RecvChunks<'a, D: Device> {
    dev: &'a D,
    tcb: &'a Tcb,
    q: std::collections::vec_deque::Iter<'a, RxChunk>,
    buffered_off: usize,
    pending: &'a [u8],
}

impl<D: Device> fmt::Debug for RecvChunks<'_, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecvChunks").field("chunks_left", &self.q.len()).finish()
    }
}

impl<'a, D: Device> RecvChunks<'a, D> {
    /// The peer has closed: after these bytes the stream ends.
    pub fn fin(&self) -> bool {
        self.tcb.fin_received()
    }
}

impl<'a, D: Device> Iterator for RecvChunks<'a, D> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        if !self.pending.is_empty() {
            return Some(core::mem::take(&mut self.pending));
        }
        loop {
            match self.q.next()? {
                RxChunk::InFrame(f) => return Some(self.dev.frame(f)),
                RxChunk::Buffered(n) => {
                    let (a, b) = self.tcb.recv_slices(self.buffered_off, *n);
                    self.buffered_off += n;
                    self.pending = b;
                    if !a.is_empty() {
                        return Some(a);
                    }
                    if !self.pending.is_empty() {
                        return Some(core::mem::take(&mut self.pending));
                    }
                }
            }
        }
    }
}

impl<D: Device> Stack<D> {
    /// Listen on `port` with room for `backlog` connections in each of the SYN and accept
    /// queues.
    pub fn listen(&mut self, port: u16, backlog: usize) -> Result<Handle, StackError> {
        self.listen_inner(port, backlog, None)
    }

    /// Listen with per-connection settings for what it accepts (buffer sizes, Nagle,
    /// keep-alive, timeouts) instead of the stack's defaults.
    pub fn listen_with(&mut self, port: u16, backlog: usize, tcp: TcpConfig) -> Result<Handle, StackError> {
        check_tcp_config(&tcp)?;
        self.listen_inner(port, backlog, Some(Box::new(tcp)))
    }

    pub(super) fn listen_inner(
        &mut self,
        port: u16,
        backlog: usize,
        tcp: Option<Box<TcpConfig>>,
    ) -> Result<Handle, StackError> {
        if port == 0 {
            return Err(StackError::InvalidAddress);
        }
        if self.listen_ports.contains_key(&port) {
            return Err(StackError::AddrInUse);
        }
        let idx = self.alloc_slot()?;
        self.slots[idx as usize].entry = Entry::Listener(Listener {
            port,
            backlog: backlog.max(1),
            syn_pending: 0,
            accept_queue: VecDeque::with_capacity(backlog.max(1)),
            ready: false,
            tcp,
            cookies_sent_at: None,
            waker: None,
        });
        self.listen_ports.insert(port, idx);
        Ok(self.handle(idx))
    }

    /// Open a connection to `remote`, IPv4 or IPv6 (the SYN goes out on the next `poll`).
    pub fn connect(&mut self, remote: impl Into<SocketAddr>) -> Result<Handle, StackError> {
        let tcp = self.cfg.tcp.clone();
        self.connect_with(remote, tcp)
    }

    /// Connect with per-connection settings (buffer sizes, Nagle, keep-alive, timeouts)
    /// instead of the stack's defaults.
    pub fn connect_with(&mut self, remote: impl Into<SocketAddr>, tcp: TcpConfig) -> Result<Handle, StackError> {
        let remote = remote.into();
        if let SocketAddr::V6(r) = remote {
            // IPv6: the source address for its scope (`ipv6_source_for`).
            let local_ip = self.ipv6_source_for(*r.ip()).ok_or(StackError::InvalidAddress)?;
            return self.connect_from(local_ip, remote, tcp);
        }
        // The first address, then the others when it has no port left for this destination.
        let n = 1 + self.cfg.extra_ips.len();
        for i in 0..n {
            let local_ip = if i == 0 { self.cfg.ip } else { self.cfg.extra_ips[i - 1] };
            match self.connect_from(local_ip, remote, tcp.clone()) {
                Err(StackError::PortsExhausted) if i + 1 < n => continue,
                r => return r,
            }
        }
        Err(StackError::PortsExhausted)
    }

    /// Connect from one of the stack's addresses (`extra_ips`, or an IPv6 one), with
    /// per-connection settings.
    pub fn connect_from(
        &mut self,
        local_ip: impl Into<IpAddr>,
        remote: impl Into<SocketAddr>,
        tcp: TcpConfig,
    ) -> Result<Handle, StackError> {
        let (local_ip, remote) = (local_ip.into(), remote.into());
        self.check_connect(local_ip, remote, &tcp)?;
        let (table, slots, listen_ports) = (&self.table, &self.slots, &self.listen_ports);
        let (now, reuse) = (self.now, self.cfg.time_wait_reuse);
        // A port is taken by a listener or a connection of the 4-tuple, unless that one is in
        // TIME-WAIT and may give way (`StackConfig::time_wait_reuse`), as Linux's
        // __inet_hash_connect takes such a port in its search.
        let port = self
            .ports
            .allocate(SocketAddr::new(local_ip, 0), remote, self.cfg.rss.as_ref(), |p| {
                listen_ports.contains_key(&p)
                    || table
                        .get(&FourTuple { local: SocketAddr::new(local_ip, p), remote })
                        .is_some_and(|idx| !time_wait_gives_way(slots, idx, now, reuse))
            })
            .ok_or(StackError::PortsExhausted)?;
        self.open(SocketAddr::new(local_ip, port), remote, tcp)
    }

    /// Connect from a port the caller chose (a socket's `bind` before `connect`): from
    /// `local`, one of the stack's addresses, to `remote`. `AddrInUse` when a connection of
    /// that 4-tuple exists (TIME-WAIT included).
    pub fn connect_bound(
        &mut self,
        local: SocketAddr,
        remote: impl Into<SocketAddr>,
        tcp: TcpConfig,
    ) -> Result<Handle, StackError> {
        let remote = remote.into();
        self.check_connect(local.ip(), remote, &tcp)?;
        if local.port() == 0 {
            return Err(StackError::InvalidAddress);
        }
        let taken = self.table.get(&FourTuple { local, remote });
        if taken.is_some_and(|idx| !time_wait_gives_way(&self.slots, idx, self.now, self.cfg.time_wait_reuse)) {
            return Err(StackError::AddrInUse);
        }
        self.open(local, remote, tcp)
    }

    /// What every active open checks: the settings, our address of the remote's family, a
    /// unicast remote that is not us, room for a socket.
    fn check_connect(&self, local_ip: IpAddr, remote: SocketAddr, tcp: &TcpConfig) -> Result<(), StackError> {
        check_tcp_config(tcp)?;
        if !self.is_ours(local_ip) || local_ip.is_ipv4() != remote.is_ipv4() {
            return Err(StackError::InvalidAddress);
        }
        let ip = remote.ip();
        if self.is_ours(ip) {
            return Err(StackError::ConnectToSelf);
        }
        let broadcast = matches!(ip, IpAddr::V4(v4) if v4.is_broadcast());
        if ip.is_unspecified() || broadcast || ip.is_multicast() || remote.port() == 0 {
            return Err(StackError::InvalidAddress);
        }
        if self.free.is_empty() {
            return Err(StackError::TooManySockets);
        }
        Ok(())
    }

    /// The active open itself, from a checked 4-tuple: free, or held by a connection in
    /// TIME-WAIT that gives way to it (which ends, normally, now).
    fn open(&mut self, local: SocketAddr, remote: SocketAddr, tcp: TcpConfig) -> Result<Handle, StackError> {
        let key = FourTuple { local, remote };
        let mut old = None;
        if let Some(idx) = self.table.get(&key) {
            let (now, delay) = (self.now, self.cfg.time_wait_reuse.ok_or(StackError::AddrInUse)?);
            old = Some(self.conn_mut(idx).tcb.take_over_time_wait(now, delay).ok_or(StackError::AddrInUse)?);
            self.counters.tcp_time_wait_reused += 1;
            self.on_closed(idx);
        }
        let bufs = self.take_buffers(&tcp);
        let cfg = self.conn_tcp_config(&tcp, remote);
        let cfg = self.share_tcp_config(cfg);
        let tcb = match old {
            Some(old) => Tcb::connect_after_time_wait(cfg, local, remote, old, self.now, Some(bufs)),
            None => Tcb::connect_in(cfg, local, remote, self.isn.isn(self.now, local, remote), self.now, Some(bufs)),
        };
        let idx = self.alloc_slot()?;
        self.slots[idx as usize].entry = Entry::Conn(Box::new(Conn::new(tcb, key, None)));
        let inserted = self.table.insert(key, idx);
        debug_assert!(inserted, "the table holds max_sockets entries");
        self.counters.tcp_active_opens += 1;
        self.mark_dirty(idx);
        Ok(self.handle(idx))
    }

    /// Connections waiting in a listener's accept queue (what `ss` shows as a listener's
    /// Recv-Q): `accept` returns that many before `None`.
    pub fn pending_accepts(&self, listener: Handle) -> Result<usize, StackError> {
        let idx = self.check(listener)?;
        match &self.slots[idx as usize].entry {
            Entry::Listener(l) => Ok(l.accept_queue.len()),
            _ => Err(StackError::NotListener),
        }
    }

    /// New settings for what a listener accepts from now on (a socket option set on a
    /// listening socket, which the connections it accepts inherit); handshakes under way
    /// keep the settings they started with.
    pub fn set_accept_config(&mut self, listener: Handle, tcp: TcpConfig) -> Result<(), StackError> {
        check_tcp_config(&tcp)?;
        let idx = self.check(listener)?;
        match &mut self.slots[idx as usize].entry {
            Entry::Listener(l) => {
                l.tcp = Some(Box::new(tcp));
                Ok(())
            }
            _ => Err(StackError::NotListener),
        }
    }

    /// The next established connection of a listener, if one is waiting.
    pub fn accept(&mut self, listener: Handle) -> Result<Option<Handle>, StackError> {
        let idx = self.check(listener)?;
        let Entry::Listener(l) = &mut self.slots[idx as usize].entry else {
            return Err(StackError::NotListener);
        };
        let Some(c) = l.accept_queue.pop_front() else { return Ok(None) };
        if let Entry::Conn(conn) = &mut self.slots[c as usize].entry {
            conn.listener = None;
        }
        // Events that arrived before the application knew the handle are now deliverable.
        self.mark_ready(c);
        Ok(Some(self.handle(c)))
    }

    /// Queue a copy of `data` for sending; returns how much was taken (`WouldBlock` when
    /// the send buffer is full: a `Writable` event follows when room opens). On a connection
    /// that sends from frames (after [`Stack::send_buf`]), the bytes are copied into
    /// frames of the device.
    pub fn send(&mut self, h: Handle, data: &[u8]) -> Result<usize, StackError> {
        let idx = self.conn_idx(h)?;
        self.conn_mut(idx).tcb.set_more_coming(false);
        self.send_at(idx, h, data)
    }

    fn send_at(&mut self, idx: u32, h: Handle, data: &[u8]) -> Result<usize, StackError> {
        if !self.conn(idx).tcb.external_send() {
            if !data.is_empty() {
                self.ring_storage_for(idx, true);
            }
            let r = self.conn_mut(idx).tcb.send(data);
            self.mark_dirty(idx);
            return Ok(r?);
        }
        let mut sent = 0;
        while sent < data.len() {
            let mut buf = match self.send_buf(h) {
                Ok(b) => b,
                Err(e) if sent == 0 => return Err(e),
                Err(_) => break,
            };
            let n = buf.capacity().min(data.len() - sent);
            buf[..n].copy_from_slice(&data[sent..sent + n]);
            buf.commit(n)?;
            sent += n;
        }
        Ok(sent)
    }

    /// Copy up to `out.len()` received bytes into `out`. `Ok(0)` (with a non-empty `out`) is
    /// the end of the stream; `WouldBlock` means nothing yet (a `Readable` event follows).
    /// Bytes held in received frames are copied straight from them, which frees the frames.
    pub fn recv(&mut self, h: Handle, out: &mut [u8]) -> Result<usize, StackError> {
        let idx = self.conn_idx(h)?;
        let n = self.take_rx(idx, out.len(), Some(out));
        self.mark_dirty(idx); // reading may open the window
        if n > 0 || out.is_empty() {
            return Ok(n);
        }
        // Nothing queued: the TCB says whether the stream ended or data is still to come.
        Ok(self.conn_mut(idx).tcb.recv(out)?)
    }

    /// Zero-copy receive: the readable bytes of `h` in place, in order, as slices of the
    /// frames they arrived in (or of the connection's buffer, for data that arrived out of
    /// order). Nothing is consumed until [`Stack::consume`]; until then the frames stay
    /// with the application and count against the connection's receive window, so a slow
    /// reader shrinks the window rather than losing data.
    pub fn recv_chunks(&self, h: Handle) -> Result<RecvChunks<'_, D>, StackError> {
        let idx = self.conn_idx(h)?;
        let c = self.conn(idx);
        Ok(RecvChunks { dev: &self.dev, tcb: &c.tcb, q: c.rxq.iter(), buffered_off: 0, pending: &[] })
    }

    /// Consume `n` bytes from the front of what [`Stack::recv_chunks`] showed: frames read to
    /// the end go back to the device and the window opens. Returns how many were consumed.
    pub fn consume(&mut self, h: Handle, n: usize) -> Result<usize, StackError> {
        let idx = self.conn_idx(h)?;
        let n = self.take_rx(idx, n, None);
        self.mark_dirty(idx);
        Ok(n)
    }

    /// Take up to `max` bytes from the front of a connection's received data, copying them
    /// into `out` if given.
    pub(super) fn take_rx(&mut self, idx: u32, max: usize, mut out: Option<&mut [u8]>) -> usize {
        let Entry::Conn(c) = &mut self.slots[idx as usize].entry else { return 0 };
        let mut done = 0;
        while done < max {
            let Some(front) = c.rxq.front_mut() else { break };
            let want = max - done;
            match front {
                RxChunk::Buffered(k) => {
                    let m = want.min(*k);
                    let got = match out.as_deref_mut() {
                        Some(o) => c.tcb.recv(&mut o[done..done + m]).unwrap_or(0),
                        None => c.tcb.consume_buffered(m),
                    };
                    debug_assert_eq!(got, m, "the TCB holds what the queue says");
                    *k -= m;
                    done += m;
                    if *k == 0 || got < m {
                        c.rxq.pop_front();
                    }
                }
                RxChunk::InFrame(f) => {
                    let m = want.min(f.len as usize);
                    if let Some(o) = out.as_deref_mut() {
                        o[done..done + m].copy_from_slice(&self.dev.frame(f)[..m]);
                    }
                    f.offset += m as u32;
                    f.len -= m as u32;
                    c.tcb.release_rx(m);
                    done += m;
                    if f.len == 0 {
                        if let Some(RxChunk::InFrame(f)) = c.rxq.pop_front() {
                            self.dev.recycle(f);
                        }
                        c.rx_frames -= 1;
                        self.rx_frames_held -= 1;
                    }
                }
            }
        }
        if c.close_pending.is_some() && c.rxq.is_empty() {
            self.mark_ready_always(idx);
        }
        done
    }

    /// Zero-copy send: a frame to write up to one segment of payload into, in place, then
    /// [`SendBuf::commit`]. The first call switches the connection to sending from frames,
    /// which needs its copied data (from [`Stack::send`]) to be acknowledged first
    /// (`SendQueueBusy`). `WouldBlock` when the connection's send buffer is full or every
    /// frame the stack lends for sending is out (`max_tx_frames_held`); a `Writable` event
    /// follows.
    pub fn send_buf(&mut self, h: Handle) -> Result<SendBuf<'_, D>, StackError> {
        let idx = self.conn_idx(h)?;
        let c = self.conn_mut(idx);
        if c.tcb.set_external_send().is_err() {
            return Err(StackError::SendQueueBusy);
        }
        let mss = c.tcb.send_mss();
        let offset = ETH_LEN + output::ip_header_len(c.tcb.remote().ip()) + c.tcb.data_header_len();
        if (c.tx_end - c.tx_acked) as usize >= c.tcb.send_buffer_size() {
            c.tcb.note_send_full();
            return Err(StackError::Tcp(TcpError::WouldBlock));
        }
        if self.tx_frames_held >= self.cfg.max_tx_frames_held {
            self.counters.tx_frames_exhausted += 1;
            self.conn_mut(idx).tcb.note_send_full();
            if !self.tx_waiters.contains(&idx) {
                self.tx_waiters.push(idx);
            }
            return Err(StackError::Tcp(TcpError::WouldBlock));
        }
        let Some(mut frame) = self.dev.alloc_tx() else {
            self.counters.tx_pool_empty += 1;
            return Err(StackError::Tcp(TcpError::WouldBlock));
        };
        let capacity = mss.min(self.dev.frame_capacity().saturating_sub(offset));
        frame.offset = offset as u32;
        frame.len = capacity as u32;
        Ok(SendBuf { stack: self, idx, frame: Some(frame), capacity })
    }

    /// Frames held by connections: received data not yet consumed, and zero-copy send data
    /// (queued or unacknowledged).
    pub fn frames_held(&self) -> (usize, usize) {
        (self.rx_frames_held, self.tx_frames_held)
    }

    /// Shut down writing (half-close).
    pub fn shutdown(&mut self, h: Handle) -> Result<(), StackError> {
        let idx = self.conn_idx(h)?;
        let r = self.conn_mut(idx).tcb.shutdown();
        self.mark_dirty(idx);
        Ok(r?)
    }

    /// Close a connection (FIN; a reset if unread data remains), or stop a listener (its
    /// queued connections are reset).
    pub fn close(&mut self, h: Handle) -> Result<(), StackError> {
        let idx = self.check(h)?;
        if let Entry::Listener(l) = &mut self.slots[idx as usize].entry {
            let mut queued: Vec<u32> = l.accept_queue.drain(..).collect();
            let port = l.port;
            self.listen_ports.remove(&port);
            // Its handshakes in progress go too: left pointing at this slot, they would be
            // promoted into whatever reuses it.
            if l.syn_pending > 0 {
                queued.extend(self.slots.iter().enumerate().filter_map(|(i, s)| match &s.entry {
                    Entry::Conn(c) if c.listener == Some(idx) && !c.opened => Some(i as u32),
                    _ => None,
                }));
            }
            for c in queued {
                self.conn_mut(c).tcb.abort();
                self.conn_mut(c).listener = None;
                self.mark_dirty(c);
            }
            self.free_slot(idx);
            return Ok(());
        }
        if self.conn(idx).close_pending.is_some() {
            // Over already, with data unread: drop it; `Closed` follows.
            self.take_rx(idx, usize::MAX, None);
            return Ok(());
        }
        let r = self.conn_mut(idx).tcb.close();
        self.mark_dirty(idx);
        Ok(r?)
    }

    /// Reset a connection at once.
    pub fn abort(&mut self, h: Handle) -> Result<(), StackError> {
        let idx = self.conn_idx(h)?;
        if self.conn(idx).close_pending.is_some() {
            self.take_rx(idx, usize::MAX, None);
            return Ok(());
        }
        self.conn_mut(idx).tcb.abort();
        self.mark_dirty(idx);
        Ok(())
    }

    /// TCP_NODELAY: Nagle off (`true`) or on.
    pub fn set_nodelay(&mut self, h: Handle, nodelay: bool) -> Result<(), StackError> {
        let idx = self.conn_idx(h)?;
        self.conn_mut(idx).tcb.set_nagle(!nodelay);
        self.mark_dirty(idx);
        Ok(())
    }

    /// TCP_QUICKACK: on sends an ACK being delayed now and leaves interactive (pingpong)
    /// mode; off enters it (`Tcb::set_quick_ack`). An action, not a lasting option, as Linux's.
    pub fn set_quick_ack(&mut self, h: Handle, on: bool) -> Result<(), StackError> {
        let idx = self.conn_idx(h)?;
        let now = self.now;
        self.conn_mut(idx).tcb.set_quick_ack(on, now);
        self.mark_dirty(idx);
        Ok(())
    }

    /// TCP_INFO: the connection's state as Linux's `struct tcp_info` reports it.
    pub fn tcp_info(&self, h: Handle) -> Result<crate::tcp::TcpInfo, StackError> {
        let idx = self.conn_idx(h)?;
        Ok(self.conn(idx).tcb.info())
    }

    /// TCP_CORK: hold segments shorter than the MSS until more data comes, the cork comes off
    /// or the persist timer (the RTO) runs out (`Tcb::set_cork`).
    pub fn set_cork(&mut self, h: Handle, on: bool) -> Result<(), StackError> {
        let idx = self.conn_idx(h)?;
        self.conn_mut(idx).tcb.set_cork(on);
        self.mark_dirty(idx);
        Ok(())
    }

    /// `send` with MSG_MORE: more data follows, so a short tail of this write waits for it
    /// (`Tcb::set_more_coming`).
    pub fn send_more(&mut self, h: Handle, data: &[u8]) -> Result<usize, StackError> {
        let idx = self.conn_idx(h)?;
        self.conn_mut(idx).tcb.set_more_coming(true);
        self.send_at(idx, h, data)
    }

    /// SO_KEEPALIVE with its timings (RFC 1122 §4.2.3.6), or off with `None`.
    pub fn set_keepalive(&mut self, h: Handle, ka: Option<Keepalive>) -> Result<(), StackError> {
        let idx = self.conn_idx(h)?;
        let now = self.now;
        self.conn_mut(idx).tcb.set_keepalive(ka, now);
        self.mark_dirty(idx);
        Ok(())
    }

    /// State of a connection.
    pub fn state(&self, h: Handle) -> Result<State, StackError> {
        let idx = self.conn_idx(h)?;
        Ok(self.conn(idx).tcb.state())
    }

    /// The connection's TCB, for statistics and inspection.
    pub fn tcb(&self, h: Handle) -> Result<&Tcb, StackError> {
        let idx = self.conn_idx(h)?;
        Ok(&self.conn(idx).tcb)
    }

    /// Wake `waker` when `h` next raises an event: for a connection, any of
    /// [`StackEvent`]'s (data, room to write, the peer's FIN, its end); for a listener, a
    /// connection to accept. Once: register again after each wake (a registration replaces
    /// the previous one). As smoltcp's `register_recv_waker`, for tasks that wait on one
    /// socket while the loop that polls the stack runs elsewhere on the same thread. The
    /// events still queue: the loop keeps draining [`Stack::poll_event`], which also frees
    /// closed sockets. A wake may be for an event the task was not waiting for (a write
    /// becoming possible, say): it checks, and registers again.
    pub fn register_recv_waker(&mut self, h: Handle, waker: &Waker) -> Result<(), StackError> {
        self.register_waker(h, 0, waker)
    }

    /// As [`Stack::register_recv_waker`], in a second slot, for the task that writes (so that
    /// a reader and a writer of one connection can both wait). On a listener, the same slot as
    /// the reader's.
    pub fn register_send_waker(&mut self, h: Handle, waker: &Waker) -> Result<(), StackError> {
        self.register_waker(h, 1, waker)
    }

    fn register_waker(&mut self, h: Handle, slot: usize, waker: &Waker) -> Result<(), StackError> {
        let idx = self.check(h)?;
        let keep = |w: &mut Option<Waker>| match w {
            Some(old) if old.will_wake(waker) => {}
            _ => *w = Some(waker.clone()),
        };
        match &mut self.slots[idx as usize].entry {
            Entry::Listener(l) => keep(&mut l.waker),
            Entry::Conn(c) => keep(&mut c.wakers.get_or_insert_with(Default::default)[slot]),
            Entry::Free => return Err(StackError::InvalidHandle),
        }
        Ok(())
    }

    /// The next event, if any. A `Closed` event is the last for its handle.
    pub fn poll_event(&mut self) -> Option<(Handle, StackEvent)> {
        while let Some(&idx) = self.ready.front() {
            let h = self.handle(idx);
            match &mut self.slots[idx as usize].entry {
                Entry::Listener(l) => {
                    l.ready = false;
                    self.ready.pop_front();
                    if !l.accept_queue.is_empty() {
                        return Some((h, StackEvent::Accepted));
                    }
                }
                Entry::Conn(c) if c.listener.is_none() => {
                    // A connection that ended normally with data still unread stays readable
                    // (as a kernel socket does until close()); `Closed` comes once it is read.
                    if let Some(r) = c.close_pending {
                        if c.rxq.is_empty() {
                            c.close_pending = None;
                            c.closed_reported = true;
                            self.ready.pop_front();
                            self.free_slot(idx);
                            return Some((h, StackEvent::Closed(r)));
                        }
                    }
                    if let Some(ev) = c.tcb.poll_event() {
                        let ev = match ev {
                            Event::Connected => StackEvent::Connected,
                            Event::Readable => StackEvent::Readable,
                            Event::Writable => StackEvent::Writable,
                            Event::PeerClosed => StackEvent::PeerClosed,
                            Event::Closed(r @ CloseReason::Normal) if !c.rxq.is_empty() => {
                                c.close_pending = Some(r);
                                StackEvent::Readable
                            }
                            Event::Closed(r) => {
                                c.closed_reported = true;
                                StackEvent::Closed(r)
                            }
                        };
                        if c.closed_reported {
                            self.ready.pop_front();
                            self.free_slot(idx);
                        }
                        return Some((h, ev));
                    }
                    c.ready = false;
                    self.ready.pop_front();
                }
                _ => {
                    self.ready.pop_front();
                }
            }
        }
        None
    }
}

/// Whether the connection in slot `idx` is in TIME-WAIT and may give its 4-tuple to a new
/// active open now (`StackConfig::time_wait_reuse`, `Tcb::time_wait_reusable`).
fn time_wait_gives_way(slots: &[Slot], idx: u32, now: Instant, reuse: Option<Duration>) -> bool {
    let Some(delay) = reuse else { return false };
    matches!(&slots[idx as usize].entry, Entry::Conn(c) if c.tcb.time_wait_reusable(now, delay))
}
