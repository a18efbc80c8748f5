//! Builds the XDP program (bpf/xtcp.bpf.c) into a libbpf-rs skeleton in OUT_DIR, when the
//! `afxdp` feature is on; and the interop tests' loss injector (bpf/loss.bpf.c) into an object
//! file there (`loss.bpf.o`, loaded by tests/interop.rs with libbpf-rs from its bytes).
//!
//! Needs clang and the kernel's UAPI headers (Debian: clang, linux-libc-dev; scripts/deps
//! installs them). libbpf's own headers (bpf_helpers.h…) come with libbpf-cargo, so neither
//! libbpf-dev nor bpftool (vmlinux.h) is needed: the program uses UAPI structs only.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    #[cfg(feature = "afxdp")]
    afxdp::build();
    #[cfg(feature = "dpdk")]
    dpdk::build();
}

/// The DPDK backend's C shim (csrc/dpdk_shim.c), compiled against DPDK's headers with the
/// flags `pkg-config libdpdk` gives (which include `-include rte_config.h` and the -march DPDK
/// was built for), and DPDK's shared libraries linked; the EAL loads its PMDs itself at run
/// time.
#[cfg(feature = "dpdk")]
mod dpdk {
    const SHIM: &str = "csrc/dpdk_shim.c";

    pub fn build() {
        println!("cargo:rerun-if-changed={SHIM}");
        let lib = pkg_config::Config::new().atleast_version("22.11").probe("libdpdk").unwrap_or_else(|e| {
            panic!("the dpdk feature needs DPDK >= 22.11 with its pkg-config file ({e}); on Debian: apt-get install libdpdk-dev (scripts/deps)")
        });
        let mut cc = cc::Build::new();
        cc.file(SHIM).warnings(true).extra_warnings(true).flag("-Werror");
        for p in &lib.include_paths {
            cc.include(p);
        }
        // The non-path flags pkg-config gives (-include rte_config.h, -march=...), which the
        // pkg-config crate does not hand back on their own.
        let cflags = std::process::Command::new("pkg-config")
            .args(["--cflags-only-other", "libdpdk"])
            .output()
            .expect("pkg-config --cflags-only-other libdpdk");
        let cflags = String::from_utf8_lossy(&cflags.stdout).into_owned();
        let mut words = cflags.split_whitespace();
        while let Some(w) = words.next() {
            if w == "-include" {
                if let Some(f) = words.next() {
                    cc.flag("-include").flag(f);
                }
            } else {
                cc.flag(w);
            }
        }
        cc.compile("xtcp_dpdk_shim");
    }
}

#[cfg(feature = "afxdp")]
mod afxdp {
    use libbpf_cargo::SkeletonBuilder;
    use std::env;
    use std::path::PathBuf;

    const SRC: &str = "bpf/xtcp.bpf.c";
    const LOSS_SRC: &str = "bpf/loss.bpf.c";

    pub fn build() {
        println!("cargo:rerun-if-changed={SRC}");
        println!("cargo:rerun-if-changed={LOSS_SRC}");
        let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
        // Debian keeps <asm/types.h> under the multiarch directory, where `clang -target bpf`
        // does not look (AFXDP-NOTES.md).
        let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_else(|_| "x86_64".into());
        let multiarch = format!("-I/usr/include/{arch}-linux-gnu");
        // -mcpu=v3: Debian's clang 14 otherwise rejects atomics whose result is used.
        let args = [multiarch.as_str(), "-mcpu=v3", "-Wall", "-Werror"];
        if let Err(e) =
            SkeletonBuilder::new().source(SRC).clang_args(args).build_and_generate(out_dir.join("xtcp.skel.rs"))
        {
            panic!("building {SRC} failed: {e:#}\n(needs clang and linux-libc-dev: run scripts/deps)");
        }
        // Only an object file: the test that uses it loads it with libbpf-rs's safe API, so no
        // generated (unsafe) skeleton code lands in a test crate.
        if let Err(e) = SkeletonBuilder::new().source(LOSS_SRC).obj(out_dir.join("loss.bpf.o")).clang_args(args).build()
        {
            panic!("building {LOSS_SRC} failed: {e:#}\n(needs clang and linux-libc-dev: run scripts/deps)");
        }
    }
}
