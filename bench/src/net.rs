//! The two TCP stacks the bench drives, behind one small interface: connections are numbered
//! slots, readiness comes from `poll`, reads and writes never block.
//!
//! * [`KernelNet`]: std sockets (non-blocking) registered with epoll through `mio`. Blocking
//!   mode sleeps in `epoll_wait`; busy-poll mode calls `epoll_wait` with a zero timeout in a
//!   loop and never sleeps.
//! * [`XtcpNet`]: one xtcp [`Stack`] on one AF_XDP queue, on the calling thread. Busy-poll mode
//!   spins on the rings; blocking mode sleeps in poll(2) on the socket when there is nothing to
//!   send (`Device::wait`).

use std::io::{self, ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// What happened to a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetEvent {
    /// An active open completed.
    Connected,
    /// A listener produced a new connection (its id is the event's).
    Accepted,
    /// Something may be readable or writable: try.
    Ready,
    /// The connection is over (the id is free again); `reset` if the peer reset it.
    Closed { reset: bool, error: bool },
}

/// A non-blocking TCP stack seen from the bench.
pub trait Net {
    /// Start an active open from `src` (None: the stack's choice), IPv4 or IPv6.
    fn connect(&mut self, dst: SocketAddr, src: Option<IpAddr>) -> io::Result<usize>;
    /// Listen on `addr`'s port (and address, for the kernel; the unspecified IPv6 address
    /// takes both families).
    fn listen(&mut self, addr: SocketAddr, backlog: usize) -> io::Result<()>;
    /// Write what fits; `WouldBlock` when nothing does.
    fn send(&mut self, c: usize, data: &[u8]) -> io::Result<usize>;
    /// Read what is there; `Ok(0)` at the end of the stream, `WouldBlock` when nothing is.
    fn recv(&mut self, c: usize, buf: &mut [u8]) -> io::Result<usize>;
    /// Close gracefully (FIN); the id may be reused at once by the bench's own bookkeeping.
    fn close(&mut self, c: usize);
    /// Gather events. `timeout` zero: do not sleep (busy-poll).
    fn poll(&mut self, out: &mut Vec<(usize, NetEvent)>, timeout: Duration) -> io::Result<()>;
    /// Label for the output.
    fn name(&self) -> &'static str;
    /// The device's own counters (xtcp: `Device::counters`: kicks, wake-ups, realigned or
    /// refused frames…; none for the kernel), for the result JSON.
    fn device_counters(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }
}

/// A free-list slab of connection slots.
struct Slab<T> {
    slots: Vec<Option<T>>,
    free: Vec<usize>,
}

impl<T> Slab<T> {
    fn new() -> Self {
        Slab { slots: Vec::new(), free: Vec::new() }
    }
    fn insert(&mut self, v: T) -> usize {
        match self.free.pop() {
            Some(i) => {
                self.slots[i] = Some(v);
                i
            }
            None => {
                self.slots.push(Some(v));
                self.slots.len() - 1
            }
        }
    }
    fn get_mut(&mut self, i: usize) -> Option<&mut T> {
        self.slots.get_mut(i).and_then(|s| s.as_mut())
    }
    fn remove(&mut self, i: usize) -> Option<T> {
        let v = self.slots.get_mut(i).and_then(|s| s.take());
        if v.is_some() {
            self.free.push(i);
        }
        v
    }
}

fn not_conn() -> io::Error {
    io::Error::new(ErrorKind::NotConnected, "no such connection")
}

pub use kernel::KernelNet;
pub use xtcp_net::XtcpNet;

mod kernel {
    use super::*;
    use mio::net::{TcpListener, TcpStream};
    use mio::{Events, Interest, Poll, Token};
    use socket2::{Domain, Socket, Type};

    const LISTENER: Token = Token(usize::MAX);

    struct KConn {
        s: TcpStream,
        connecting: bool,
    }

    pub struct KernelNet {
        poll: Poll,
        events: Events,
        conns: Slab<KConn>,
        listener: Option<TcpListener>,
    }

    impl KernelNet {
        pub fn new() -> io::Result<KernelNet> {
            Ok(KernelNet {
                poll: Poll::new()?,
                events: Events::with_capacity(1024),
                conns: Slab::new(),
                listener: None,
            })
        }

        fn add(&mut self, s: TcpStream, connecting: bool) -> io::Result<usize> {
            s.set_nodelay(true)?;
            let id = self.conns.insert(KConn { s, connecting });
            let c = self.conns.get_mut(id).ok_or_else(not_conn)?;
            if let Err(e) = self.poll.registry().register(&mut c.s, Token(id), Interest::READABLE | Interest::WRITABLE)
            {
                self.conns.remove(id);
                return Err(e);
            }
            Ok(id)
        }

