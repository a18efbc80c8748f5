//! Named constants scripts use, with their Linux values (packetdrill scripts are written
//! against Linux headers, and the values only ever meet other values from this table).

/// errno values (Linux, asm-generic/errno-base.h and errno.h).
pub const ERRNOS: &[(&str, i64)] = &[
    ("EPERM", 1),
    ("ENOENT", 2),
    ("EINTR", 4),
    ("EIO", 5),
    ("EBADF", 9),
    ("EAGAIN", 11),
    ("EWOULDBLOCK", 11),
    ("ENOMEM", 12),
    ("EACCES", 13),
    ("EFAULT", 14),
    ("EBUSY", 16),
    ("EEXIST", 17),
    ("EINVAL", 22),
    ("ENFILE", 23),
    ("EMFILE", 24),
    ("ENOSPC", 28),
    ("EPIPE", 32),
    ("EPROTO", 71),
    ("ENOTSOCK", 88),
    ("EDESTADDRREQ", 89),
    ("EMSGSIZE", 90),
    ("EPROTOTYPE", 91),
    ("ENOPROTOOPT", 92),
    ("EPROTONOSUPPORT", 93),
    ("ESOCKTNOSUPPORT", 94),
    ("EOPNOTSUPP", 95),
    ("EAFNOSUPPORT", 97),
    ("EADDRINUSE", 98),
    ("EADDRNOTAVAIL", 99),
    ("ENETDOWN", 100),
    ("ENETUNREACH", 101),
    ("ECONNABORTED", 103),
    ("ECONNRESET", 104),
    ("ENOBUFS", 105),
    ("EISCONN", 106),
    ("ENOTCONN", 107),
    ("ESHUTDOWN", 108),
    ("ETIMEDOUT", 110),
    ("ECONNREFUSED", 111),
    ("EHOSTUNREACH", 113),
    ("EALREADY", 114),
    ("EINPROGRESS", 115),
];

pub const EBADF: i64 = 9;
pub const EAGAIN: i64 = 11;
pub const EINVAL: i64 = 22;
pub const EPIPE: i64 = 32;
pub const EADDRINUSE: i64 = 98;
pub const ECONNABORTED: i64 = 103;
pub const ECONNRESET: i64 = 104;
pub const EISCONN: i64 = 106;
pub const ENOTCONN: i64 = 107;
pub const ETIMEDOUT: i64 = 110;
pub const ECONNREFUSED: i64 = 111;
pub const EALREADY: i64 = 114;
pub const EADDRNOTAVAIL: i64 = 99;
pub const EACCES: i64 = 13;
pub const EPROTO: i64 = 71;
pub const ENOPROTOOPT: i64 = 92;
pub const ENETUNREACH: i64 = 101;
pub const EHOSTUNREACH: i64 = 113;
pub const EINPROGRESS: i64 = 115;

pub const AF_INET: i64 = 2;
pub const AF_INET6: i64 = 10;
pub const SOCK_STREAM: i64 = 1;
pub const SOCK_DGRAM: i64 = 2;
pub const SOCK_NONBLOCK: i64 = 0o4000;
pub const IPPROTO_TCP: i64 = 6;
pub const IPPROTO_UDP: i64 = 17;

pub const SOL_SOCKET: i64 = 1;
pub const SO_REUSEADDR: i64 = 2;
pub const SO_ERROR: i64 = 4;
pub const SO_SNDBUF: i64 = 7;
pub const SO_RCVBUF: i64 = 8;
pub const SO_KEEPALIVE: i64 = 9;
pub const SO_LINGER: i64 = 13;
pub const SO_REUSEPORT: i64 = 15;

pub const TCP_NODELAY: i64 = 1;
pub const TCP_MAXSEG: i64 = 2;
pub const TCP_KEEPIDLE: i64 = 4;
pub const TCP_KEEPINTVL: i64 = 5;
pub const TCP_KEEPCNT: i64 = 6;
pub const TCP_QUICKACK: i64 = 12;
pub const TCP_CORK: i64 = 3;
pub const MSG_MORE: i64 = 0x8000;

