//! A TCB's buffer storage: made with the connection or deferred until its handshake
//! completes, handed back to the stack's pool when the connection is done (or idle in
//! TIME-WAIT).

use super::*;

/// A TCB's buffer storage, kept for the next connection (a stack's pool): the send and
/// receive rings and the scoreboard's entries.
#[derive(Debug)]
pub struct TcbBuffers {
    /// The send ring's storage (empty while deferred).
    pub send: Box<[u8]>,
    /// The receive ring's storage (empty while deferred).
    pub recv: Box<[u8]>,
    /// The scoreboard's entries (cleared before reuse).
    pub scoreboard: std::collections::VecDeque<Seg>,
}

impl TcbBuffers {
    /// No storage yet: a passive open's TCB gets its buffers only when the handshake's
    /// completion comes near ([`Tcb::attach_buffers`]), so that a SYN queue full of a
    /// flood's handshakes holds a few hundred bytes each, as Linux's request socks do, not
    /// two buffers each.
    pub fn deferred() -> TcbBuffers {
        TcbBuffers { send: Box::default(), recv: Box::default(), scoreboard: Default::default() }
    }

    pub(super) fn is_deferred(&self) -> bool {
        self.send.is_empty() && self.recv.is_empty()
    }
}

impl Tcb {
    /// Give up the TCB, keeping its buffers' storage for another.
    pub fn into_buffers(mut self) -> TcbBuffers {
        TcbBuffers { send: self.send_storage(), recv: self.recv_buf.into_storage(), scoreboard: self.sb.into_storage() }
    }

    /// The TCB was made without buffers ([`TcbBuffers::deferred`]) and `seg` is the one
    /// that needs them: an ACK of our SYN-ACK (RFC 9293 §3.10.7.4: SND.UNA < SEG.ACK =<
    /// SND.NXT), which completes the handshake and may carry data. Nothing else gets them — a
    /// flood that hits a queued handshake's 4-tuple with SYNs or guessed ACKs does not turn
    /// the SYN queue into buffer memory.
    pub fn wants_buffers(&self, seg: &TcpRepr<'_>) -> bool {
        self.buffers_deferred
            && seg.flags.contains(TcpFlags::ACK)
            && !seg.flags.intersects(TcpFlags::RST | TcpFlags::SYN)
            && self.snd_una.lt(SeqNum(seg.ack))
            && SeqNum(seg.ack).le(self.snd_nxt)
    }

    /// Give a TCB made without buffers its storage (sized as its settings say; other sizes
    /// are replaced). Call before it is handed a segment that may carry data.
    pub fn attach_buffers(&mut self, b: TcbBuffers) {
        debug_assert!(self.buffers_deferred, "buffers attached twice");
        let entries = self.cfg.scoreboard_entries();
        let (send, recv) = if b.send.len() == self.cfg.send_buffer && b.recv.len() == self.cfg.recv_buffer {
            (RingBuffer::from_storage(b.send), RingBuffer::from_storage(b.recv))
        } else {
            (RingBuffer::new(self.cfg.send_buffer), RingBuffer::new(self.cfg.recv_buffer))
        };
        self.send_buf = send;
        self.recv_buf = recv;
        self.sb = Scoreboard::with_storage(b.scoreboard, entries);
        self.buffers_deferred = false;
    }

    /// In TIME-WAIT with nothing left to read, the buffers serve no purpose (nothing more
    /// can be sent or received): hand their storage over, as Linux shrinks a socket to a
    /// small time-wait one. Otherwise `None`. Thousands of connections a second each spend
    /// 2·MSL here, which without this would hold their buffers all that time.
    pub fn release_buffers(&mut self) -> Option<TcbBuffers> {
        let idle = self.state == State::TimeWait && self.recv_buf.is_empty() && self.rx_external == 0;
        if !idle || self.recv_buf.capacity() == 0 {
            return None;
        }
        let send = self.send_storage();
        let recv = core::mem::replace(&mut self.recv_buf, RingBuffer::new(0));
        let sb = core::mem::replace(&mut self.sb, Scoreboard::with_storage(Default::default(), 0));
        Some(TcbBuffers { send, recv: recv.into_storage(), scoreboard: sb.into_storage() })
    }

