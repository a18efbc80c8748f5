//! What the in-memory whole-stack tests (tests/stack.rs, tests/hostile.rs) share: two stacks
//! over `io::mem` stepped in virtual time with the events they raised, and a raw device to
//! put hand-made frames on the wire.
#![allow(dead_code)] // each test file uses its own part

use std::net::{Ipv4Addr, SocketAddrV4};
use xtcp::io::mem::{Faults, MemDevice};
use xtcp::io::{Device, Frame};
use xtcp::stack::pair::StackPair;
use xtcp::stack::{Handle, StackConfig, StackEvent};
use xtcp::time::Duration;
use xtcp::wire::{FrameRepr, MacAddr};

pub const IP_A: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
pub const IP_B: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
pub const MAC_A: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
pub const MAC_B: MacAddr = MacAddr([2, 0, 0, 0, 0, 2]);

pub struct Pair {
    pub inner: StackPair,
    pub events: Vec<(char, Handle, StackEvent)>,
}

impl std::ops::Deref for Pair {
    type Target = StackPair;
    fn deref(&self) -> &StackPair {
        &self.inner
    }
}

impl std::ops::DerefMut for Pair {
    fn deref_mut(&mut self) -> &mut StackPair {
        &mut self.inner
    }
}

pub fn config(ip: Ipv4Addr, seed: u8) -> StackConfig {
    StackConfig::new(ip, 24, [seed; 16])
}

impl Pair {
    pub fn new(faults: Faults, seed: u64) -> Pair {
        Pair::with(faults, seed, config(IP_A, 1), config(IP_B, 2))
    }

    pub fn with(faults: Faults, seed: u64, ca: StackConfig, cb: StackConfig) -> Pair {
        // 50 µs each way unless the test wants a longer path.
        let delay = if faults.delay.is_zero() { Duration::from_micros(50) } else { faults.delay };
        let faults = Faults { delay, ..faults };
        Pair { inner: StackPair::new(seed, faults, ca, cb, 4096), events: Vec::new() }
    }

    /// Step both stacks until `done` says so; at most `limit` of virtual time.
    pub fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&mut Pair) -> bool) {
        let end = self.now + limit;
        loop {
            let mut ev = std::mem::take(&mut self.events);
            self.inner.step(&mut ev);
            self.events = ev;
            if done(self) {
                return;
            }
            assert!(self.now <= end, "not done within {limit:?}");
        }
    }

    /// Move virtual time to `at` (the link too) without stepping through what lies between,
    /// poll both stacks there and collect their events. (`run_until` jumps idle time to the
    /// next deadline instead, which in TIME-WAIT is TIME-WAIT's end.)
    pub fn poll_at(&mut self, at: xtcp::time::Instant) {
        self.inner.now = at;
        self.inner.link.set_now(at);
        self.inner.a.poll(at);
        self.inner.b.poll(at);
        while let Some((h, e)) = self.inner.a.poll_event() {
            self.events.push(('a', h, e));
        }
        while let Some((h, e)) = self.inner.b.poll_event() {
            self.events.push(('b', h, e));
        }
    }

    pub fn has(&self, side: char, h: Handle, e: StackEvent) -> bool {
        self.events.iter().any(|&(s, hh, ee)| s == side && hh == h && ee == e)
    }
}

/// Pattern byte `i` of a stream.
pub fn byte(stream: u8, i: usize) -> u8 {
    (i as u8).wrapping_mul(31).wrapping_add(stream)
}

pub fn raw_send(dev: &mut MemDevice, repr: &FrameRepr<'_>) {
    let mut f = dev.alloc_tx().unwrap();
    let n = repr.emit(dev.buffer_mut(&f)).unwrap();
    f.len = n as u32;
    let mut v = vec![f];
    dev.tx_burst(&mut v);
}

pub fn raw_recv(dev: &mut MemDevice) -> Vec<Vec<u8>> {
    let mut rx: Vec<Frame> = Vec::new();
    dev.rx_burst(&mut rx, 64);
    rx.into_iter()
        .map(|f| {
            let v = dev.frame(&f).to_vec();
            dev.recycle(f);
            v
        })
        .collect()
}

/// Connect B → A:80 and return (client on B, server on A).
pub fn open(p: &mut Pair) -> (Handle, Handle) {
    let listener = p.a.listen(80, 16).unwrap();
    let client = p.b.connect(SocketAddrV4::new(IP_A, 80)).unwrap();
    p.run_until(Duration::from_secs(30), |p| p.has('b', client, StackEvent::Connected));
    p.run_until(Duration::from_secs(5), |p| p.has('a', listener, StackEvent::Accepted));
    let server = p.a.accept(listener).unwrap().expect("a connection waits");
    (client, server)
}
