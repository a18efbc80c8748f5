//! tokio on xtcp: [`TcpListener`] and [`TcpStream`] with tokio's `AsyncRead` and `AsyncWrite`,
//! so code written for tokio's sockets (hyper, tokio-util codecs, `copy`) runs on one core's
//! [`Stack`] (feature `tokio`).
//!
//! Thread per core, as the rest of xtcp: each core runs a current-thread runtime with a
//! [`LocalSet`](::tokio::task::LocalSet); a [`Net`] owns that core's stack; one task drives it
//! ([`Net::run`], or [`Net::run_busy`]) and wakes the tasks whose connections became ready.
//! Nothing is shared between threads and nothing is locked: the types are `!Send`, and a
//! `RefCell` (never held across an `.await`) is all that stands between tasks.
//!
//! ```no_run
//! # #[cfg(feature = "afxdp")] fn main() -> std::io::Result<()> {
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//! use xtcp::io::afxdp::{AfXdpConfig, AfXdpDevice};
//! use xtcp::stack::{os_secret, Stack, StackConfig};
//! use xtcp::time::Clock;
//! let ip = std::net::Ipv4Addr::new(198, 18, 1, 1);
//! let dev = AfXdpDevice::open(&AfXdpConfig::new("x1k", &[ip]), 0).map_err(std::io::Error::other)?;
//! let clock = Clock::new();
//! let net = xtcp::tokio::Net::new(Stack::new(dev, StackConfig::new(ip, 24, os_secret()?), clock.now()), clock);
//! let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
//! tokio::task::LocalSet::new().block_on(&rt, async move {
//!     tokio::task::spawn_local({ let net = net.clone(); async move { net.run().await } });
//!     let listener = net.listen(7, 128)?;
//!     loop {
//!         let (mut s, _) = listener.accept().await?;
//!         tokio::task::spawn_local(async move {
//!             let mut buf = [0u8; 4096];
//!             while let Ok(n @ 1..) = s.read(&mut buf).await {
//!                 if s.write_all(&buf[..n]).await.is_err() { break; }
//!             }
//!         });
//!     }
//! })
//! # }
//! # #[cfg(not(feature = "afxdp"))] fn main() {}
//! ```
//!
//! Readiness is the stack's edge-triggered events turned into wakers: a read or write that
//! would block stores its task's waker, and the driver wakes it on the next `Readable`,
//! `Writable`, `Connected`, `Accepted` or `Closed` of that connection. Because the waker is
//! stored only after the call found nothing, no edge is lost. The zero-copy calls stay
//! reachable through [`TcpStream::with_stack`] and the readiness futures.

use crate::io::Device;
use crate::stack::{Handle, Stack, StackError, StackEvent};
use crate::tcp::{CloseReason, State, TcpError};
use crate::time::{Clock, Duration, Instant};
use ::tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use core::future::{poll_fn, Future};
use core::net::SocketAddr;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};
use std::cell::RefCell;
use std::io;
use std::os::fd::AsFd;
use std::rc::Rc;

/// Deadlines closer than this are waited for by polling, not by a tokio timer: tokio's timer
/// wheel ticks in milliseconds, the stack's (pacing, RACK, TLP) in tens of microseconds.
const SPIN_FOR: Duration = Duration::from_millis(1);

/// One core's stack for tokio tasks: cheap to clone (all clones are the same stack), not
/// `Send`. See the [module documentation](self).
pub struct Net<D: Device> {
    inner: Rc<RefCell<Inner<D>>>,
}

impl<D: Device> Clone for Net<D> {
    fn clone(&self) -> Self {
        Net { inner: self.inner.clone() }
    }
}

impl<D: Device> core::fmt::Debug for Net<D> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Net").field("sockets", &self.inner.borrow().socks.iter().flatten().count()).finish()
    }
}

struct Inner<D: Device> {
    stack: Stack<D>,
    clock: Clock,
    /// What each open socket's tasks wait on, by [`Handle::index`].
    socks: Vec<Option<Rc<RefCell<Sock>>>>,
    /// The driver task, while it waits (woken when a call left work for the stack).
    driver: Option<Waker>,
    kicked: bool,
    stopped: bool,
}

/// A socket's readiness as its tasks see it.
#[derive(Debug)]
struct Sock {
    handle: Handle,
    /// The task reading (or accepting, on a listener).
    read: Option<Waker>,
    /// The task writing (or connecting).
    write: Option<Waker>,
    connected: bool,
    /// The stack said `Closed`: the handle is gone, this is why.
    closed: Option<CloseReason>,
    shut: bool,
}

fn wake(w: &mut Option<Waker>) {
    if let Some(w) = w.take() {
        w.wake();
    }
}

impl Sock {
    fn wake_all(&mut self) {
        wake(&mut self.read);
        wake(&mut self.write);
    }
}

