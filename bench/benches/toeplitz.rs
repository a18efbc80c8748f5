//! Toeplitz (RSS) hash of an IPv4 4-tuple: the table-driven hasher against the bit-by-bit
//! definition. `cargo bench -p xtcp-bench --bench toeplitz`.

use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use std::net::Ipv4Addr;
use xtcp::wire::toeplitz::{hash, Toeplitz4Tuple, MICROSOFT_KEY};

fn bench(c: &mut Criterion) {
    let t = Toeplitz4Tuple::new(&MICROSOFT_KEY);
    let (src, dst) = (Ipv4Addr::new(198, 18, 0, 1), Ipv4Addr::new(198, 18, 1, 1));
    let mut g = c.benchmark_group("toeplitz_ipv4_4tuple");
    g.bench_function("table", |b| b.iter(|| t.hash(black_box(src), black_box(dst), black_box(40000), 80)));
    let mut input = [0u8; 12];
    input[..4].copy_from_slice(&src.octets());
    input[4..8].copy_from_slice(&dst.octets());
    g.bench_function("bitwise", |b| b.iter(|| hash(&MICROSOFT_KEY, black_box(&input))));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
