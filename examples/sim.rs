//! Replay simulator runs outside CI.
//!
//! ```sh
//! cargo run --release --example sim -- --seeds 1000000..1010000 --profile lossy
//! cargo run --release --example sim -- --seeds 0..200 --profile all
//! cargo run --release --example sim -- --table      # 10 MB one way at 0/1/5/20 % loss
//! ```

#[path = "../tests/sim/mod.rs"]
mod sim;

use clap::Parser;
use sim::{run, Overrides, Profile};
use std::process::ExitCode;

#[derive(Parser)]
#[command(about = "Run the deterministic two-endpoint TCP simulator")]
struct Args {
    /// Seed range, START..END.
    #[arg(long, default_value = "0..100")]
    seeds: String,
    /// Profile name, or `all`.
    #[arg(long, default_value = "all")]
    profile: String,
    /// Print one line per run.
    #[arg(long)]
    verbose: bool,
    /// Instead of seeds: 10 MB one way at 0, 1, 5 and 20 % loss; virtual time and retransmits.
    #[arg(long)]
    table: bool,
    /// Instead of seeds: the loss benchmark's setting (xtcp-bench loss) in virtual time: a
    /// 25 µs one-way delay, 10 Gbit/s, loss on data only, 4 MB at 10 %.
    #[arg(long)]
    lab: bool,
    /// Congestion control for --table and --lab: cubic, reno or bbr (seeded runs draw it).
    #[arg(long, default_value = "cubic")]
    cc: xtcp::tcp::cc::Algorithm,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.table {
        return table(args.cc);
    }
    if args.lab {
        return lab(args.cc);
    }
    let Some((a, b)) = args.seeds.split_once("..") else {
        eprintln!("--seeds wants START..END");
        return ExitCode::FAILURE;
    };
    let (Ok(start), Ok(end)) = (a.parse::<u64>(), b.parse::<u64>()) else {
        eprintln!("--seeds wants START..END with numbers");
        return ExitCode::FAILURE;
    };
    let profiles = if args.profile == "all" {
        Profile::all()
    } else {
        match Profile::named(&args.profile) {
            Some(p) => vec![p],
            None => {
                let names: Vec<_> = Profile::all().iter().map(|p| p.name).collect();
                eprintln!("unknown profile {}; one of: all {}", args.profile, names.join(" "));
                return ExitCode::FAILURE;
            }
        }
    };
    let (mut ok, mut failed) = (0u64, 0u64);
    let t0 = std::time::Instant::now();
    for p in &profiles {
        for seed in start..end {
            match run(seed, p, &Overrides::default()) {
                Ok(o) => {
                    ok += 1;
                    if args.verbose {
                        println!(
                            "ok seed {} {} {:?} bytes {:?} in {:?} virtual, {} packets, retransmits {:?}",
                            o.seed, o.profile, o.plan, o.bytes, o.virtual_time, o.packets, o.retransmits
                        );
                    }
                }
                Err(f) => {
                    failed += 1;
                    println!("FAILED {f}");
                }
            }
        }
    }
    println!("{ok} passed, {failed} failed ({:.1} s real time)", t0.elapsed().as_secs_f64());
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn lab(cc: xtcp::tcp::cc::Algorithm) -> ExitCode {
    let clean = Profile::named("clean").expect("clean profile");
    let loss = std::env::var("SIM_LAB_LOSS").ok().and_then(|v| v.parse().ok()).unwrap_or(0.10);
    let mb = std::env::var("SIM_LAB_MB").ok().and_then(|v| v.parse().ok()).unwrap_or(4usize);
    let seeds = std::env::var("SIM_LAB_SEEDS").ok().and_then(|v| v.parse().ok()).unwrap_or(1u64);
    for seed in 1..=seeds {
        let ov = Overrides {
            one_way_bytes: Some(mb << 20),
            loss: Some(loss),
            reverse_loss: Some(0.0),
            delay: Some(xtcp::time::Duration::from_micros(25)),
            bandwidth: Some(1_250_000_000),
            mss: Some(1460),
            buffer: Some(4 << 20),
            max_steps: Some(50_000_000),
            all_options: true,
            cc: Some(cc),
            // The stack's timer wheel, at its default resolution.
            tick: Some(xtcp::stack::StackConfig::new(std::net::Ipv4Addr::UNSPECIFIED, 24, [0; 16]).timer_resolution),
        };
        match run(seed, &clean, &ov) {
            Ok(o) => {
                let st = &o.stats[0];
                println!(
                    "seed {seed}: {} MB at {:.0} % data loss in {:.3} s: retransmits {} (fast {}), RTOs {}, TLPs {}, lost rtx {}, undos {}",
                    mb,
                    loss * 100.0,
                    o.transfer_time.as_secs_f64(),
                    st.retransmits,
                    st.fast_retransmits,
                    st.rto_expirations,
                    st.tlp_probes,
                    st.lost_retransmits,
                    st.undos + st.spurious_rtos
                );
            }
            Err(f) => {
                println!("FAILED {f}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}

fn table(cc: xtcp::tcp::cc::Algorithm) -> ExitCode {
    // A 1 Gbit/s link, so that segments are spaced as on a wire rather than arriving in
    // zero-time bursts.
    let clean = Profile { bandwidth: Some(125_000_000), ..Profile::named("clean").expect("clean profile") };
    println!("10 MB one way over a 1 Gbit/s link, 5 ms one-way delay (10 ms RTT), MSS 1460, 1 MB buffers,");
    println!("loss on both directions, congestion control {cc:?};");
    println!("virtual time from the first SYN until the receiver has read the last byte");
    println!(
        "{:>6}  {:>14}  {:>12}  {:>10}  {:>10}  {:>10}  {:>6}  {:>9}  {:>6}",
        "loss", "transfer time", "retransmits", "Mbit/s", "fast rtx", "RTOs", "TLPs", "lost rtx", "undos"
    );
    let losses: Vec<f64> = match std::env::var("SIM_TABLE_LOSS") {
        Ok(v) => v.split(',').filter_map(|x| x.parse().ok()).collect(),
        Err(_) => vec![0.0, 0.01, 0.05, 0.20],
    };
    for loss in losses {
        let ov = Overrides {
            one_way_bytes: Some(10_000_000),
            loss: Some(loss),
            mss: Some(1460),
            buffer: Some(1 << 20),
            max_steps: Some(50_000_000),
            all_options: true,
            cc: Some(cc),
            ..Overrides::default()
        };
        match run(1, &clean, &ov) {
            Ok(o) => {
                let secs = o.transfer_time.as_secs_f64();
                let st = &o.stats[0];
                println!(
                    "{:>5}%  {:>12.2} s  {:>12}  {:>10.1}  {:>10}  {:>10}  {:>6}  {:>9}  {:>6}",
                    loss * 100.0,
                    secs,
                    o.retransmits[0],
                    10_000_000.0 * 8.0 / secs / 1e6,
                    st.fast_retransmits,
                    st.rto_expirations,
                    st.tlp_probes,
                    st.lost_retransmits,
                    st.undos + st.spurious_rtos
                );
            }
            Err(f) => {
                println!("FAILED {f}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}
