//! Builds the XDP program (bpf/xtcp.bpf.c) into a libbpf-rs skeleton in OUT_DIR, when the
//! `afxdp` feature is on.
//!
//! Needs clang and the kernel's UAPI headers (Debian: clang, linux-libc-dev; scripts/deps
//! installs them). libbpf's own headers (bpf_helpers.h…) come with libbpf-cargo, so neither
//! libbpf-dev nor bpftool (vmlinux.h) is needed: the program uses UAPI structs only.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    #[cfg(feature = "afxdp")]
    afxdp::build();
}

#[cfg(feature = "afxdp")]
mod afxdp {
    use libbpf_cargo::SkeletonBuilder;
    use std::env;
    use std::path::PathBuf;

    const SRC: &str = "bpf/xtcp.bpf.c";

    pub fn build() {
        println!("cargo:rerun-if-changed={SRC}");
        let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR")).join("xtcp.skel.rs");
        // Debian keeps <asm/types.h> under the multiarch directory, where `clang -target bpf`
        // does not look (AFXDP-NOTES.md).
        let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_else(|_| "x86_64".into());
        let multiarch = format!("-I/usr/include/{arch}-linux-gnu");
        if let Err(e) = SkeletonBuilder::new()
            .source(SRC)
            // -mcpu=v3: Debian's clang 14 otherwise rejects atomics whose result is used.
            .clang_args([multiarch.as_str(), "-mcpu=v3", "-Wall", "-Werror"])
            .build_and_generate(&out)
        {
            panic!("building {SRC} failed: {e:#}\n(needs clang and linux-libc-dev: run scripts/deps)");
        }
    }
}