pub const F_GETFL: i64 = 3;
pub const F_SETFL: i64 = 4;
pub const O_RDWR: i64 = 2;
pub const O_NONBLOCK: i64 = 0o4000;

pub const SHUT_RD: i64 = 0;
pub const SHUT_WR: i64 = 1;
pub const SHUT_RDWR: i64 = 2;

pub const POLLIN: i64 = 0x1;
pub const POLLOUT: i64 = 0x4;
pub const POLLERR: i64 = 0x8;
pub const POLLHUP: i64 = 0x10;
pub const POLLNVAL: i64 = 0x20;
pub const POLLRDNORM: i64 = 0x40;
pub const POLLWRNORM: i64 = 0x100;
pub const POLLRDHUP: i64 = 0x2000;

pub const MSG_PEEK: i64 = 0x2;
pub const MSG_DONTWAIT: i64 = 0x40;
pub const MSG_WAITALL: i64 = 0x100;
pub const MSG_NOSIGNAL: i64 = 0x4000;

/// Every other named constant, with its Linux value.
const CONSTANTS: &[(&str, i64)] = &[
    ("AF_INET", AF_INET),
    ("AF_INET6", AF_INET6),
    ("AF_UNSPEC", 0),
    ("PF_INET", AF_INET),
    ("PF_INET6", AF_INET6),
    ("SOCK_STREAM", SOCK_STREAM),
    ("SOCK_DGRAM", SOCK_DGRAM),
    ("SOCK_RAW", 3),
    ("SOCK_NONBLOCK", SOCK_NONBLOCK),
    ("SOCK_CLOEXEC", 0o2000000),
    ("IPPROTO_IP", 0),
    ("IPPROTO_TCP", IPPROTO_TCP),
    ("IPPROTO_UDP", IPPROTO_UDP),
    ("IPPROTO_IPV6", 41),
    ("IPPROTO_ICMP", 1),
    ("SOL_SOCKET", SOL_SOCKET),
    ("SOL_TCP", IPPROTO_TCP),
    ("SOL_IP", 0),
    // <linux/in.h>: IP-level options (refused as unsupported, but named).
    ("IP_TOS", 1),
    ("IP_TTL", 2),
    ("IP_MTU_DISCOVER", 10),
    ("IP_PMTUDISC_DONT", 0),
    ("IP_PMTUDISC_WANT", 1),
    ("IP_PMTUDISC_DO", 2),
    ("IP_PMTUDISC_PROBE", 3),
    ("SO_DEBUG", 1),
    ("SO_REUSEADDR", SO_REUSEADDR),
    ("SO_TYPE", 3),
    ("SO_ERROR", SO_ERROR),
    ("SO_DONTROUTE", 5),
    ("SO_BROADCAST", 6),
    ("SO_SNDBUF", SO_SNDBUF),
    ("SO_RCVBUF", SO_RCVBUF),
    ("SO_KEEPALIVE", SO_KEEPALIVE),
    ("SO_OOBINLINE", 10),
    ("SO_LINGER", SO_LINGER),
    ("SO_REUSEPORT", SO_REUSEPORT),
    ("SO_RCVLOWAT", 18),
    ("SO_SNDLOWAT", 19),
    ("SO_RCVTIMEO", 20),
    ("SO_SNDTIMEO", 21),
    ("SO_MARK", 36),
    ("SO_ZEROCOPY", 60),
    ("TCP_NODELAY", TCP_NODELAY),
    ("TCP_MAXSEG", TCP_MAXSEG),
    ("TCP_CORK", TCP_CORK),
    ("TCP_KEEPIDLE", TCP_KEEPIDLE),
    ("TCP_KEEPINTVL", TCP_KEEPINTVL),
    ("TCP_KEEPCNT", TCP_KEEPCNT),
    ("TCP_SYNCNT", 7),
    ("TCP_LINGER2", 8),
    ("TCP_DEFER_ACCEPT", 9),
    ("TCP_WINDOW_CLAMP", 10),
    ("TCP_INFO", 11),
    ("TCP_QUICKACK", TCP_QUICKACK),
    ("TCP_CONGESTION", 13),
    ("TCP_MD5SIG", 14),
    ("TCP_USER_TIMEOUT", 18),
    ("TCP_FASTOPEN", 23),
    ("TCP_NOTSENT_LOWAT", 25),
    ("TCP_FASTOPEN_CONNECT", 30),
    // FreeBSD's own options (its scripts name them), at values of their own here: FreeBSD's
    // numbers collide with Linux's, and xtcp reports them as unsupported.
    ("TCP_NOOPT", 0x1_0008),
    ("TCP_NOPUSH", 0x1_0004),
    ("TCP_KEEPINIT", 0x1_0080),
    ("F_GETFL", F_GETFL),
    ("F_SETFL", F_SETFL),
    ("F_GETFD", 1),
    ("F_SETFD", 2),
    ("O_RDONLY", 0),
    ("O_WRONLY", 1),
    ("O_RDWR", O_RDWR),
    ("O_NONBLOCK", O_NONBLOCK),
    ("SHUT_RD", SHUT_RD),
    ("SHUT_WR", SHUT_WR),
    ("SHUT_RDWR", SHUT_RDWR),
    ("POLLIN", POLLIN),
    ("POLLPRI", 0x2),
    ("POLLOUT", POLLOUT),
    ("POLLERR", POLLERR),
    ("POLLHUP", POLLHUP),
    ("POLLNVAL", POLLNVAL),
    ("POLLRDNORM", POLLRDNORM),
    ("POLLRDBAND", 0x80),
    ("POLLWRNORM", POLLWRNORM),
    ("POLLWRBAND", 0x200),
    ("POLLRDHUP", POLLRDHUP),
    ("MSG_OOB", 0x1),
    ("MSG_PEEK", MSG_PEEK),
    ("MSG_DONTWAIT", MSG_DONTWAIT),
    ("MSG_WAITALL", MSG_WAITALL),
    ("MSG_NOSIGNAL", MSG_NOSIGNAL),
    ("MSG_MORE", MSG_MORE),
    ("MSG_ZEROCOPY", 0x4000000),
];

