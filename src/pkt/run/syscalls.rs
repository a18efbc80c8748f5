//! System calls: the blocking ones (a call with a time range may wait while the script goes
//! on) and each call's emulation against the socket layer.

use super::*;

impl Interp<'_> {
    // ------------------------------------------------------------------ blocking calls

    /// See whether the blocked call can return now; if so, check its result and time.
    pub(super) fn check_pending(&mut self) -> R<()> {
        let Some(mut p) = self.pending.take() else { return Ok(()) };
        let ret = match &mut p.kind {
            PendingKind::Accept => {
                let r = self.k.accept(p.fd);
                match self.kernel(r)? {
                    SysRet::Block => None,
                    r => Some(r),
                }
            }
            PendingKind::Connect(id) => {
                if self.k.connect_done(*id) {
                    Some(self.k.connect_progress(p.fd, *id))
                } else {
                    None
                }
            }
            PendingKind::Read { len, dontwait } => {
                if self.k.read_ready(p.fd) {
                    let mut data = Vec::new();
                    let r = self.k.read(p.fd, *len, *dontwait, &mut data);
                    let r = self.kernel(r)?;
                    self.check_read_bytes(p.fd, &data)?;
                    match r {
                        SysRet::Block => None,
                        r => Some(r),
                    }
                } else {
                    None
                }
            }
            PendingKind::Write { len, done, dontwait, more } => {
                if self.k.write_ready(p.fd) {
                    let r = self.k.write(p.fd, *len - *done, *dontwait, *more);
                    match self.kernel(r)? {
                        SysRet::Ok(n) => {
                            *done += n as usize;
                            let r = self.k.flush();
                            self.kernel(r)?;
                            if *done >= *len {
                                Some(SysRet::Ok(*done as i64))
                            } else {
                                None
                            }
                        }
                        SysRet::Block => None,
                        // Part was written before the error: report that part, as Linux does;
                        // the error comes with the next call.
                        SysRet::Err(_) if *done > 0 => Some(SysRet::Ok(*done as i64)),
                        r => Some(r),
                    }
                } else {
                    None
                }
            }
            PendingKind::Poll { fds, deadline } => {
                let (n, ready) = self.poll_now(fds);
                if n > 0 {
                    *fds = ready;
                    Some(SysRet::Ok(n))
                } else if matches!(deadline, Some(d) if *d <= self.k.now()) {
                    *fds = ready;
                    Some(SysRet::Ok(0))
                } else {
                    None
                }
            }
        };
        let Some(ret) = ret else {
            self.pending = Some(p);
            return Ok(());
        };
        let saved = self.line;
        self.line = p.line;
        let now = self.now_us();
        self.trace(|| format!("    {}: blocking `{}` returned {}", secs(now), p.call.name, show_ret(ret)));
        if let PendingKind::Poll { fds, .. } = &p.kind {
            self.check_poll_result(&p.call, fds)?;
        }
        self.check_ret(&p.call, ret)?;
        let late = now.abs_diff(p.end) > p.tol;
        if late {
            let what = if p.ranged {
                format!("expected it to return at {} s (tolerance {} s)", secs(p.end), secs(p.tol))
            } else {
                format!("a call without a time range must return at once ({} s)", secs(p.start))
            };
            return self.fail(format!("timing error: `{}` returned at {} s; {what}", p.call.name, secs(now)));
        }
        self.line = saved;
        Ok(())
    }

    /// A call that would block: wait for it in the background (ranged), or let only the
    /// stack's own timers run for at most the tolerance (unranged, as packetdrill's main
    /// thread blocked in the call would).
    pub(super) fn block(&mut self, call: &Syscall, fd: i32, kind: PendingKind, start: u64, end: Option<u64>) -> R<()> {
        let ranged = end.is_some();
        let tol = match end {
            Some(e) => self.tol_usecs.max((e.saturating_sub(start) as f64 * self.tol_percent / 100.0) as u64),
            None => self.tolerance(start),
        };
        self.pending = Some(Pending {
            line: self.line,
            call: call.clone(),
            kind,
            fd,
            start,
            end: end.unwrap_or(start),
            ranged,
            tol,
        });
        self.check_pending()?;
        if ranged || self.pending.is_none() {
            return Ok(());
        }
        let limit = Instant::from_micros(start.saturating_add(tol));
        let mut firings = Firings::default();
        while self.pending.is_some() && self.step(limit, &mut firings)? {}
        if self.pending.take().is_some() {
            return self.fail(format!(
                "`{}` would block; a call that waits for later events needs a time range (`T1...T2 {}(...)`)",
                call.name, call.name
            ));
        }
        Ok(())
    }

    // ------------------------------------------------------------------ system calls

    pub(super) fn arg<'e>(&self, s: &'e Syscall, i: usize) -> R<&'e Expr> {
        match s.args.get(i) {
            Some(e) => Ok(e),
            None => {
                self.fail(format!("`{}` needs at least {} arguments, the script gives {}", s.name, i + 1, s.args.len()))
            }
        }
    }

    pub(super) fn int(&self, e: &Expr, what: &str) -> R<i64> {
        match eval_int(e) {
            Ok(v) => Ok(v),
            Err(msg) => self.fail(format!("{what}: {msg}")),
        }
    }

    pub(super) fn fd_arg(&self, s: &Syscall) -> R<i32> {
        let v = self.int(self.arg(s, 0)?, "the file descriptor")?;
        match i32::try_from(v) {
            Ok(fd) => Ok(fd),
            Err(_) => self.fail(format!("file descriptor {v} out of range")),
        }
    }

    pub(super) fn usize_arg(&self, s: &Syscall, i: usize, what: &str) -> R<usize> {
        let v = self.int(self.arg(s, i)?, what)?;
        match usize::try_from(v) {
            Ok(n) if n <= 1 << 30 => Ok(n),
            _ => self.fail(format!("{what} {v} out of range")),
        }
    }

    pub(super) fn argc(&self, s: &Syscall, n: &[usize], shape: &str) -> R<()> {
        if n.contains(&s.args.len()) {
            Ok(())
        } else {
            self.fail(format!("`{}` takes {shape}; the script gives {} arguments", s.name, s.args.len()))
        }
    }

    pub(super) fn syscall(&mut self, times: Option<(u64, Option<u64>)>, s: &Syscall) -> R<()> {
        let start = self.settle_at(times)?;
        if let Some(p) = &self.pending {
            let (name, line) = (p.call.name.clone(), p.line);
            return self.fail(format!(
                "system call while the blocking `{name}` of line {line} is still in progress (packetdrill allows one at a time)"
            ));
        }
        let end = times.and_then(|(_, e)| e);
        let r = match s.name.as_str() {
            "socket" => self.sys_socket(s),
            "bind" => self.sys_bind(s),
            "listen" => self.sys_listen(s),
            "accept" => self.sys_accept(s, start, end),
            "connect" => self.sys_connect(s, start, end),
            "read" => self.sys_read(s, start, end, false),
            "recv" => self.sys_read(s, start, end, true),
            "write" => self.sys_write(s, start, end, false),
            "send" => self.sys_write(s, start, end, true),
            "sendmsg" => self.sys_sendmsg(s, start, end),
            "close" => self.sys_close(s),
            "shutdown" => self.sys_shutdown(s),
            "setsockopt" => self.sys_setsockopt(s),
            "getsockopt" => self.sys_getsockopt(s),
            "fcntl" => self.sys_fcntl(s),
            "poll" => self.sys_poll(s, start, end),
            other => return self.unsupported(&format!("system call `{other}`")),
        };
        self.drain_notes();
        r
    }

    /// Compare a call's result with the script's `= value [ERRNO]`.
    pub(super) fn check_ret(&self, s: &Syscall, actual: SysRet) -> R<()> {
        let expected = self.int(&s.ret, "the expected result")?;
        let want_errno = match &s.errno {
            Some(name) => match errno_value(name) {
                Some(v) => Some(v),
                None => return self.fail(format!("unknown errno `{name}`")),
            },
            None => None,
        };
        let ok = match actual {
            SysRet::Ok(v) => v == expected,
            SysRet::Err(e) => expected == -1 && want_errno.is_none_or(|w| w == e),
            SysRet::Block => false,
        };
        if ok {
            return Ok(());
        }
        let want = match (&s.errno, expected) {
            (Some(name), _) => format!("{expected} {name}"),
            (None, v) => v.to_string(),
        };
        self.fail(format!("`{}` returned {} but the script expects {want}", call_text(s), show_ret(actual)))
    }

    pub(super) fn finish(&mut self, s: &Syscall, r: SysRet) -> R<()> {
        let now = self.now_us();
        self.trace(|| format!("    {}: `{}` returned {}", secs(now), s.name, show_ret(r)));
        self.check_ret(s, r)
    }

    /// The descriptor a call is expected to return, when the script names one.
    fn expected_fd(&self, s: &Syscall) -> Option<i32> {
        match &s.ret {
            Expr::Int(v) => i32::try_from(*v).ok().filter(|&v| v >= 3),
            _ => None,
        }
    }

    pub(super) fn sys_socket(&mut self, s: &Syscall) -> R<()> {
        self.argc(s, &[3], "(domain, type, protocol)")?;
        let domain = &s.args[0];
        if !matches!(domain, Expr::Ellipsis) {
            // The family follows `--ip_version`: AF_INET6 sockets in an IPv6 script, AF_INET
            // ones otherwise (no IPv4-mapped addresses).
            let v6 = self.k.ips().0.is_ipv6();
            match eval_int(domain) {
                Ok(AF_INET) if !v6 => {}
                Ok(AF_INET6) if v6 => {}
                Ok(AF_INET6) => return self.unsupported_script("IPv6 sockets without --ip_version=ipv6"),
                Ok(AF_INET) => return self.unsupported_script("IPv4 sockets in an IPv6 script"),
                _ => return self.unsupported_script(&format!("socket domain {domain}")),
            }
        }
        let ty = self.int(&s.args[1], "the socket type")?;
        if ty & 0xf == SOCK_DGRAM {
            return self.unsupported_script("UDP sockets");
        }
        if ty & 0xf != SOCK_STREAM {
            return self.unsupported_script(&format!("socket type {}", s.args[1]));
        }
        if !matches!(&s.args[2], Expr::Ellipsis) {
            let proto = self.int(&s.args[2], "the protocol")?;
            if proto != 0 && proto != IPPROTO_TCP {
                return self.unsupported_script(&format!("protocol {}", s.args[2]));
            }
        }
        self.k.fd_hint = self.expected_fd(s);
        let fd = self.k.socket(ty & SOCK_NONBLOCK != 0);
        self.sut = Sut::Socket(fd as i32);
        self.finish(s, SysRet::Ok(fd))
    }

    /// The port in a `sockaddr` argument (`...` is the default port).
    pub(super) fn port_arg(&mut self, e: &Expr) -> R<Option<u16>> {
        let Expr::Struct(fields) = e else {
            return match e {
                Expr::Ellipsis => Ok(Some(DEFAULT_PORT)),
                _ => {
                    self.fail(format!("expected a socket address (`...` or `{{sa_family=AF_INET, ...}}`), found `{e}`"))
                }
            };
        };
        let mut port = DEFAULT_PORT;
        for (name, v) in fields {
            match name.as_deref() {
                Some("sa_family" | "sin_family" | "sin6_family")
                    if (eval_int(v) == Ok(AF_INET6)) != self.k.ips().0.is_ipv6() =>
                {
                    self.unsupported_script("an address of the other family than --ip_version's")?;
                    return Ok(None);
                }
                Some("sin_port" | "sin6_port") => {
                    let p = match v {
                        Expr::Call(f, a) if f == "htons" && a.len() == 1 => self.int(&a[0], "the port")?,
                        other => self.int(other, "the port")?,
                    };
                    port = match u16::try_from(p) {
                        Ok(p) => p,
                        Err(_) => return self.fail(format!("port {p} out of range")),
                    };
                }
                // The address itself is fixed by the interpreter (198.18.0.1 / 198.18.0.2, or
                // 2001:2::1 / 2001:2::2 over IPv6), and so are sin6_flowinfo and the scope.
                _ => {}
            }
        }
        Ok(Some(port))
    }

    pub(super) fn sys_bind(&mut self, s: &Syscall) -> R<()> {
        self.argc(s, &[3], "(fd, address, length)")?;
        let fd = self.fd_arg(s)?;
        let Some(port) = self.port_arg(&s.args[1])? else { return Ok(()) };
        let r = self.k.bind(fd, port);
        self.finish(s, r)
    }

    pub(super) fn sys_listen(&mut self, s: &Syscall) -> R<()> {
        self.argc(s, &[2], "(fd, backlog)")?;
        let fd = self.fd_arg(s)?;
        let backlog = self.int(&s.args[1], "the backlog")?;
        let r = self.k.listen(fd, backlog);
        let r = self.kernel(r)?;
        if r == SysRet::Ok(0) {
            let port = self.k.sockets.get(&fd).and_then(|s| s.port).unwrap_or(DEFAULT_PORT);
            self.sut = Sut::Listening(port);
        }
        self.finish(s, r)
    }

    pub(super) fn sys_accept(&mut self, s: &Syscall, start: u64, end: Option<u64>) -> R<()> {
        self.argc(s, &[3], "(fd, address, length)")?;
        let fd = self.fd_arg(s)?;
        self.k.fd_hint = self.expected_fd(s);
        let r = self.k.accept(fd);
        match self.kernel(r)? {
            SysRet::Block => self.block(s, fd, PendingKind::Accept, start, end),
            r => self.finish(s, r),
        }
    }

    pub(super) fn sys_connect(&mut self, s: &Syscall, start: u64, end: Option<u64>) -> R<()> {
        self.argc(s, &[3], "(fd, address, length)")?;
        let fd = self.fd_arg(s)?;
        let Some(port) = self.port_arg(&s.args[1])? else { return Ok(()) };
        let r = self.k.connect(fd, port);
        let (r, made) = self.kernel(r)?;
        self.drain_notes();
        if let Some(id) = made {
            let local_port = self.k.local_port_of(id).unwrap_or(0);
            self.sut = Sut::Flow(Box::new(Flow { local_port, remote_port: port, ..Flow::default() }));
        }
        match (r, made) {
            (SysRet::Block, Some(id)) => self.block(s, fd, PendingKind::Connect(id), start, end),
            (SysRet::Block, None) => match self.k.sockets.get(&fd).map(|s| &s.kind) {
                Some(SockKind::Conn(id)) => {
                    let id = *id;
                    self.block(s, fd, PendingKind::Connect(id), start, end)
                }
                _ => self.finish(s, SysRet::Err(EBADF)),
            },
            (r, _) => self.finish(s, r),
        }
    }

    /// The flags argument `i` of a call: (MSG_DONTWAIT, MSG_MORE); MSG_MORE only when
    /// `sending`. `None` when refused (the failure is already recorded).
    pub(super) fn io_flags(&mut self, s: &Syscall, i: usize, sending: bool) -> R<Option<(bool, bool)>> {
        let flags = self.int(&s.args[i], "the flags")?;
        let known = MSG_DONTWAIT | MSG_NOSIGNAL | if sending { MSG_MORE } else { 0 };
        if flags & !known != 0 {
            let what = format!("{} flags `{}`", s.name, s.args[i]);
            self.unsupported(&what)?;
            return Ok(None);
        }
        Ok(Some((flags & MSG_DONTWAIT != 0, flags & MSG_MORE != 0)))
    }

    /// The arguments of read/recv and write/send: fd, length, MSG_DONTWAIT, MSG_MORE. `None`
    /// when the flags were refused (the failure is already recorded).
    pub(super) fn io_args(&mut self, s: &Syscall, with_flags: bool) -> R<Option<(i32, usize, bool, bool)>> {
        if with_flags {
            self.argc(s, &[4], "(fd, buffer, length, flags)")?;
        } else {
            self.argc(s, &[3], "(fd, buffer, count)")?;
        }
        let fd = self.fd_arg(s)?;
        let len = self.usize_arg(s, 2, "the length")?;
        let (dontwait, more) = if with_flags {
            match self.io_flags(s, 3, s.name == "send")? {
                Some(f) => f,
                None => return Ok(None),
            }
        } else {
            (false, false)
        };
        Ok(Some((fd, len, dontwait, more)))
    }

    pub(super) fn sys_read(&mut self, s: &Syscall, start: u64, end: Option<u64>, with_flags: bool) -> R<()> {
        let Some((fd, len, dontwait, _)) = self.io_args(s, with_flags)? else { return Ok(()) };
        let mut data = Vec::new();
        let r = self.k.read(fd, len, dontwait, &mut data);
        match self.kernel(r)? {
            SysRet::Block => self.block(s, fd, PendingKind::Read { len, dontwait }, start, end),
            r => {
                self.check_read_bytes(fd, &data)?;
                self.flush_after_call()?;
                self.finish(s, r)
            }
        }
    }

    /// The bytes a read returned must be the ones the peer sent at that stream offset.
    pub(super) fn check_read_bytes(&self, fd: i32, data: &[u8]) -> R<()> {
        let Some(sock) = self.k.sockets.get(&fd) else { return Ok(()) };
        let first = sock.read_offset.saturating_sub(data.len() as u64);
        if let Some(i) = data.iter().enumerate().position(|(i, &b)| b != pattern_byte(first + i as u64)) {
            return self.fail(format!(
                "read returned the wrong byte at stream offset {}: the stack delivered data out of order or corrupted",
                first + i as u64
            ));
        }
        Ok(())
    }

    /// A call that changed what the stack may send (a read opening the window, a write).
    pub(super) fn flush_after_call(&mut self) -> R<()> {
        let r = self.k.flush();
        self.kernel(r)?;
        self.drain_notes();
        Ok(())
    }

    pub(super) fn sys_write(&mut self, s: &Syscall, start: u64, end: Option<u64>, with_flags: bool) -> R<()> {
        let Some((fd, len, dontwait, more)) = self.io_args(s, with_flags)? else { return Ok(()) };
        self.write_with(s, fd, len, dontwait, more, start, end)
    }

    /// sendmsg(fd, {msg_name(...)=..., msg_iov(N)=[{..., LEN}, ...], msg_flags=0}, flags):
    /// the buffers' lengths add up to one write.
    pub(super) fn sys_sendmsg(&mut self, s: &Syscall, start: u64, end: Option<u64>) -> R<()> {
        self.argc(s, &[3], "(fd, msghdr, flags)")?;
        let fd = self.fd_arg(s)?;
        let Expr::Struct(fields) = &s.args[1] else {
            return self.fail("sendmsg takes `{msg_name(...)=..., msg_iov(N)=[{..., LEN}], msg_flags=0}`");
        };
        let mut len = 0usize;
        for (name, value) in fields {
            match (name.as_deref(), value) {
                (Some("msg_iov"), Expr::List(iov)) => {
                    for v in iov {
                        let Expr::Struct(b) = v else { return self.fail("a msg_iov entry is `{..., LEN}`") };
                        let Some((_, l)) = b.get(1) else { return self.fail("a msg_iov entry is `{..., LEN}`") };
                        len += usize::try_from(self.int(l, "an iov length")?).unwrap_or(0);
                    }
                }
                (Some("msg_name" | "msg_control" | "msg_controllen" | "msg_namelen"), Expr::Ellipsis) => {}
                (Some("msg_flags"), v) if self.int(v, "msg_flags")? == 0 => {}
                _ => return self.unsupported(&format!("sendmsg with {}", value)),
            }
        }
        let Some((dontwait, more)) = self.io_flags(s, 2, true)? else { return Ok(()) };
        self.write_with(s, fd, len, dontwait, more, start, end)
    }

    #[allow(clippy::too_many_arguments)]
    fn write_with(
        &mut self,
        s: &Syscall,
        fd: i32,
        len: usize,
        dontwait: bool,
        more: bool,
        start: u64,
        end: Option<u64>,
    ) -> R<()> {
        let nonblocking = dontwait || self.k.sockets.get(&fd).is_some_and(|s| s.nonblocking);
        let r = self.k.write(fd, len, dontwait, more);
        let r = self.kernel(r)?;
        self.flush_after_call()?;
        match r {
            SysRet::Ok(n) if (n as usize) < len && !nonblocking => {
                self.block(s, fd, PendingKind::Write { len, done: n as usize, dontwait, more }, start, end)
            }
            SysRet::Block => self.block(s, fd, PendingKind::Write { len, done: 0, dontwait, more }, start, end),
            r => self.finish(s, r),
        }
    }

    pub(super) fn sys_close(&mut self, s: &Syscall) -> R<()> {
        self.argc(s, &[1], "(fd)")?;
        let fd = self.fd_arg(s)?;
        let r = self.k.close(fd);
        let r = self.kernel(r)?;
        self.drain_notes();
        self.finish(s, r)
    }

    pub(super) fn sys_shutdown(&mut self, s: &Syscall) -> R<()> {
        self.argc(s, &[2], "(fd, how)")?;
        let fd = self.fd_arg(s)?;
        let how = self.int(&s.args[1], "how")?;
        if matches!(self.k.sockets.get(&fd).map(|s| &s.kind), Some(SockKind::Listening(_))) {
            return self.unsupported("shutdown() on a listening socket");
        }
        let r = self.k.shutdown(fd, how);
        let r = self.kernel(r)?;
        self.drain_notes();
        self.finish(s, r)
    }

    /// The integer an option value carries: `[1]` or `1`.
    pub(super) fn opt_int(&self, e: &Expr) -> R<i64> {
        match e {
            Expr::List(items) if items.len() == 1 => self.int(&items[0], "the option value"),
            other => self.int(other, "the option value"),
        }
    }

    pub(super) fn sys_setsockopt(&mut self, s: &Syscall) -> R<()> {
        self.argc(s, &[5], "(fd, level, name, value, length)")?;
        let fd = self.fd_arg(s)?;
        let level = self.int(&s.args[1], "the level")?;
        let name = self.int(&s.args[2], "the option name")?;
        let Some(sock) = self.k.sockets.get(&fd) else { return self.finish(s, SysRet::Err(EBADF)) };
        let has_tcb = self.k.has_tcb(fd) && !matches!(sock.kind, SockKind::Listening(_));
        let mut opts = sock.opts.clone();
        let label = format!("setsockopt {}", s.args[2]);
        match (level, name) {
            (SOL_SOCKET, SO_REUSEADDR | SO_REUSEPORT) => {
                // Ports are never shared between scripts here, so reuse changes nothing.
                self.opt_int(&s.args[3])?;
            }
            (SOL_SOCKET, SO_KEEPALIVE) => opts.keepalive = self.opt_int(&s.args[3])? != 0,
            (SOL_SOCKET, SO_RCVBUF | SO_SNDBUF) => {
                if has_tcb {
                    return self.unsupported(&format!("{label} after the connection exists (xtcp sizes buffers once)"));
                }
                let v = self.opt_int(&s.args[3])?;
                // The TCB allocates its buffers up front: a bound keeps a script from asking
                // for more memory than a test machine has.
                let v = match usize::try_from(v) {
                    Ok(v) if (1..=MAX_BUFFER).contains(&v) => v,
                    _ => return self.fail(format!("buffer size {v} out of range (1 to {MAX_BUFFER} bytes)")),
                };
                if name == SO_RCVBUF {
                    opts.rcvbuf = Some(v);
                } else {
                    opts.sndbuf = Some(v);
                }
            }
            (SOL_SOCKET, SO_LINGER) => {
                let Expr::Struct(fields) = &s.args[3] else {
                    return self.fail("SO_LINGER takes `{onoff=1, linger=0}`");
                };
                let mut onoff = 0;
                let mut linger = 0;
                for (i, (n, v)) in fields.iter().enumerate() {
                    let v = self.int(v, "the linger field")?;
                    match (n.as_deref(), i) {
                        (Some("onoff" | "l_onoff"), _) | (None, 0) => onoff = v,
                        (Some("linger" | "l_linger"), _) | (None, 1) => linger = v,
                        _ => return self.fail("SO_LINGER takes `{onoff=1, linger=0}`"),
                    }
                }
                opts.linger = if onoff != 0 { Some(linger) } else { None };
            }
            (IPPROTO_TCP, TCP_NODELAY) => opts.nodelay = self.opt_int(&s.args[3])? != 0,
            (IPPROTO_TCP, TCP_CORK) => opts.cork = self.opt_int(&s.args[3])? != 0,
            (IPPROTO_TCP, TCP_QUICKACK) => {
                // An action on the connection, not a lasting option (Linux's).
                let on = self.opt_int(&s.args[3])? != 0;
                let r = self.k.quick_ack(fd, on);
                self.kernel(r)?;
            }
            (IPPROTO_TCP, TCP_MAXSEG) => {
                if has_tcb {
                    return self.unsupported(&format!("{label} after the connection exists"));
                }
                let v = self.opt_int(&s.args[3])?;
                opts.maxseg = match u16::try_from(v) {
                    Ok(v) if v >= 64 => Some(v),
                    _ => return self.finish(s, SysRet::Err(EINVAL)),
                };
            }
            (IPPROTO_TCP, TCP_KEEPIDLE | TCP_KEEPINTVL | TCP_KEEPCNT) => {
                let v = self.opt_int(&s.args[3])?;
                if !(1..=32767).contains(&v) {
                    return self.finish(s, SysRet::Err(EINVAL));
                }
                match name {
                    TCP_KEEPIDLE => opts.keepidle = Some(v as u64),
                    TCP_KEEPINTVL => opts.keepintvl = Some(v as u64),
                    _ => opts.keepcnt = Some(v as u32),
                }
            }
            _ => return self.unsupported(&label),
        }
        let nodelay_set = level == IPPROTO_TCP && name == TCP_NODELAY && opts.nodelay;
        if let Some(sock) = self.k.sockets.get_mut(&fd) {
            sock.opts = opts;
        }
        // Setting TCP_NODELAY pushes what waits, set before or not (Linux).
        let r = self.k.apply_live_opts(fd, nodelay_set);
        self.kernel(r)?;
        self.flush_after_call()?;
        self.finish(s, SysRet::Ok(0))
    }

    pub(super) fn sys_getsockopt(&mut self, s: &Syscall) -> R<()> {
        self.argc(s, &[5], "(fd, level, name, value, length)")?;
        let fd = self.fd_arg(s)?;
        let level = self.int(&s.args[1], "the level")?;
        let name = self.int(&s.args[2], "the option name")?;
        let Some(sock) = self.k.sockets.get(&fd) else { return self.finish(s, SysRet::Err(EBADF)) };
        let opts = sock.opts.clone();
        let base = self.k.base().clone();
        let value = match (level, name) {
            (SOL_SOCKET, SO_ERROR) => self.k.take_error(fd),
            (SOL_SOCKET, SO_KEEPALIVE) => i64::from(opts.keepalive),
            (SOL_SOCKET, SO_RCVBUF) => {
                let size = opts.rcvbuf.unwrap_or(base.recv_buffer);
                let shown = match self.k.connected_mss(fd) {
                    Some(mss) if self.cfg.profile == Profile::FreeBsd => size.div_ceil(mss) * mss,
                    _ => size,
                };
                shown as i64
            }
            (SOL_SOCKET, SO_SNDBUF) => opts.sndbuf.unwrap_or(base.send_buffer) as i64,
            (IPPROTO_TCP, TCP_NODELAY) => i64::from(opts.nodelay),
            (IPPROTO_TCP, TCP_CORK) => i64::from(opts.cork),
            // Connected: the MSS segments are sent with (Linux's mss_cache); before, the
            // one set or the default.
            (IPPROTO_TCP, TCP_MAXSEG) => match self.k.connected_mss(fd) {
                Some(mss) => mss as i64,
                None => i64::from(opts.maxseg.unwrap_or(base.mss)),
            },
            (IPPROTO_TCP, TCP_KEEPIDLE) => opts.keepidle.map_or(7200, |v| v as i64),
            (IPPROTO_TCP, TCP_KEEPINTVL) => opts.keepintvl.map_or(75, |v| v as i64),
            (IPPROTO_TCP, TCP_KEEPCNT) => opts.keepcnt.map_or(9, i64::from),
            _ => return self.unsupported(&format!("getsockopt {}", s.args[2])),
        };
        let expected = &s.args[3];
        if !matches!(expected, Expr::Ellipsis) {
            let want = self.opt_int(expected)?;
            if want != value {
                let shown = if name == SO_ERROR && level == SOL_SOCKET && value != 0 {
                    format!("{value} ({})", errno_name(value))
                } else {
                    value.to_string()
                };
                return self.fail(format!("getsockopt {} gave {shown} but the script expects {expected}", s.args[2]));
            }
        }
        self.finish(s, SysRet::Ok(0))
    }

    pub(super) fn sys_fcntl(&mut self, s: &Syscall) -> R<()> {
        self.argc(s, &[2, 3], "(fd, command[, argument])")?;
        let fd = self.fd_arg(s)?;
        let cmd = self.int(&s.args[1], "the command")?;
        let Some(sock) = self.k.sockets.get_mut(&fd) else { return self.finish(s, SysRet::Err(EBADF)) };
        match cmd {
            F_GETFL => {
                let flags = O_RDWR | if sock.nonblocking { O_NONBLOCK } else { 0 };
                self.finish(s, SysRet::Ok(flags))
            }
            F_SETFL => {
                let Some(arg) = s.args.get(2) else { return self.fail("fcntl F_SETFL needs the flags") };
                let flags = match eval_int(arg) {
                    Ok(v) => v,
                    Err(e) => return self.fail(format!("the flags: {e}")),
                };
                sock.nonblocking = flags & O_NONBLOCK != 0;
                self.finish(s, SysRet::Ok(0))
            }
            _ => self.unsupported(&format!("fcntl command {}", s.args[1])),
        }
    }

    pub(super) fn poll_now(&self, fds: &[PollFd]) -> (i64, Vec<PollFd>) {
        let mut n = 0;
        let mut out = fds.to_vec();
        for p in &mut out {
            let r = self.k.revents(p.fd) & (p.events | POLLERR | POLLHUP | POLLNVAL);
            if r != 0 {
                n += 1;
            }
            p.revents = Some(r);
        }
        (n, out)
    }

    pub(super) fn sys_poll(&mut self, s: &Syscall, start: u64, end: Option<u64>) -> R<()> {
        self.argc(s, &[3], "(fds, nfds, timeout)")?;
        let Expr::List(items) = &s.args[0] else {
            return self.fail("poll's first argument is a list `[{fd=3, events=POLLIN, revents=POLLIN}]`");
        };
        let mut fds = Vec::new();
        for item in items {
            let Expr::Struct(fields) = item else {
                return self.fail("each pollfd is `{fd=3, events=POLLIN, revents=POLLIN}`");
            };
            let mut p = PollFd { fd: -1, events: 0, revents: None };
            for (name, v) in fields {
                match name.as_deref() {
                    Some("fd") => p.fd = i32::try_from(self.int(v, "fd")?).unwrap_or(-1),
                    Some("events") => p.events = self.int(v, "events")?,
                    // Checked when the call returns (check_poll_result).
                    Some("revents") => {
                        self.int(v, "revents")?;
                    }
                    _ => return self.fail("pollfd fields are fd, events and revents"),
                }
            }
            fds.push(p);
        }
        let nfds = self.int(&s.args[1], "nfds")?;
        if nfds != fds.len() as i64 {
            return self.fail(format!("poll: nfds is {nfds} but the list has {} entries", fds.len()));
        }
        let timeout = self.int(&s.args[2], "the timeout")?;
        let (n, ready) = self.poll_now(&fds);
        if n > 0 || timeout == 0 {
            self.check_poll_result(s, &ready)?;
            return self.finish(s, SysRet::Ok(n));
        }
        let deadline = if timeout < 0 {
            None
        } else {
            Some(Instant::from_micros(start.saturating_add((timeout as u64).saturating_mul(1000))))
        };
        self.block(s, -1, PendingKind::Poll { fds, deadline }, start, end)
    }
}

/// The revents a poll call's script expects, per entry.
pub(super) fn poll_expectations(call: &Syscall) -> Vec<Option<i64>> {
    let Some(Expr::List(items)) = call.args.first() else { return Vec::new() };
    items
        .iter()
        .map(|item| match item {
            Expr::Struct(fields) => {
                fields.iter().find(|(n, _)| n.as_deref() == Some("revents")).and_then(|(_, v)| eval_int(v).ok())
            }
            _ => None,
        })
        .collect()
}

impl Interp<'_> {
    pub(super) fn check_poll_result(&self, call: &Syscall, got: &[PollFd]) -> R<()> {
        for (g, w) in got.iter().zip(poll_expectations(call)) {
            if let (Some(w), Some(r)) = (w, g.revents) {
                if w != r {
                    return self.fail(format!(
                        "poll: fd {} has revents {} but the script expects {}",
                        g.fd,
                        poll_bits(r),
                        poll_bits(w)
                    ));
                }
            }
        }
        Ok(())
    }
}
