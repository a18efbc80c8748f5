//! The bench's server: answers framed requests (proto.rs) or echoes, over any [`Net`], on one
//! thread, until SIGINT/SIGTERM.

use crate::net::{Net, NetEvent};
use crate::proto::RequestReader;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerMode {
    /// Answer each framed request with the response length it asks for.
    Framed,
    /// Echo every byte.
    Echo,
}

#[derive(Debug, Default, Clone, Copy)]
pub struct ServerStats {
    pub accepted: u64,
    pub requests: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Connections closed for a protocol error or a reset.
    pub errors: u64,
}

#[derive(Default)]
struct SConn {
    reader: RequestReader,
    /// Framed: response bytes owed.
    owed: u64,
    /// Echo: bytes owed.
    pending: Vec<u8>,
    pending_pos: usize,
}

/// Stop reading a connection while it owes this much (backpressure).
const MAX_OWED: u64 = 4 << 20;

pub struct Server<N: Net> {
    net: N,
    mode: ServerMode,
    conns: Vec<Option<SConn>>,
    scratch: Vec<u8>,
    filler: Vec<u8>,
    /// Connections `serve` left with work to do: served again after the next poll.
    again: Vec<usize>,
    pub stats: ServerStats,
}

/// Rounds of writing and reading `Server::serve` does on one connection before it lets the
/// loop see its stop flag and the other connections (a sender that never pauses would hold
/// the loop on its connection forever; the events are edge-triggered, hence `again`).
const SERVE_ROUNDS: usize = 64;

impl<N: Net> Server<N> {
    pub fn new(mut net: N, listen: SocketAddr, backlog: usize, mode: ServerMode) -> std::io::Result<Server<N>> {
        net.listen(listen, backlog)?;
        Ok(Server {
            net,
            mode,
            conns: Vec::new(),
            scratch: vec![0u8; 256 * 1024],
            filler: vec![0x61; 64 * 1024],
            again: Vec::new(),
            stats: ServerStats::default(),
        })
    }

    pub fn net(&self) -> &N {
        &self.net
    }

    /// Serve until `stop`; `busy` spins instead of sleeping.
    pub fn run(&mut self, stop: &AtomicBool, busy: bool) -> std::io::Result<()> {
        let mut events = Vec::with_capacity(1024);
        let timeout = if busy { Duration::ZERO } else { Duration::from_millis(100) };
        while !stop.load(Ordering::Relaxed) {
            events.clear();
            self.net.poll(&mut events, if self.again.is_empty() { timeout } else { Duration::ZERO })?;
            let again = std::mem::take(&mut self.again);
            for &(id, ev) in &events {
                match ev {
                    NetEvent::Accepted => {
                        if self.conns.len() <= id {
                            self.conns.resize_with(id + 1, || None);
                        }
                        self.conns[id] = Some(SConn::default());
                        self.stats.accepted += 1;
                        self.serve(id);
                    }
                    NetEvent::Ready | NetEvent::Connected => self.serve(id),
                    NetEvent::Closed { error, .. } => {
                        if self.conns.get_mut(id).and_then(|c| c.take()).is_some() && error {
                            self.stats.errors += 1;
                        }
                    }
                }
            }
            for id in again {
                self.serve(id);
            }
        }
        Ok(())
    }

    fn finish(&mut self, id: usize, error: bool) {
        if self.conns.get_mut(id).and_then(|c| c.take()).is_some() {
            self.net.close(id);
            if error {
                self.stats.errors += 1;
            }
        }
    }

    /// Write what is owed; false if the connection failed.
    fn flush(&mut self, id: usize) -> bool {
        let Some(c) = self.conns.get_mut(id).and_then(|c| c.as_mut()) else { return false };
        loop {
            let r = if c.owed > 0 {
                let k = (c.owed as usize).min(self.filler.len());
                self.net.send(id, &self.filler[..k])
            } else if c.pending_pos < c.pending.len() {
                self.net.send(id, &c.pending[c.pending_pos..])
            } else {
                c.pending.clear();
                c.pending_pos = 0;
                return true;
            };
            match r {
                Ok(n) => {
                    self.stats.bytes_out += n as u64;
                    if c.owed > 0 {
                        c.owed -= n as u64;
                    } else {
                        c.pending_pos += n;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
                Err(_) => return false,
            }
        }
    }

    fn serve(&mut self, id: usize) {
        for _ in 0..SERVE_ROUNDS {
            if !self.flush(id) {
                return self.finish(id, true);
            }
            let Some(c) = self.conns.get_mut(id).and_then(|c| c.as_mut()) else { return };
            if c.owed + (c.pending.len() - c.pending_pos) as u64 >= MAX_OWED {
                return; // wait until the peer reads
            }
            match self.net.recv(id, &mut self.scratch) {
                Ok(0) => {
                    // The client closed: answer what it asked for, then close.
                    let _ = self.flush(id);
                    return self.finish(id, false);
                }
                Ok(n) => {
                    self.stats.bytes_in += n as u64;
                    let c = self.conns[id].as_mut().expect("checked above");
                    match self.mode {
                        ServerMode::Echo => c.pending.extend_from_slice(&self.scratch[..n]),
                        ServerMode::Framed => {
                            let before = c.reader.requests;
                            match c.reader.feed(&self.scratch[..n]) {
                                Ok(owed) => c.owed += owed,
                                Err(_) => return self.finish(id, true),
                            }
                            self.stats.requests += c.reader.requests - before;
                        }
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(_) => return self.finish(id, true),
            }
        }
        self.again.push(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;
    use std::net::IpAddr;
    use std::sync::Arc;

    /// One accepted connection whose peer never pauses: every read returns data, every write
    /// is taken whole. Edge-triggered: one Accepted event, then nothing.
    struct Firehose {
        accepted: bool,
    }

    impl Net for Firehose {
        fn connect(&mut self, _: SocketAddr, _: Option<IpAddr>) -> io::Result<usize> {
            Err(io::ErrorKind::Unsupported.into())
        }
        fn listen(&mut self, _: SocketAddr, _: usize) -> io::Result<()> {
            Ok(())
        }
        fn send(&mut self, _: usize, data: &[u8]) -> io::Result<usize> {
            Ok(data.len())
        }
        fn recv(&mut self, _: usize, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(1448);
            buf[..n].fill(7);
            Ok(n)
        }
        fn close(&mut self, _: usize) {}
        fn poll(&mut self, out: &mut Vec<(usize, NetEvent)>, _: Duration) -> io::Result<()> {
            if !self.accepted {
                self.accepted = true;
                out.push((0, NetEvent::Accepted));
            }
            Ok(())
        }
        fn name(&self) -> &'static str {
            "firehose"
        }
    }

    /// A connection that always has more to read still lets the loop see its stop flag (it
    /// served that connection forever before) and keeps being served.
    #[test]
    fn a_peer_that_never_pauses_does_not_hold_the_loop() {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel();
        let s = Arc::clone(&stop);
        std::thread::spawn(move || {
            let net = Firehose { accepted: false };
            let mut server = Server::new(net, "198.18.2.1:7000".parse().unwrap(), 16, ServerMode::Echo).unwrap();
            let r = server.run(&s, true);
            let _ = tx.send((r.is_ok(), server.stats.bytes_in));
        });
        std::thread::sleep(Duration::from_millis(100));
        stop.store(true, Ordering::Relaxed);
        let (ok, bytes_in) = rx.recv_timeout(Duration::from_secs(20)).expect("the server stopped when told");
        assert!(ok);
        assert!(bytes_in > 1448 * SERVE_ROUNDS as u64, "served beyond one turn: {bytes_in} bytes");
    }
}