        fn closed(&mut self, id: usize, reset: bool, error: bool, out: &mut Vec<(usize, NetEvent)>) {
            if let Some(mut c) = self.conns.remove(id) {
                let _ = self.poll.registry().deregister(&mut c.s);
            }
            out.push((id, NetEvent::Closed { reset, error }));
        }
    }

    impl Net for KernelNet {
        fn connect(&mut self, dst: SocketAddr, src: Option<IpAddr>) -> io::Result<usize> {
            let sock = Socket::new(Domain::for_address(dst), Type::STREAM, None)?;
            sock.set_nonblocking(true)?;
            if let Some(src) = src {
                sock.bind(&SocketAddr::new(src, 0).into())?;
            }
            match sock.connect(&dst.into()) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc_einprogress()) || e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            let s = TcpStream::from_std(std::net::TcpStream::from(sock));
            self.add(s, true)
        }

        fn listen(&mut self, addr: SocketAddr, backlog: usize) -> io::Result<()> {
            let sock = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
            sock.set_reuse_address(true)?;
            sock.set_nonblocking(true)?;
            if addr.is_ipv6() {
                // Both families on `[::]` (Linux's default, bindv6only 0, said explicitly).
                sock.set_only_v6(false)?;
            }
            sock.bind(&addr.into())?;
            sock.listen(backlog.min(i32::MAX as usize) as i32)?;
            let mut l = TcpListener::from_std(std::net::TcpListener::from(sock));
            self.poll.registry().register(&mut l, LISTENER, Interest::READABLE)?;
            self.listener = Some(l);
            Ok(())
        }

        fn send(&mut self, c: usize, data: &[u8]) -> io::Result<usize> {
            let k = self.conns.get_mut(c).ok_or_else(not_conn)?;
            k.s.write(data)
        }

        fn recv(&mut self, c: usize, buf: &mut [u8]) -> io::Result<usize> {
            let k = self.conns.get_mut(c).ok_or_else(not_conn)?;
            k.s.read(buf)
        }

        fn close(&mut self, c: usize) {
            if let Some(mut k) = self.conns.remove(c) {
                let _ = self.poll.registry().deregister(&mut k.s);
                // Dropping the socket closes it: a FIN (or a RST if unread data is left, as close(2) does).
            }
        }

        fn poll(&mut self, out: &mut Vec<(usize, NetEvent)>, timeout: Duration) -> io::Result<()> {
            match self.poll.poll(&mut self.events, Some(timeout)) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => return Ok(()),
                Err(e) => return Err(e),
            }
            let ids: Vec<(Token, bool)> = self.events.iter().map(|e| (e.token(), e.is_error())).collect();
            for (t, is_error) in ids {
                if t == LISTENER {
                    while let Some(l) = self.listener.as_ref() {
                        match l.accept() {
                            Ok((s, _)) => {
                                // A socket that cannot be registered is dropped (closed): the
                                // client sees the close; the server goes on.
                                if let Ok(id) = self.add(s, false) {
                                    out.push((id, NetEvent::Accepted));
                                }
                            }
                            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                            // ECONNABORTED and the like: that connection is gone, others may wait.
                            Err(e) if e.kind() == ErrorKind::ConnectionAborted => continue,
                            // EMFILE, ENOBUFS…: leave the rest queued until the next event
                            // rather than end the server.
                            Err(_) => break,
                        }
                    }
                    continue;
                }
                let id = t.0;
                let Some(c) = self.conns.get_mut(id) else { continue };
                if c.connecting {
                    match c.s.take_error() {
                        Ok(Some(e)) | Err(e) => {
                            let reset = e.kind() == ErrorKind::ConnectionReset;
                            self.closed(id, reset, true, out);
                            continue;
                        }
                        Ok(None) => {}
                    }
                    match c.s.peer_addr() {
                        Ok(_) => {
                            c.connecting = false;
                            out.push((id, NetEvent::Connected));
                        }
                        Err(e) if e.kind() == ErrorKind::NotConnected && !is_error => continue,
                        Err(_) => {
                            self.closed(id, false, true, out);
                            continue;
                        }
                    }
                }
                out.push((id, NetEvent::Ready));
            }
            Ok(())
        }

        fn name(&self) -> &'static str {
            "kernel"
        }
    }

    /// EINPROGRESS on Linux (a non-blocking connect under way).
    fn libc_einprogress() -> i32 {
        nix::errno::Errno::EINPROGRESS as i32
    }
}

mod xtcp_net {
    use super::*;
    use std::collections::HashMap;
    use xtcp::io::afxdp::{AfXdpConfig, AfXdpDevice};
    use xtcp::io::Device;
    use xtcp::stack::{Handle, Stack, StackConfig, StackError, StackEvent};
    use xtcp::tcp::{CloseReason, TcpError};
    use xtcp::time::Instant;

