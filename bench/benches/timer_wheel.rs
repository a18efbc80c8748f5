//! The per-core timer wheel with a million live timers: ns per schedule, per cancel, and per
//! expired timer. `cargo bench -p xtcp-bench --bench timer_wheel`.
//!
//! A million is a busy core (a few timers for each of a few hundred thousand connections).
//! Timers are picked in a random order so that the entries touched are scattered over the slab
//! as they would be in a stack, not walked in allocation order. Each operation is timed in
//! batches of `BATCH` and the untimed half of the work (re-arming what was cancelled or fired)
//! keeps the wheel at a million between batches. One iteration is one operation, so criterion's
//! time per iteration is the cost of one operation.

use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use std::time::Duration as StdDuration;
use xtcp::time::{Duration, Instant, TimerHandle, TimerWheel};

const LIVE: usize = 1_000_000;
const BATCH: usize = 10_000;
/// Deadlines spread over the next hour at 1 ms: levels 0 to 3 of the wheel.
const SPREAD_MS: u64 = 3_600_000;

/// xorshift64*: a fixed sequence, no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn deadline(rng: &mut Rng, now: Instant, spread_ms: u64) -> Instant {
    now + Duration::from_micros(1_000 + rng.below(spread_ms * 1_000))
}

/// A wheel holding `LIVE` timers, their handles, and a random order to visit them in.
fn filled(rng: &mut Rng) -> (TimerWheel<u32>, Vec<TimerHandle>, Vec<u32>) {
    let mut w = TimerWheel::new(LIVE, Duration::from_millis(1), Instant::ZERO);
    let handles = (0..LIVE as u32).map(|i| w.schedule(deadline(rng, Instant::ZERO, SPREAD_MS), i).unwrap()).collect();
    let mut order: Vec<u32> = (0..LIVE as u32).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i as u64 + 1) as usize);
    }
    (w, handles, order)
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("timer_wheel_1M_live");
    g.sample_size(10).warm_up_time(StdDuration::from_millis(500)).measurement_time(StdDuration::from_secs(3));

    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut w, mut handles, order) = filled(&mut rng);
    let mut cursor = 0;
    let mut deadlines = Vec::with_capacity(BATCH);
    g.bench_function("schedule", |b| {
        b.iter_custom(|iters| {
            let mut total = StdDuration::ZERO;
            let mut left = iters as usize;
            while left > 0 {
                let batch = &order[cursor..cursor + left.min(BATCH)];
                cursor = (cursor + batch.len()) % (LIVE - BATCH);
                deadlines.clear();
                for &i in batch {
                    w.cancel(handles[i as usize]);
                    deadlines.push(deadline(&mut rng, Instant::ZERO, SPREAD_MS));
                }
                let start = std::time::Instant::now();
                for (&i, &d) in batch.iter().zip(&deadlines) {
                    handles[i as usize] = w.schedule(black_box(d), i).unwrap();
                }
                total += start.elapsed();
                left -= batch.len();
            }
            total
        })
    });
    g.bench_function("cancel", |b| {
        b.iter_custom(|iters| {
            let mut total = StdDuration::ZERO;
            let mut left = iters as usize;
            while left > 0 {
                let batch = &order[cursor..cursor + left.min(BATCH)];
                cursor = (cursor + batch.len()) % (LIVE - BATCH);
                let start = std::time::Instant::now();
                for &i in batch {
                    black_box(w.cancel(handles[i as usize]));
                }
                total += start.elapsed();
                for &i in batch {
                    handles[i as usize] = w.schedule(deadline(&mut rng, Instant::ZERO, SPREAD_MS), i).unwrap();
                }
                left -= batch.len();
            }
            total
        })
    });
    drop((w, handles));

    // A million timers spread over the next 1000 s at 1 ms: about one per tick. Each advance
    // moves 100 ms and fires about a hundred of them (with the cascades that brings them down), and
    // each fired timer is re-armed up to 1000 s ahead, untimed.
    let spread_ms = 1_000_000;
    let mut w = TimerWheel::new(LIVE, Duration::from_millis(1), Instant::ZERO);
    for i in 0..LIVE as u32 {
        w.schedule(deadline(&mut rng, Instant::ZERO, spread_ms), i).unwrap();
    }
    let mut now = Instant::ZERO;
    let mut fired = Vec::with_capacity(LIVE);
    g.bench_function("expire", |b| {
        b.iter_custom(|iters| {
            let mut total = StdDuration::ZERO;
            let mut count = 0u64;
            while count < iters {
                now += Duration::from_millis(100);
                fired.clear();
                let start = std::time::Instant::now();
                w.advance(now, |_, p| fired.push(p));
                total += start.elapsed();
                count += fired.len() as u64;
                for &p in &fired {
                    w.schedule(deadline(&mut rng, now, spread_ms), p).unwrap();
                }
            }
            // Scale to exactly `iters` expirations.
            total.mul_f64(iters as f64 / count as f64)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