    /// The storage of rings that hold nothing, for the pool, while the connection is idle
    /// (Linux's sk_mem_reclaim: an idle socket holds no buffer memory): the send ring when
    /// everything sent is acknowledged and nothing waits, the receive ring when everything
    /// received was read and no out-of-order byte is parked. Both keep their capacities (so
    /// the window advertised does not change) and take storage back with
    /// [`Tcb::attach_ring_storage`], or allocate it when written first. (send, receive),
    /// each empty when that ring keeps its storage (or the TCB's buffers are deferred).
    pub fn detach_idle_rings(&mut self) -> (Box<[u8]>, Box<[u8]>) {
        // Synchronized only: a handshake's TCB may have a SYN's text parked past the receive
        // ring's end (RFC 9293 §3.10.7.3), which is no out-of-order range.
        let synchronized = matches!(
            self.state,
            State::Established | State::CloseWait | State::FinWait1 | State::FinWait2 | State::Closing | State::LastAck
        );
        if self.buffers_deferred || !synchronized {
            return Default::default();
        }
        let send = self.send_buf.detach().unwrap_or_default();
        let parked = !self.assembler.is_empty() || self.syn_text != 0;
        let recv = if parked { Box::default() } else { self.recv_buf.detach().unwrap_or_default() };
        (send, recv)
    }

    /// The scoreboard's entries' storage while nothing is outstanding (under the same
    /// pressure as [`Tcb::detach_idle_rings`]); it comes back with
    /// [`Tcb::attach_scoreboard_storage`] or is reserved again by the next send. `None` when
    /// anything is in flight.
    pub fn detach_idle_scoreboard(&mut self) -> Option<std::collections::VecDeque<Seg>> {
        if self.buffers_deferred {
            return None;
        }
        self.sb.detach_storage()
    }

    /// Whether the scoreboard gave its storage up ([`Tcb::detach_idle_scoreboard`]).
    pub fn scoreboard_detached(&self) -> bool {
        self.sb.is_detached()
    }

    /// Storage back for a scoreboard that gave its own up; handed back when it has some.
    pub fn attach_scoreboard_storage(
        &mut self,
        segs: std::collections::VecDeque<Seg>,
    ) -> Result<(), std::collections::VecDeque<Seg>> {
        self.sb.attach_storage(segs)
    }

    /// Bytes of storage the detached rings want (send, receive): 0 for one that has storage.
    pub fn detached_ring_sizes(&self) -> (usize, usize) {
        let want = |r: &RingBuffer| if r.is_detached() { r.capacity() } else { 0 };
        (want(&self.send_buf), want(&self.recv_buf))
    }

    /// Storage back for the send ring (`send`) or the receive ring after
    /// [`Tcb::detach_idle_rings`]; handed back when it does not fit (another size, a ring
    /// that has storage).
    pub fn attach_ring_storage(&mut self, send: bool, storage: Box<[u8]>) -> Result<(), Box<[u8]>> {
        if send {
            self.send_buf.attach(storage)
        } else {
            self.recv_buf.attach(storage)
        }
    }

    /// The send buffer's storage for the pool, if it is still the size a connection with
    /// these settings opens with: a grown one would sit in the pool unused (connections open
    /// at `send_buffer` and grow by themselves), so it is let go.
    pub(super) fn send_storage(&mut self) -> Box<[u8]> {
        let send = core::mem::replace(&mut self.send_buf, RingBuffer::new(0)).into_storage();
        if send.len() == self.cfg.send_buffer {
            send
        } else {
            Box::default()
        }
    }
}
