//! A device's descriptor in tokio's reactor (feature `tokio`), for [`crate::tokio::Net::run`].
//!
//! tokio's `AsyncFd` constructors are `unsafe` (the descriptor must stay open for as long as
//! the reactor watches it); the one call lives here, with the backends' other unsafe code.

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// Watch `fd` for readability: a duplicate of it (the same socket), owned by the returned
/// `AsyncFd`, so the registration cannot outlive the descriptor it names.
pub fn watch_readable(fd: BorrowedFd<'_>) -> io::Result<AsyncFd<OwnedFd>> {
    let owned = fd.try_clone_to_owned()?;
    // SAFETY: `owned` is an open descriptor that the `AsyncFd` takes ownership of: it stays
    // open until the `AsyncFd` is dropped (or gives it back), and `OwnedFd::as_raw_fd`
    // always returns that same descriptor.
    unsafe { AsyncFd::register_with_interest(owned, Interest::READABLE) }.map_err(io::Error::from)
}