    /// How the xtcp stack is set up for the bench.
    #[derive(Debug, Clone)]
    pub struct XtcpOptions {
        pub iface: String,
        pub ip: Ipv4Addr,
        pub prefix: u8,
        pub max_sockets: usize,
        /// TIME-WAIT of connections this side closes first.
        pub time_wait: Duration,
        /// A port in TIME-WAIT may be taken by a new connection after this long there
        /// (`StackConfig::time_wait_reuse`): an xtcp client opening tens of thousands of
        /// connections a second to one server needs it, as a kernel client needs
        /// tcp_tw_reuse, or its ports run out.
        pub time_wait_reuse: Option<Duration>,
        /// Send and receive buffer of each connection, bytes (None: the stack's default).
        pub tcp_buffer: Option<usize>,
        /// Further addresses of the stack (the client's `--src`), on the same subnet.
        pub extra_ips: Vec<Ipv4Addr>,
        /// IPv6 addresses of the stack (`--ip6`) and their prefix: dual stack.
        pub ipv6: Vec<Ipv6Addr>,
        pub ipv6_prefix: u8,
    }

    /// One xtcp stack on device `D` (AF_XDP by default; DPDK with the `dpdk` feature).
    pub struct XtcpNet<D: Device = AfXdpDevice> {
        stack: Stack<D>,
        t0: std::time::Instant,
        conns: Slab<Handle>,
        ids: HashMap<Handle, usize>,
        listener: Option<Handle>,
        pub mode: String,
    }

    fn stack_err(e: StackError) -> io::Error {
        match e {
            StackError::Tcp(TcpError::WouldBlock) => ErrorKind::WouldBlock.into(),
            StackError::Tcp(TcpError::Closed(CloseReason::Reset)) => ErrorKind::ConnectionReset.into(),
            StackError::PortsExhausted | StackError::TooManySockets => {
                io::Error::new(ErrorKind::AddrNotAvailable, e.to_string())
            }
            e => io::Error::other(e.to_string()),
        }
    }

    impl XtcpNet<AfXdpDevice> {
        pub fn open(o: &XtcpOptions) -> Result<XtcpNet, String> {
            let addrs: Vec<IpAddr> = core::iter::once(o.ip)
                .chain(o.extra_ips.iter().copied())
                .map(IpAddr::from)
                .chain(o.ipv6.iter().copied().map(IpAddr::from))
                .collect();
            let dev = AfXdpDevice::open(&AfXdpConfig::new(o.iface.as_str(), &addrs), 0)
                .map_err(|e| format!("AF_XDP on {}: {e} (needs root and the interface in this namespace)", o.iface))?;
            if !o.ipv6.is_empty() {
                // The link-local address, known once the device is: steered too.
                let ll = xtcp::stack::link_local_from(xtcp::io::Device::mac(&dev));
                dev.program().add_addr(ll).map_err(|e| format!("steering {ll}: {e}"))?;
            }
            let mode = format!("XDP {:?}, socket {:?}", dev.program().mode(), dev.bind_mode());
            XtcpNet::with_device(dev, o, mode)
        }
    }

    #[cfg(feature = "dpdk")]
    impl XtcpNet<xtcp::io::dpdk::DpdkDevice> {
        /// On a DPDK port: `vdev` as DPDK's devargs, `eal` the EAL's arguments (None: xtcp's
        /// defaults).
        pub fn open_dpdk(o: &XtcpOptions, vdev: &str, eal: Option<&str>) -> Result<Self, String> {
            let mut cfg = xtcp::io::dpdk::DpdkConfig::new(vdev);
            if let Some(e) = eal {
                cfg.eal_args = e.split_whitespace().map(str::to_string).collect();
            }
            let dev = xtcp::io::dpdk::DpdkDevice::open(&cfg).map_err(|e| format!("DPDK {vdev:?}: {e}"))?;
            let mode = format!("DPDK {} port {}", dev.name(), dev.port_id());
            XtcpNet::with_device(dev, o, mode)
        }
    }

