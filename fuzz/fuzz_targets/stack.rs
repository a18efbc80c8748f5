#![no_main]
//! The whole stack: frames, time steps and application calls against a stack with a
//! listener and live connections (fuzz/src/stack.rs); its bookkeeping is checked after every
//! step, and at the end every connection must end and every frame come back.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| xtcp_fuzz::stack::run(data));
