//! `xtcp`: servers and diagnostics on the xtcp stack.
//!
//! Subcommands so far:
//! * `xtcp decode FILE`: print each frame of a pcap file (or a `NAME HEX` fixture file) as
//!   xtcp's wire layer reads it, one line a frame, with the reason for every frame it refuses.

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;
use xtcp::io::pcap::PcapReader;
use xtcp::wire::{FrameRepr, RxChecksum};

#[derive(Parser)]
#[command(name = "xtcp", version, about = "Servers and diagnostics on the xtcp kernel-bypass TCP/IP stack")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Decode frames from a pcap file or a hex fixture file with xtcp's wire layer.
    Decode {
        /// A pcap file (Ethernet), or a text file of `NAME HEX` lines (tests/fixtures/*.hex).
        file: PathBuf,
        /// Checksum policy for received frames.
        #[arg(long, value_enum, default_value_t = Checksums::Verify)]
        checksums: Checksums,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Checksums {
    /// Verify every checksum.
    Verify,
    /// Trust TCP/UDP/ICMP checksums (veth peers with offload on leave them partial).
    TrustL4,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Decode { file, checksums } => {
            let rx = match checksums {
                Checksums::Verify => RxChecksum::Verify,
                Checksums::TrustL4 => RxChecksum::TrustL4,
            };
            match decode(&file, rx) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("xtcp decode: {}: {e}", file.display());
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn decode(file: &PathBuf, rx: RxChecksum) -> std::io::Result<()> {
    let bytes = std::fs::read(file)?;
    let frames: Vec<(String, Vec<u8>)> = if bytes.starts_with(&[0xd4, 0xc3, 0xb2, 0xa1])
        || bytes.starts_with(&[0xa1, 0xb2, 0xc3, 0xd4])
        || bytes.starts_with(&[0x4d, 0x3c, 0xb2, 0xa1])
        || bytes.starts_with(&[0xa1, 0xb2, 0x3c, 0x4d])
    {
        let mut r = PcapReader::new(&bytes[..])?;
        let mut v = Vec::new();
        while let Some(rec) = r.next_record()? {
            v.push((format!("{}.{:06}", rec.micros / 1_000_000, rec.micros % 1_000_000), rec.data));
        }
        v
    } else {
        let text = String::from_utf8(bytes).map_err(|_| std::io::Error::other("neither pcap nor a hex text file"))?;
        let mut v = Vec::new();
        for (n, line) in text.lines().enumerate() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let (name, hex) = line.split_once(' ').unwrap_or(("?", line));
            let data =
                decode_hex(hex.trim()).ok_or_else(|| std::io::Error::other(format!("line {}: not hex", n + 1)))?;
            v.push((name.to_string(), data));
        }
        v
    };
    let width = frames.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    for (name, data) in &frames {
        match FrameRepr::parse(data, rx) {
            Ok(f) => {
                // Emit what was parsed and compare: shows whether xtcp writes the same bytes.
                let mut out = vec![0u8; f.buffer_len()];
                let same = match f.emit(&mut out) {
                    Ok(_) if out == *data => "re-emitted identical".to_string(),
                    Ok(_) => match out.iter().zip(data.iter()).position(|(a, b)| a != b) {
                        Some(at) => format!("re-emitted differs from byte {at}"),
                        None => format!("re-emitted {} of {} bytes", out.len(), data.len()),
                    },
                    Err(e) => format!("re-emit failed: {e}"),
                };
                println!("{name:width$}  {f}  [{same}]")
            }
            Err(e) => println!("{name:width$}  DROPPED ({e}), {} bytes", data.len()),
        }
    }
    Ok(())
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}