impl<D: Device> Inner<D> {
    fn register(&mut self, handle: Handle) -> Rc<RefCell<Sock>> {
        let i = handle.index();
        if self.socks.len() <= i {
            self.socks.resize_with(i + 1, || None);
        }
        let sock = Rc::new(RefCell::new(Sock {
            handle,
            read: None,
            write: None,
            connected: false,
            closed: None,
            shut: false,
        }));
        self.socks[i] = Some(sock.clone());
        sock
    }

    /// A call left work for the stack (data to send, a window to open, a FIN): make sure
    /// the driver takes its next turn soon rather than at its next deadline.
    fn kick(&mut self) {
        self.kicked = true;
        if let Some(w) = self.driver.take() {
            w.wake();
        }
    }

    /// One turn of the stack, then its events handed to the tasks waiting on them. Returns
    /// the next deadline and whether frames moved.
    fn turn(&mut self) -> (Option<Instant>, bool) {
        let before = {
            let c = self.stack.counters();
            c.frames_in + c.frames_out
        };
        let next = self.stack.poll(self.clock.now());
        while let Some((h, ev)) = self.stack.poll_event() {
            let Some(Some(sock)) = self.socks.get(h.index()) else { continue };
            let mut s = sock.borrow_mut();
            if s.handle != h {
                continue;
            }
            match ev {
                StackEvent::Connected => {
                    s.connected = true;
                    wake(&mut s.write);
                }
                StackEvent::Accepted | StackEvent::Readable | StackEvent::PeerClosed => {
                    wake(&mut s.read);
                }
                StackEvent::Writable => {
                    wake(&mut s.write);
                }
                StackEvent::Closed(r) => {
                    s.closed = Some(r);
                    s.wake_all();
                    drop(s);
                    self.socks[h.index()] = None;
                }
            }
        }
        let c = self.stack.counters();
        (next, c.frames_in + c.frames_out != before)
    }
}

impl<D: Device> Net<D> {
    /// Run `stack` for tokio tasks on this thread. `clock` must be the one whose
    /// [`Clock::now`] the stack was made with.
    pub fn new(stack: Stack<D>, clock: Clock) -> Net<D> {
        Net {
            inner: Rc::new(RefCell::new(Inner {
                stack,
                clock,
                socks: Vec::new(),
                driver: None,
                kicked: false,
                stopped: false,
            })),
        }
    }

    /// Listen on `port` (all of the stack's addresses) with an accept queue of `backlog`.
    pub fn listen(&self, port: u16, backlog: usize) -> io::Result<TcpListener<D>> {
        let mut inner = self.inner.borrow_mut();
        let handle = inner.stack.listen(port, backlog)?;
        let sock = inner.register(handle);
        Ok(TcpListener { net: self.clone(), sock })
    }

    /// Open a connection to `remote`; resolves once it is established (or refused, or
    /// timed out). Dropping the future before then abandons the attempt.
    pub async fn connect(&self, remote: impl Into<SocketAddr>) -> io::Result<TcpStream<D>> {
        let stream = {
            let mut inner = self.inner.borrow_mut();
            let handle = inner.stack.connect(remote)?;
            let sock = inner.register(handle);
            inner.kick();
            TcpStream { net: self.clone(), sock }
        };
        poll_fn(|cx| {
            let mut s = stream.sock.borrow_mut();
            if s.connected {
                return Poll::Ready(Ok(()));
            }
            if let Some(r) = s.closed {
                return Poll::Ready(Err(closed_error(r)));
            }
            s.write = Some(cx.waker().clone());
            Poll::Pending
        })
        .await?;
        Ok(stream)
    }

    /// Run `f` on the stack itself: configuration, counters, calls this module does not
    /// wrap. The driver is woken afterwards, in case `f` left it work.
    pub fn with_stack<R>(&self, f: impl FnOnce(&mut Stack<D>) -> R) -> R {
        let mut inner = self.inner.borrow_mut();
        let r = f(&mut inner.stack);
        inner.kick();
        r
    }

    /// One turn of the stack (receive, timers, transmit) and its events delivered to the
    /// waiting tasks; returns the next deadline. For a driver of one's own (the in-memory
    /// link's tests drive two stacks in one task); [`Net::run`] and [`Net::run_busy`] call it.
    pub fn turn(&self) -> Option<Instant> {
        self.inner.borrow_mut().turn().0
    }

    /// Make [`Net::run`] and [`Net::run_busy`] return after their current turn.
    pub fn stop(&self) {
        let mut inner = self.inner.borrow_mut();
        inner.stopped = true;
        inner.kick();
    }

    /// Drive the stack by busy-polling: one turn, then let the other tasks run, forever
    /// (until [`Net::stop`]). The lowest latency, and the whole core.
    pub async fn run_busy(&self) {
        while !self.inner.borrow().stopped {
            self.turn();
            ::tokio::task::yield_now().await;
        }
    }