    impl<D: Device> XtcpNet<D> {
        fn with_device(dev: D, o: &XtcpOptions, mode: String) -> Result<Self, String> {
            let secret = xtcp::stack::os_secret().map_err(|e| format!("no entropy from the OS: {e}"))?;
            let mut cfg = StackConfig::new(o.ip, o.prefix, secret);
            cfg.max_sockets = o.max_sockets;
            cfg.extra_ips = o.extra_ips.clone();
            cfg.ipv6 = o.ipv6.clone();
            cfg.ipv6_prefix_len = o.ipv6_prefix;
            // As the kernel clients' namespaces get (scripts/bench): every port but the
            // privileged ones, so connect/close cycles are not bounded by TIME-WAIT ports.
            cfg.ephemeral_ports = (1024, 65535);
            cfg.tcp.time_wait = xtcp::time::Duration::from_micros(o.time_wait.as_micros() as u64);
            cfg.time_wait_reuse = o.time_wait_reuse.map(|d| xtcp::time::Duration::from_micros(d.as_micros() as u64));
            if let Some(b) = o.tcp_buffer {
                cfg.tcp.send_buffer = b;
                cfg.tcp.recv_buffer = b;
            }
            let t0 = std::time::Instant::now();
            let stack = Stack::new(dev, cfg, Instant::from_micros(0));
            Ok(XtcpNet { stack, t0, conns: Slab::new(), ids: HashMap::new(), listener: None, mode })
        }

        fn now(&self) -> Instant {
            Instant::from_micros(self.t0.elapsed().as_micros() as u64)
        }

        fn handle(&mut self, c: usize) -> io::Result<Handle> {
            self.conns.get_mut(c).copied().ok_or_else(not_conn)
        }

        pub fn counters(&self) -> xtcp::stack::Counters {
            *self.stack.counters()
        }
    }

    impl<D: Device> Net for XtcpNet<D> {
        fn connect(&mut self, dst: SocketAddr, src: Option<IpAddr>) -> io::Result<usize> {
            let h = match src {
                Some(s) => {
                    let tcp = self.stack.config().tcp.clone();
                    self.stack.connect_from(s, dst, tcp)
                }
                None => self.stack.connect(dst),
            }
            .map_err(stack_err)?;
            let _ = self.stack.set_nodelay(h, true);
            let id = self.conns.insert(h);
            self.ids.insert(h, id);
            Ok(id)
        }

        fn listen(&mut self, addr: SocketAddr, backlog: usize) -> io::Result<()> {
            self.listener = Some(self.stack.listen(addr.port(), backlog).map_err(stack_err)?);
            Ok(())
        }

        fn send(&mut self, c: usize, data: &[u8]) -> io::Result<usize> {
            let h = self.handle(c)?;
            match self.stack.send(h, data) {
                Ok(0) if !data.is_empty() => Err(ErrorKind::WouldBlock.into()),
                r => r.map_err(stack_err),
            }
        }

        fn recv(&mut self, c: usize, buf: &mut [u8]) -> io::Result<usize> {
            let h = self.handle(c)?;
            self.stack.recv(h, buf).map_err(stack_err)
        }

        fn close(&mut self, c: usize) {
            if let Some(h) = self.conns.remove(c) {
                // The stack finishes the close on its own (FIN, LAST-ACK or TIME-WAIT); its
                // Closed event then finds no slot and is ignored.
                self.ids.remove(&h);
                let _ = self.stack.close(h);
            }
        }

        fn poll(&mut self, out: &mut Vec<(usize, NetEvent)>, timeout: Duration) -> io::Result<()> {
            let next = self.stack.poll(self.now());
            let before = out.len();
            while let Some((h, e)) = self.stack.poll_event() {
                if Some(h) == self.listener {
                    if e == StackEvent::Accepted {
                        while let Ok(Some(c)) = self.stack.accept(h) {
                            let _ = self.stack.set_nodelay(c, true);
                            let id = self.conns.insert(c);
                            self.ids.insert(c, id);
                            out.push((id, NetEvent::Accepted));
                        }
                    }
                    continue;
                }
                let Some(&id) = self.ids.get(&h) else { continue };
                match e {
                    StackEvent::Connected => out.push((id, NetEvent::Connected)),
                    StackEvent::Closed(r) => {
                        self.ids.remove(&h);
                        self.conns.remove(id);
                        let reset = matches!(r, CloseReason::Reset | CloseReason::Refused);
                        let error = r != CloseReason::Normal;
                        out.push((id, NetEvent::Closed { reset, error }));
                    }
                    _ => out.push((id, NetEvent::Ready)),
                }
            }
            if out.len() == before && !timeout.is_zero() && !self.stack.has_pending_output() {
                let now = self.now();
                let mut wait = xtcp::time::Duration::from_micros(timeout.as_micros() as u64);
                if let Some(n) = next {
                    wait = wait.min(n - now);
                }
                if !wait.is_zero() {
                    self.stack.device_mut().wait(wait);
                }
            }
            Ok(())
        }

        fn name(&self) -> &'static str {
            "xtcp"
        }

        fn device_counters(&self) -> Vec<(&'static str, u64)> {
            self.stack.device().counters()
        }
    }
}

pub use xtcp_net::XtcpOptions;
