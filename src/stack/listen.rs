//! Segments for no connection: SYNs for listeners, their queues, and resets.

use super::*;

impl<D: Device> Stack<D> {
    pub(super) fn process_tcp_no_conn(
        &mut self,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        seg: TcpRepr<'static>,
        rst: Option<TcpRepr<'static>>,
    ) {
        if let Some(&lidx) = self.listen_ports.get(&seg.dst_port) {
            let f = seg.flags;
            if f.contains(wire::TcpFlags::SYN) && !f.intersects(wire::TcpFlags::ACK | wire::TcpFlags::RST) {
                self.accept_syn(lidx, local, remote, &seg);
                return;
            }
            // RFC 9293 §3.10.7.2: in LISTEN, an RST is ignored and an ACK gets a reset.
            if f.contains(wire::TcpFlags::RST) {
                return;
            }
        }
        // §3.10.7.1: no connection.
        self.counters.tcp_no_socket += 1;
        if let Some(rst) = rst {
            self.send_segment(*local.ip(), remote, &rst);
            self.counters.tcp_rsts_out += 1;
        }
    }

    pub(super) fn accept_syn(&mut self, lidx: u32, local: SocketAddrV4, remote: SocketAddrV4, seg: &TcpRepr<'_>) {
        let Entry::Listener(l) = &self.slots[lidx as usize].entry else { return };
        // Linux drops a SYN when either queue is full; the peer retries (no SYN cookies yet).
        if l.syn_pending >= l.backlog {
            self.counters.tcp_syn_queue_full += 1;
            return;
        }
        if l.accept_queue.len() >= l.backlog {
            self.counters.tcp_accept_queue_full += 1;
            return;
        }
        let Ok(idx) = self.alloc_slot() else {
            self.counters.tcp_table_full += 1;
            return;
        };
        let iss = self.isn.isn(self.now, local, remote);
        let cfg = match &self.slots[lidx as usize].entry {
            Entry::Listener(Listener { tcp: Some(t), .. }) => (**t).clone(),
            _ => self.cfg.tcp.clone(),
        };
        let bufs = self.take_buffers(&cfg);
        let tcb = Tcb::from_syn_in(cfg, local, remote, iss, seg, self.now, Some(bufs));
        let key = FourTuple { local, remote };
        self.slots[idx as usize].entry = Entry::Conn(Box::new(Conn::new(tcb, key, Some(lidx))));
        if let Entry::Listener(l) = &mut self.slots[lidx as usize].entry {
            l.syn_pending += 1;
        }
        let inserted = self.table.insert(key, idx);
        debug_assert!(inserted, "the table holds max_sockets entries");
        self.counters.tcp_passive_opens += 1;
        self.mark_dirty(idx);
    }

    pub(super) fn promote_to_accept_queue(&mut self, lidx: u32, idx: u32) {
        let Entry::Listener(l) = &mut self.slots[lidx as usize].entry else { return };
        l.syn_pending = l.syn_pending.saturating_sub(1);
        if l.accept_queue.len() >= l.backlog {
            // Both queues were checked at SYN time, but several handshakes can complete
            // together: the overflow is reset and counted.
            self.counters.tcp_accept_queue_full += 1;
            self.conn_mut(idx).tcb.abort();
            self.conn_mut(idx).listener = None;
            self.mark_dirty(idx);
            return;
        }
        l.accept_queue.push_back(idx);
        if !l.ready {
            l.ready = true;
            self.ready.push_back(lidx);
        }
    }
}