    /// Drive the stack, sleeping when there is nothing to do: after a turn that moved no
    /// frames, with no deadline within a millisecond, the task waits for the device's
    /// descriptor to become readable (frames in its RX ring), for the next deadline, or for
    /// a call that left the stack work (a send, a read that opens the window, a close).
    /// Returns after [`Net::stop`], or with the error of registering the descriptor.
    pub async fn run(&self) -> io::Result<()>
    where
        D: AsFd,
    {
        let fd = crate::io::reactor::watch_readable(self.inner.borrow().stack.device().as_fd())?;
        loop {
            let (next, moved) = {
                let mut inner = self.inner.borrow_mut();
                if inner.stopped {
                    return Ok(());
                }
                inner.kicked = false;
                inner.turn()
            };
            let now = self.inner.borrow().clock.now();
            let soon = next.is_some_and(|d| d.saturating_duration_since(now) < SPIN_FOR);
            if moved || soon {
                ::tokio::task::yield_now().await;
                continue;
            }
            let sleep = next.map(|d| ::tokio::time::sleep(d.saturating_duration_since(now)));
            let mut sleep = sleep.map(Box::pin);
            poll_fn(|cx| {
                let mut inner = self.inner.borrow_mut();
                if inner.kicked || inner.stopped {
                    return Poll::Ready(());
                }
                if let Poll::Ready(r) = fd.poll_read_ready(cx) {
                    // Edge-triggered: forget this edge; the turn that follows empties the ring.
                    if let Ok(mut guard) = r {
                        guard.clear_ready();
                    }
                    return Poll::Ready(());
                }
                if let Some(s) = sleep.as_mut() {
                    if s.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(());
                    }
                }
                inner.driver = Some(cx.waker().clone());
                Poll::Pending
            })
            .await;
        }
    }
}

/// The peer's FIN has arrived: a read returns the rest, then the end of the stream.
fn fin_received(state: State) -> bool {
    matches!(state, State::CloseWait | State::Closing | State::LastAck | State::TimeWait | State::Closed)
}

fn closed_error(r: CloseReason) -> io::Error {
    StackError::Tcp(TcpError::Closed(r)).into()
}

/// A listening socket; dropping it stops listening (connections not yet accepted are reset).
pub struct TcpListener<D: Device> {
    net: Net<D>,
    sock: Rc<RefCell<Sock>>,
}

impl<D: Device> core::fmt::Debug for TcpListener<D> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TcpListener").field("handle", &self.sock.borrow().handle).finish()
    }
}

impl<D: Device> TcpListener<D> {
    /// The next connection and its peer's address.
    pub async fn accept(&self) -> io::Result<(TcpStream<D>, SocketAddr)> {
        poll_fn(|cx| self.poll_accept(cx)).await
    }

    /// Poll for the next connection: `Pending` (the task woken on the next `Accepted`) when
    /// none waits.
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(TcpStream<D>, SocketAddr)>> {
        let mut inner = self.net.inner.borrow_mut();
        let listener = self.sock.borrow().handle;
        match inner.stack.accept(listener) {
            Ok(Some(h)) => {
                let peer = inner.stack.tcb(h).map(|t| t.remote())?;
                let sock = inner.register(h);
                Poll::Ready(Ok((TcpStream { net: self.net.clone(), sock }, peer)))
            }
            Ok(None) => {
                self.sock.borrow_mut().read = Some(cx.waker().clone());
                Poll::Pending
            }
            Err(e) => Poll::Ready(Err(e.into())),
        }
    }

    /// The stack's handle of the listener.
    pub fn handle(&self) -> Handle {
        self.sock.borrow().handle
    }
}

impl<D: Device> Drop for TcpListener<D> {
    fn drop(&mut self) {
        let h = self.sock.borrow().handle;
        if let Ok(mut inner) = self.net.inner.try_borrow_mut() {
            let _ = inner.stack.close(h);
            inner.socks[h.index()] = None;
            inner.kick();
        }
    }
}

/// A connection, with tokio's `AsyncRead` and `AsyncWrite`. Dropping it closes it as
/// `close(2)` does: a FIN after what was written, or a reset if received data was left
/// unread. Reads and writes are cancel-safe: a dropped read future has consumed nothing.
pub struct TcpStream<D: Device> {
    net: Net<D>,
    sock: Rc<RefCell<Sock>>,
}

impl<D: Device> core::fmt::Debug for TcpStream<D> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TcpStream").field("sock", &*self.sock.borrow()).finish()
    }
}

impl<D: Device> TcpStream<D> {
    /// The stack's handle of the connection (valid until it is closed).
    pub fn handle(&self) -> Handle {
        self.sock.borrow().handle
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.with_stack(|s, h| Ok(s.tcb(h)?.remote()))
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.with_stack(|s, h| Ok(s.tcb(h)?.local()))
    }

