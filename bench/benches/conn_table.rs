//! Connection-table lookups with 1,000,000 connections: a hit (the segment of a known
//! connection) and a miss (a segment for no connection). `cargo bench -p xtcp-bench --bench
//! conn_table`.

use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddrV4};
use xtcp::stack::{ConnTable, FourTuple};

const N: u32 = 1_000_000;

/// The i-th connection: 16 remote addresses × 62,500 ports, local port 80.
const LOCAL: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);

fn key(i: u32) -> FourTuple {
    let ip = Ipv4Addr::new(198, 18, 1, (i % 16) as u8);
    FourTuple {
        local: SocketAddrV4::new(LOCAL, 80).into(),
        remote: SocketAddrV4::new(ip, 1024 + (i / 16) as u16).into(),
    }
}

fn bench(c: &mut Criterion) {
    let mut t = ConnTable::with_capacity(N as usize);
    for i in 0..N {
        assert!(t.insert(key(i), i));
    }
    let mut g = c.benchmark_group("conn_table_1M");
    let mut i = 0u32;
    g.bench_function("lookup_hit", |b| {
        b.iter(|| {
            i = (i + 7919) % N; // stride through the table, not one hot entry
            black_box(t.get(black_box(&key(i))))
        })
    });
    let miss = FourTuple {
        local: SocketAddrV4::new(LOCAL, 81).into(),
        remote: SocketAddrV4::new(Ipv4Addr::new(198, 19, 0, 1), 9).into(),
    };
    g.bench_function("lookup_miss", |b| b.iter(|| black_box(t.get(black_box(&miss)))));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