/// The value of a named constant or errno, if known.
pub fn lookup(name: &str) -> Option<i64> {
    CONSTANTS.iter().chain(ERRNOS).find(|(n, _)| *n == name).map(|&(_, v)| v)
}

/// The errno value of a name (`ECONNREFUSED`), if it is one.
pub fn errno_value(name: &str) -> Option<i64> {
    ERRNOS.iter().find(|(n, _)| *n == name).map(|&(_, v)| v)
}

/// The name of an errno value (the first spelling: `EAGAIN`, not `EWOULDBLOCK`).
pub fn errno_name(value: i64) -> String {
    ERRNOS.iter().find(|(_, v)| *v == value).map_or_else(|| format!("errno {value}"), |(n, _)| (*n).to_string())
}

/// Poll bits as `POLLIN|POLLOUT` (for messages).
pub fn poll_bits(mask: i64) -> String {
    const NAMES: &[(&str, i64)] = &[
        ("POLLIN", POLLIN),
        ("POLLPRI", 0x2),
        ("POLLOUT", POLLOUT),
        ("POLLERR", POLLERR),
        ("POLLHUP", POLLHUP),
        ("POLLNVAL", POLLNVAL),
        ("POLLRDNORM", POLLRDNORM),
        ("POLLRDBAND", 0x80),
        ("POLLWRNORM", POLLWRNORM),
        ("POLLWRBAND", 0x200),
        ("POLLRDHUP", POLLRDHUP),
    ];
    if mask == 0 {
        return "0".into();
    }
    let mut parts: Vec<String> = NAMES.iter().filter(|(_, v)| mask & v != 0).map(|(n, _)| (*n).to_string()).collect();
    let rest = NAMES.iter().fold(mask, |m, (_, v)| m & !v);
    if rest != 0 {
        parts.push(format!("{rest:#x}"));
    }
    parts.join("|")
}
