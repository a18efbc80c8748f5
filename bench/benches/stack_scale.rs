//! Memory per idle established connection, and heap allocations on the hot path after
//! warm-up, measured on two stacks over the in-memory link with N connections between them.
//!
//! `cargo bench -p xtcp-bench --bench stack_scale [-- N [POOL]]` (default 100,000
//! connections, and the stack's default buffer pool, 64 MiB). With more rings than the
//! pool may hold, idle connections give their rings' storage up (`Tcb::detach_idle_rings`)
//! and the echoes take it back; a POOL larger than every ring (e.g. 1000000000) shows the
//! connections keeping theirs. Reports numbers; asserts nothing (DESIGN.md: targets live in
//! benchmarks).

use std::net::Ipv4Addr;
use xtcp::io::mem::Faults;
use xtcp::stack::pair::StackPair;
use xtcp::stack::{StackConfig, StackEvent};
use xtcp::tcp::TcpConfig;
use xtcp::time::Duration;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

const SEND_BUF: usize = 1024;
const RECV_BUF: usize = 1024;

fn cfg(ip: Ipv4Addr, seed: u8, n: usize, pool: Option<usize>) -> StackConfig {
    let mut c = StackConfig::new(ip, 24, [seed; 16]);
    c.max_sockets = n + 16;
    if let Some(p) = pool {
        c.buffer_pool_bytes = p;
    }
    c.tcp = TcpConfig { send_buffer: SEND_BUF, recv_buffer: RECV_BUF, ..TcpConfig::default() };
    c
}

fn main() {
    let nums: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let n = nums.first().copied().unwrap_or(100_000);
    let pool = nums.get(1).copied();
    let _profiler = dhat::Profiler::builder().testing().build();
    let faults = Faults { delay: Duration::from_micros(20), capacity: 1 << 21, ..Faults::default() };
    let mut p = StackPair::new(
        1,
        faults,
        cfg(Ipv4Addr::new(198, 18, 0, 1), 1, n, pool),
        cfg(Ipv4Addr::new(198, 18, 0, 2), 2, n, pool),
        1 << 16,
    );
    let ports = n.div_ceil(25_000) as u16;
    for k in 0..ports {
        p.a.listen(8000 + k, n).unwrap();
    }
    let mut events = Vec::new();
    for _ in 0..100 {
        p.step(&mut events); // ARP settles; nothing else
    }
    events.clear();
    let before = dhat::HeapStats::get();

    let (clients, _servers) = p.open_many(n, 8000..8000 + ports, Duration::from_secs(120)).expect("connections open");
    // Let delayed ACKs and the like settle: the connections are idle now.
    for _ in 0..1000 {
        p.step(&mut events);
    }
    events.clear();
    let after = dhat::HeapStats::get();
    let per_conn = (after.curr_bytes - before.curr_bytes) as f64 / (2 * n) as f64;
    let data = (SEND_BUF + RECV_BUF) as f64;

    // Echo rounds: the first ones warm up (scratch vectors reach their sizes), then count.
    let mut buf = [0u8; 64];
    let mut round = |p: &mut StackPair, events: &mut Vec<_>| {
        for &c in &clients {
            p.b.send(c, b"ping").unwrap();
        }
        let mut got = 0;
        while got < n {
            p.step(events);
            for (side, h, e) in events.drain(..) {
                if e != StackEvent::Readable {
                    continue;
                }
                if side == 'a' {
                    while let Ok(k) = p.a.recv(h, &mut buf) {
                        if k == 0 {
                            break;
                        }
                        p.a.send(h, &buf[..k]).unwrap();
                    }
                } else if let Ok(k) = p.b.recv(h, &mut buf) {
                    if k > 0 {
                        got += 1;
                    }
                }
            }
        }
    };
    for _ in 0..3 {
        round(&mut p, &mut events);
    }
    let warm = dhat::HeapStats::get();
    const ROUNDS: usize = 3;
    for _ in 0..ROUNDS {
        round(&mut p, &mut events);
    }
    let end = dhat::HeapStats::get();
    let allocs = end.total_blocks - warm.total_blocks;

    let pool_bytes = p.a.config().buffer_pool_bytes;
    println!("stack_scale: {n} connections each way between two stacks over io::mem, buffer pool {pool_bytes} B");
    println!("  heap per established connection:  {per_conn:.0} B  (measured: live heap growth / connections)");
    println!("    send+recv buffers configured:   {data:.0} B  ({SEND_BUF} + {RECV_BUF}; idle ones are in the pool or freed when it is full)");
    println!("    beyond the configured buffers:   {:.0} B", per_conn - data);
    println!("    the TCB record itself (Tcb):      {} B", core::mem::size_of::<xtcp::tcp::Tcb>());
    println!(
        "  heap allocations during {ROUNDS} echo rounds after warm-up ({} messages each way): {allocs}",
        ROUNDS * n
    );
}
