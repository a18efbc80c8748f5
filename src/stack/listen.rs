//! Segments for no connection: SYNs for listeners, their queues, and resets.

use super::*;

impl<D: Device> Stack<D> {
    /// A segment that matched no connection; `payload` is where its payload lies in `frame`.
    pub(super) fn process_tcp_no_conn(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
        seg: TcpRepr<'static>,
        rst: Option<TcpRepr<'static>>,
        frame: &Frame,
        payload: (usize, usize),
    ) {
        if let Some(&lidx) = self.listen_ports.get(&seg.dst_port) {
            let f = seg.flags;
            if f.contains(wire::TcpFlags::SYN) && !f.intersects(wire::TcpFlags::ACK | wire::TcpFlags::RST) {
                self.accept_syn(lidx, local, remote, &seg);
                return;
            }
            // RFC 9293 §3.10.7.2: in LISTEN, an RST is ignored and an ACK gets a reset —
            // unless it completes a handshake we answered with a SYN cookie.
            if f.contains(wire::TcpFlags::RST) {
                return;
            }
            if f.contains(wire::TcpFlags::ACK) && !f.intersects(wire::TcpFlags::SYN | wire::TcpFlags::FIN) {
                match self.accept_cookie(lidx, local, remote, &seg, frame, payload) {
                    CookieOutcome::NotChecked => {}
                    CookieOutcome::Refused => self.counters.tcp_syn_cookies_refused += 1,
                    CookieOutcome::Taken => return,
                }
            }
            if !f.contains(wire::TcpFlags::ACK) {
                // "Fourth, other data or control": a segment with neither SYN nor ACK (a
                // bare FIN, data without ACK) is dropped, not reset.
                self.counters.tcp_listen_dropped += 1;
                return;
            }
        }
        // §3.10.7.1: no connection.
        self.counters.tcp_no_socket += 1;
        if let Some(rst) = rst {
            if self.reset_allowed() {
                self.send_segment(local.ip(), remote, &rst);
                self.counters.tcp_rsts_out += 1;
            } else {
                self.counters.tcp_rsts_rate_limited += 1;
            }
        }
    }

    /// Resets for segments of no connection, at most `rst_rate_limit` a second (a token
    /// bucket holding a tenth of a second's worth), so that a flood of stray segments does not
    /// make us a reflector (RFC 5961 §7's reasoning for challenge ACKs, applied to resets).
    fn reset_allowed(&mut self) -> bool {
        let rate = self.cfg.rst_rate_limit;
        if rate == 0 {
            return true;
        }
        let burst = (rate / 10).max(1);
        let (since, tokens) = self.rst_bucket;
        let elapsed_us = self.now.saturating_duration_since(since).as_micros() as u64;
        let refill = (elapsed_us.saturating_mul(u64::from(rate)) / 1_000_000).min(u64::from(burst)) as u32;
        let mut tokens = tokens;
        if refill > 0 {
            tokens = (tokens + refill).min(burst);
            self.rst_bucket.0 = self.now;
        }
        if tokens == 0 {
            self.rst_bucket.1 = 0;
            return false;
        }
        self.rst_bucket.1 = tokens - 1;
        true
    }

    /// A connection's settings from `tcp`: this stack's timers drive it, at their resolution;
    /// over IPv6 its MSS is 20 bytes less (`mss` is for IPv4's 20-byte header: RFC 8200's
    /// is 40, so MTU − 60).
    pub(super) fn conn_tcp_config(&self, tcp: &TcpConfig, remote: SocketAddr) -> TcpConfig {
        let mss = if remote.is_ipv6() { tcp.mss.saturating_sub(20).max(88) } else { tcp.mss };
        TcpConfig { timer_granularity: self.cfg.timer_resolution, mss, ..tcp.clone() }
    }

    /// `tcp` as a connection holds it: the stack's one copy of these settings (a connection
    /// record holds a pointer, not 240 bytes of settings). A few distinct settings are kept;
    /// beyond them each connection gets its own copy.
    pub(super) fn share_tcp_config(&mut self, tcp: TcpConfig) -> Arc<TcpConfig> {
        if let Some(c) = self.tcp_configs.iter().find(|c| ***c == tcp) {
            return Arc::clone(c);
        }
        let c = Arc::new(tcp);
        if self.tcp_configs.len() < SHARED_TCP_CONFIGS {
            self.tcp_configs.push(Arc::clone(&c));
        }
        c
    }

    /// The settings of what `lidx` accepts.
    fn listener_tcp_config(&self, lidx: u32) -> &TcpConfig {
        match &self.slots[lidx as usize].entry {
            Entry::Listener(Listener { tcp: Some(t), .. }) => t,
            _ => &self.cfg.tcp,
        }
    }

