//! Clean shutdown on SIGINT and SIGTERM, for the binaries and examples.
//!
//! [`install`] returns a flag that the first SIGINT or SIGTERM sets; a busy-polling loop checks
//! it and returns, and dropping its devices closes the sockets and detaches the XDP program.
//! A second signal while the flag is already set exits at once (status 130): nothing is left
//! behind even then, because the XDP program hangs on a BPF link fd, which the kernel closes
//! with the process.

use std::io;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use signal_hook::consts::{SIGINT, SIGTERM};

/// Install the handlers (once per process) and return the flag they set.
pub fn install() -> io::Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    for sig in [SIGINT, SIGTERM] {
        // The order matters: the exit handler must see the flag as it was before this signal.
        signal_hook::flag::register_conditional_shutdown(sig, 130, Arc::clone(&flag))?;
        signal_hook::flag::register(sig, Arc::clone(&flag))?;
    }
    Ok(flag)
}
