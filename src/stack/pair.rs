//! Two stacks joined by an in-memory link, stepped in virtual time: what the stack's tests, its
//! scale test, its benchmarks and the in-memory examples all drive.

use super::{Handle, Stack, StackConfig, StackError, StackEvent};
use crate::io::mem::{Faults, MemDevice, MemLink};
use crate::time::{Duration, Instant};
use crate::wire::MacAddr;
use core::net::SocketAddrV4;

/// Stack `a`'s MAC address.
pub const MAC_A: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
/// Stack `b`'s MAC address.
pub const MAC_B: MacAddr = MacAddr([2, 0, 0, 0, 0, 2]);

/// Stacks `a` and `b` on the two ends of one [`MemLink`].
#[derive(Debug)]
pub struct StackPair {
    /// The wire between them (its clock, faults and statistics).
    pub link: MemLink,
    /// The stack on device 0.
    pub a: Stack<MemDevice>,
    /// The stack on device 1.
    pub b: Stack<MemDevice>,
    /// The virtual time both were last polled at.
    pub now: Instant,
}

impl StackPair {
    /// `frames` buffers of 2048 bytes per side; `faults` in both directions.
    pub fn new(seed: u64, faults: Faults, ca: StackConfig, cb: StackConfig, frames: usize) -> StackPair {
        let (link, da, db) = MemLink::pair(seed, [faults.clone(), faults], [MAC_A, MAC_B], frames, 2048);
        let now = Instant::from_secs(1);
        link.set_now(now);
        StackPair { a: Stack::new(da, ca, now), b: Stack::new(db, cb, now), link, now }
    }

    /// Poll both stacks once, then move time to the next thing due (staying at `now` while an
    /// application call left output pending). Returns the events of this step.
    pub fn step(&mut self, events: &mut Vec<(char, Handle, StackEvent)>) {
        let na = self.a.poll(self.now);
        let nb = self.b.poll(self.now);
        while let Some((h, e)) = self.a.poll_event() {
            events.push(('a', h, e));
        }
        while let Some((h, e)) = self.b.poll_event() {
            events.push(('b', h, e));
        }
        let busy = self.a.has_pending_output() || self.b.has_pending_output();
        let next = [na, nb, self.link.next_arrival()].into_iter().flatten().min();
        self.now = match next {
            _ if busy => self.now,
            Some(t) if t > self.now => t,
            _ => self.now + Duration::from_micros(10),
        };
        self.link.set_now(self.now);
    }

    /// Open `n` connections from `b` to `a` (which must listen on `ports`, spread over them in
    /// turn), and step until every one is connected on `b` and accepted on `a`, within
    /// `limit` of virtual time. Returns (clients on `b`, servers on `a`).
    pub fn open_many(
        &mut self,
        n: usize,
        ports: core::ops::Range<u16>,
        limit: Duration,
    ) -> Result<(Vec<Handle>, Vec<Handle>), String> {
        let server_ip = self.a.ip();
        let span = ports.len().max(1);
        let mut events = Vec::new();
        let mut clients = Vec::with_capacity(n);
        for i in 0..n {
            let port = ports.start + (i % span) as u16;
            clients.push(self.b.connect(SocketAddrV4::new(server_ip, port)).map_err(|e: StackError| e.to_string())?);
            if i % 4096 == 4095 {
                self.step(&mut events); // let SYNs go before the queues are all full
            }
        }
        let mut servers = Vec::with_capacity(n);
        let mut connected = 0;
        let deadline = self.now + limit;
        while servers.len() < n || connected < n {
            self.step(&mut events);
            if self.now > deadline {
                return Err(format!("only {} accepted and {connected} connected of {n}", servers.len()));
            }
            for (side, h, e) in events.drain(..) {
                match (side, e) {
                    ('a', StackEvent::Accepted) => {
                        while let Ok(Some(s)) = self.a.accept(h) {
                            servers.push(s);
                        }
                    }
                    ('b', StackEvent::Connected) => connected += 1,
                    _ => {}
                }
            }
        }
        Ok((clients, servers))
    }
}
