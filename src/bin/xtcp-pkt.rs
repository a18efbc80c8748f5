//! `xtcp-pkt`: run packetdrill scripts against the xtcp stack in virtual time.
//!
//! `xtcp-pkt tests/pkt/` runs every `.pkt` file in the directory (not its subdirectories);
//! files can be named too. Each script gets a line, `PASS`, `FAIL` with the first mismatch
//! (expected against actual segment, and when), or `SKIP`; a closing line counts them. The
//! exit status is non-zero when any script failed. The dialect is described in
//! `tests/pkt/README.md`.

use clap::{Parser, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;
use xtcp::pkt::{collect_scripts, install_quiet_panic_hook, run_file, Outcome, Profile, RunConfig};

#[derive(Parser)]
#[command(name = "xtcp-pkt", version, about = "Run packetdrill (.pkt) scripts against the xtcp stack in virtual time")]
struct Cli {
    /// Script files, or directories whose .pkt files to run.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// The tunables the scripts' authors assumed.
    #[arg(long, value_enum, default_value_t = ProfileArg::Linux)]
    profile: ProfileArg,
    /// Ignore option order and advertised windows; skip (and report) unsupported lines.
    #[arg(long)]
    lenient: bool,
    /// Print every event and segment.
    #[arg(long, short)]
    verbose: bool,
    /// Define NAME for `#ifdef NAME` (packetdrill's --define); may be repeated. The FreeBSD
    /// suite's `#ifdef STANDARD` parts hold what the RFCs say, its `#ifdef FreeBSD` parts
    /// FreeBSD's own behaviour.
    #[arg(short = 'D', long = "define", value_name = "NAME")]
    defines: Vec<String>,
}

#[derive(Clone, Copy, ValueEnum)]
enum ProfileArg {
    /// Linux's tunables (initial window 10, min RTO 200 ms, delayed ACK 40 ms).
    Linux,
    /// xtcp's own defaults (today the same as linux).
    Xtcp,
    /// FreeBSD's socket buffers and window scale, for FreeBSD's tcp-testsuite.
    Freebsd,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    install_quiet_panic_hook();
    let cfg = RunConfig {
        profile: match cli.profile {
            ProfileArg::Linux => Profile::Linux,
            ProfileArg::Xtcp => Profile::Xtcp,
            ProfileArg::Freebsd => Profile::FreeBsd,
        },
        lenient: cli.lenient,
        verbose: cli.verbose,
        defines: cli.defines,
        script_dir: None,
    };
    let scripts = match collect_scripts(&cli.paths) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("xtcp-pkt: {e}");
            return ExitCode::FAILURE;
        }
    };
    if scripts.is_empty() {
        eprintln!("xtcp-pkt: no .pkt scripts found");
        return ExitCode::FAILURE;
    }
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    for path in &scripts {
        let report = run_file(path, &cfg);
        for line in &report.trace {
            println!("  {line}");
        }
        match &report.outcome {
            Outcome::Pass => passed += 1,
            Outcome::Fail(_) => failed += 1,
            Outcome::Skipped(_) => skipped += 1,
        }
        println!("{} {}", path.display(), report.summary());
        for (line, why) in &report.skipped {
            println!("    skipped line {line}: {why}");
        }
    }
    println!("{passed} passed, {failed} failed, {skipped} skipped");
    if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
