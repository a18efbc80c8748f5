//! Unit tests of the interpreter (filled in below).