    /// TCP_NODELAY: Nagle's algorithm off (`true`) or on.
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.with_stack(|s, h| Ok(s.set_nodelay(h, nodelay)?))
    }

    /// Run `f` on the stack with this connection's handle: the zero-copy calls
    /// ([`Stack::recv_chunks`], [`Stack::consume`], [`Stack::send_buf`]), statistics. The
    /// driver is woken afterwards. Wait for [`TcpStream::readable`] or
    /// [`TcpStream::writable`] when a call would block.
    pub fn with_stack<R>(&self, f: impl FnOnce(&mut Stack<D>, Handle) -> R) -> R {
        let h = self.handle();
        self.net.with_stack(|s| f(s, h))
    }

    /// Resolves when a read would not block: data, the end of the stream, or an error.
    pub async fn readable(&self) {
        poll_fn(|cx| self.poll_read_ready(cx)).await
    }

    /// Resolves when a write would not block (room in the send buffer) or would fail.
    pub async fn writable(&self) {
        poll_fn(|cx| self.poll_write_ready(cx)).await
    }

    /// Poll form of [`TcpStream::readable`].
    pub fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<()> {
        let inner = self.net.inner.borrow();
        let mut s = self.sock.borrow_mut();
        let ready = s.closed.is_some()
            || match inner.stack.tcb(s.handle) {
                Ok(t) => t.recv_available() > 0 || fin_received(t.state()),
                Err(_) => true,
            };
        if ready {
            return Poll::Ready(());
        }
        s.read = Some(cx.waker().clone());
        Poll::Pending
    }

    /// Poll form of [`TcpStream::writable`].
    pub fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<()> {
        let inner = self.net.inner.borrow();
        let mut s = self.sock.borrow_mut();
        let ready = s.closed.is_some()
            || match inner.stack.tcb(s.handle) {
                Ok(t) => t.send_capacity() > 0 || !matches!(t.state(), State::Established | State::CloseWait),
                Err(_) => true,
            };
        if ready {
            return Poll::Ready(());
        }
        s.write = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl<D: Device> AsyncRead for TcpStream<D> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let mut inner = self.net.inner.borrow_mut();
        let mut s = self.sock.borrow_mut();
        if let Some(r) = s.closed {
            // After a normal end the stack has handed out every byte: end of stream.
            return Poll::Ready(if r == CloseReason::Normal { Ok(()) } else { Err(closed_error(r)) });
        }
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        match inner.stack.recv(s.handle, buf.initialize_unfilled()) {
            Ok(n) => {
                buf.advance(n);
                if n > 0 {
                    inner.kick(); // the window may open
                }
                Poll::Ready(Ok(()))
            }
            Err(StackError::Tcp(TcpError::WouldBlock)) => {
                s.read = Some(cx.waker().clone());
                Poll::Pending
            }
            Err(e) => Poll::Ready(Err(e.into())),
        }
    }
}

impl<D: Device> AsyncWrite for TcpStream<D> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let mut inner = self.net.inner.borrow_mut();
        let mut s = self.sock.borrow_mut();
        if let Some(r) = s.closed {
            return Poll::Ready(Err(if r == CloseReason::Normal {
                io::ErrorKind::BrokenPipe.into()
            } else {
                closed_error(r)
            }));
        }
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        match inner.stack.send(s.handle, data) {
            Ok(n) => {
                inner.kick();
                Poll::Ready(Ok(n))
            }
            Err(StackError::Tcp(TcpError::WouldBlock)) => {
                s.write = Some(cx.waker().clone());
                Poll::Pending
            }
            Err(e) => Poll::Ready(Err(e.into())),
        }
    }

    /// Written bytes are the stack's to send: nothing to wait for but the driver's turn.
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.net.inner.borrow_mut().kick();
        Poll::Ready(Ok(()))
    }

    /// Half-close: a FIN after what was written (`shutdown(SHUT_WR)`); reading goes on.
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut inner = self.net.inner.borrow_mut();
        let mut s = self.sock.borrow_mut();
        if s.shut || s.closed.is_some() {
            return Poll::Ready(Ok(()));
        }
        let r = inner.stack.shutdown(s.handle);
        s.shut = true;
        inner.kick();
        Poll::Ready(r.map_err(io::Error::from))
    }
}

impl<D: Device> Drop for TcpStream<D> {
    fn drop(&mut self) {
        let s = self.sock.borrow();
        if s.closed.is_some() {
            return;
        }
        // Not re-entered: a stream is dropped by a task, never inside the driver's turn.
        if let Ok(mut inner) = self.net.inner.try_borrow_mut() {
            let _ = inner.stack.close(s.handle);
            inner.kick();
        }
    }
}