    pub(super) fn accept_syn(&mut self, lidx: u32, local: SocketAddr, remote: SocketAddr, seg: &TcpRepr<'_>) {
        let Entry::Listener(l) = &self.slots[lidx as usize].entry else { return };
        // Linux drops a SYN when the accept queue is full, cookies or not: the peer retries
        // (tcp_conn_request).
        if l.accept_queue.len() >= l.backlog {
            self.counters.tcp_accept_queue_full += 1;
            return;
        }
        let queue_full = l.syn_pending >= l.backlog;
        let cookie = match self.cfg.syn_cookies {
            SynCookieMode::Off => false,
            SynCookieMode::WhenFull => queue_full,
            SynCookieMode::Always => true,
        };
        if cookie {
            // RFC 4987 §3.6: answer from the cookie, keep nothing.
            // No copy of the settings per SYN: under a flood this is the hot path.
            let syn_ack = self.cookies.syn_ack(self.listener_tcp_config(lidx), self.now, local, remote, seg);
            if let Entry::Listener(l) = &mut self.slots[lidx as usize].entry {
                l.cookies_sent_at = Some(self.now);
            }
            self.send_segment(local.ip(), remote, &syn_ack);
            self.counters.tcp_syn_cookies_sent += 1;
            return;
        }
        if queue_full {
            self.counters.tcp_syn_queue_full += 1;
            return;
        }
        let Ok(idx) = self.alloc_slot() else {
            self.counters.tcp_table_full += 1;
            return;
        };
        let iss = self.isn.isn(self.now, local, remote);
        let cfg = self.conn_tcp_config(self.listener_tcp_config(lidx), remote);
        let cfg = self.share_tcp_config(cfg);
        // No buffers until the peer answers (input attaches them): a SYN queue full of a
        // flood's handshakes holds no buffer memory.
        let tcb = Tcb::from_syn_in(cfg, local, remote, iss, seg, self.now, Some(TcbBuffers::deferred()));
        self.add_handshake(lidx, idx, tcb);
        self.mark_dirty(idx);
    }

    /// Put a passive open's TCB in slot `idx`, in the table and in `lidx`'s SYN queue (until
    /// flush_conn promotes it to the accept queue).
    fn add_handshake(&mut self, lidx: u32, idx: u32, tcb: Tcb) {
        let key = FourTuple { local: tcb.local(), remote: tcb.remote() };
        self.slots[idx as usize].entry = Entry::Conn(Box::new(Conn::new(tcb, key, Some(lidx))));
        if let Entry::Listener(l) = &mut self.slots[lidx as usize].entry {
            l.syn_pending += 1;
        }
        let inserted = self.table.insert(key, idx);
        debug_assert!(inserted, "the table holds max_sockets entries");
        self.counters.tcp_passive_opens += 1;
    }

    /// An ACK at a listener: the end of a handshake answered with a SYN cookie? Checked only
    /// while the listener has sent cookies in the last two minutes (a cookie's life), as
    /// Linux's tcp_synq_no_recent_overflow, so an ACK flood costs no hashing otherwise.
    fn accept_cookie(
        &mut self,
        lidx: u32,
        local: SocketAddr,
        remote: SocketAddr,
        seg: &TcpRepr<'_>,
        frame: &Frame,
        payload: (usize, usize),
    ) -> CookieOutcome {
        let Entry::Listener(l) = &self.slots[lidx as usize].entry else { return CookieOutcome::NotChecked };
        let recent = match (self.cfg.syn_cookies, l.cookies_sent_at) {
            (SynCookieMode::Off, _) | (_, None) => false,
            (_, Some(t)) => self.now.saturating_duration_since(t) < Duration::from_secs(120),
        };
        if !recent {
            return CookieOutcome::NotChecked;
        }
        let Some(syn) = self.cookies.check(self.now, local, remote, seg) else { return CookieOutcome::Refused };
        // A valid cookie, but no room: dropped (not reset) as Linux does on a listen
        // overflow; the peer's retransmission may find room.
        if l.accept_queue.len() >= l.backlog {
            self.counters.tcp_accept_queue_full += 1;
            return CookieOutcome::Taken;
        }
        let Ok(idx) = self.alloc_slot() else {
            self.counters.tcp_table_full += 1;
            return CookieOutcome::Taken;
        };
        let cfg = self.conn_tcp_config(self.listener_tcp_config(lidx), remote);
        let cfg = self.share_tcp_config(cfg);
        let bufs = self.take_buffers(&cfg);
        let tcb = Tcb::from_cookie_in(cfg, local, remote, syn.iss, &syn.syn(seg), self.now, Some(bufs));
        self.add_handshake(lidx, idx, tcb);
        self.counters.tcp_syn_cookies_accepted += 1;
        // The ACK itself completes the handshake, with whatever data it carries (copied: the
        // frame goes back after this).
        let (at, len) = payload;
        let data = self.dev.frame(frame).get(at..at + len).unwrap_or(&[]);
        let seg = TcpRepr { payload: data, ..*seg };
        let Entry::Conn(c) = &mut self.slots[idx as usize].entry else { unreachable!("just made") };
        c.tcb.on_segment_with(self.now, remote, &seg, RxInfo::default());
        let copied = c.tcb.recv_buffered();
        if copied > 0 {
            c.rxq.push_back(RxChunk::Buffered(copied));
        }
        self.mark_dirty(idx);
        CookieOutcome::Taken
    }

    pub(super) fn promote_to_accept_queue(&mut self, lidx: u32, idx: u32) {
        let Entry::Listener(l) = &mut self.slots[lidx as usize].entry else { return };
        l.syn_pending = l.syn_pending.saturating_sub(1);
        if l.accept_queue.len() >= l.backlog {
            // Both queues were checked at SYN time, but several handshakes can complete
            // together: the overflow is reset and counted. It stays the listener's, so the
            // application never hears of it: flush_conn sends the reset at once and on_closed
            // frees it quietly. (Handing it to the application here let poll_event report its
            // end, and free its slot, before a flush took it out of the table.)
            self.counters.tcp_accept_queue_full += 1;
            self.conn_mut(idx).tcb.abort();
            return;
        }
        l.accept_queue.push_back(idx);
        if let Some(w) = l.waker.take() {
            w.wake();
        }
        if !l.ready {
            l.ready = true;
            self.ready.push_back(lidx);
        }
    }
}

/// What became of an ACK at a listener.
enum CookieOutcome {
    /// No cookies sent lately: a plain ACK in LISTEN.
    NotChecked,
    /// Not a cookie of ours (forged, stale, another tuple).
    Refused,
    /// A connection was made from it (or a valid cookie found no room, and was dropped).
    Taken,
}
