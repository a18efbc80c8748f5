//! Internet checksum throughput (RFC 1071) — on the path of every segment sent and received.
//!
//! `cargo bench -p xtcp-bench --bench checksum`. Criterion prints GiB/s; bytes/ns is
//! GiB/s × 1.0737. The reference implementation (one 16-bit word at a time) is measured beside
//! the one the stack uses, so the ratio is visible in the same run.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use xtcp::wire::checksum;

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("checksum");
    // 20: an IPv4 header; 64: a small segment; 1460: an MSS; 9000: a jumbo frame.
    for len in [20usize, 64, 1460, 9000] {
        let data: Vec<u8> = (0..len + 1).map(|i| (i * 131 + 7) as u8).collect();
        // Start one byte in: frames need not be aligned.
        let data = &data[1..];
        g.throughput(Throughput::Bytes(len as u64));
        g.bench_with_input(BenchmarkId::new("xtcp", len), data, |b, d| b.iter(|| checksum::sum(black_box(d))));
        g.bench_with_input(BenchmarkId::new("reference", len), data, |b, d| {
            b.iter(|| checksum::sum_reference(black_box(d)))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
