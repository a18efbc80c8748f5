//! Sequence-number arithmetic modulo 2^32 (RFC 9293 §3.4; RFC 1982 serial-number arithmetic).
//!
//! Comparisons are meaningful only for numbers less than 2^31 apart, which TCP guarantees for
//! any two numbers inside one window (the window is at most 2^30 with scaling, RFC 7323 §2.3).

use core::cmp::Ordering;
use core::fmt;
use core::ops::{Add, AddAssign, Sub};

/// A TCP sequence number.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SeqNum(pub u32);

impl SeqNum {
    /// `self < other` in sequence space.
    #[inline]
    pub fn lt(self, other: SeqNum) -> bool {
        (self.0.wrapping_sub(other.0) as i32) < 0
    }
    /// `self <= other` in sequence space.
    #[inline]
    pub fn le(self, other: SeqNum) -> bool {
        !other.lt(self)
    }
    /// `self > other` in sequence space.
    #[inline]
    pub fn gt(self, other: SeqNum) -> bool {
        other.lt(self)
    }
    /// `self >= other` in sequence space.
    #[inline]
    pub fn ge(self, other: SeqNum) -> bool {
        !self.lt(other)
    }
    /// The later of two numbers.
    #[inline]
    pub fn max(self, other: SeqNum) -> SeqNum {
        if self.lt(other) {
            other
        } else {
            self
        }
    }
    /// The earlier of two numbers.
    #[inline]
    pub fn min(self, other: SeqNum) -> SeqNum {
        if self.lt(other) {
            self
        } else {
            other
        }
    }
    /// `start <= self < end` (an empty range contains nothing).
    #[inline]
    pub fn in_range(self, start: SeqNum, end: SeqNum) -> bool {
        start.le(self) && self.lt(end)
    }
    /// Distance from `earlier` to `self`; zero if `earlier` is not earlier.
    #[inline]
    pub fn since(self, earlier: SeqNum) -> u32 {
        let d = self.0.wrapping_sub(earlier.0);
        if (d as i32) < 0 {
            0
        } else {
            d
        }
    }
    /// Total order from the point of view of `base` (for sorting within one window).
    pub fn cmp_from(self, other: SeqNum, base: SeqNum) -> Ordering {
        self.0.wrapping_sub(base.0).cmp(&other.0.wrapping_sub(base.0))
    }
}

impl Add<u32> for SeqNum {
    type Output = SeqNum;
    #[inline]
    fn add(self, n: u32) -> SeqNum {
        SeqNum(self.0.wrapping_add(n))
    }
}

impl Add<usize> for SeqNum {
    type Output = SeqNum;
    #[inline]
    fn add(self, n: usize) -> SeqNum {
        // Lengths inside one window fit 32 bits; truncation is the modular arithmetic we want.
        SeqNum(self.0.wrapping_add(n as u32))
    }
}

impl AddAssign<u32> for SeqNum {
    #[inline]
    fn add_assign(&mut self, n: u32) {
        self.0 = self.0.wrapping_add(n);
    }
}

impl AddAssign<usize> for SeqNum {
    #[inline]
    fn add_assign(&mut self, n: usize) {
        self.0 = self.0.wrapping_add(n as u32);
    }
}

impl Sub<u32> for SeqNum {
    type Output = SeqNum;
    #[inline]
    fn sub(self, n: u32) -> SeqNum {
        SeqNum(self.0.wrapping_sub(n))
    }
}

/// Signed distance `self - other` (positive when `self` is later).
impl Sub<SeqNum> for SeqNum {
    type Output = i32;
    #[inline]
    fn sub(self, other: SeqNum) -> i32 {
        self.0.wrapping_sub(other.0) as i32
    }
}

impl fmt::Debug for SeqNum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for SeqNum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ordering_across_the_wrap() {
        let a = SeqNum(u32::MAX - 10);
        let b = a + 20u32; // wraps to 9
        assert_eq!(b, SeqNum(9));
        assert!(a.lt(b) && b.gt(a) && a.le(b) && b.ge(a));
        assert!(!b.lt(a));
        assert_eq!(b - a, 20);
        assert_eq!(a - b, -20);
        assert_eq!(b.since(a), 20);
        assert_eq!(a.since(b), 0);
        assert_eq!(a.max(b), b);
        assert_eq!(a.min(b), a);
        assert!(SeqNum(0).in_range(a, b));
        assert!(!b.in_range(a, b));
        assert!(!a.in_range(a, a));
    }

    proptest! {
        #[test]
        fn add_then_compare(base in any::<u32>(), n in 1u32..(1 << 31)) {
            let a = SeqNum(base);
            let b = a + n;
            prop_assert!(a.lt(b));
            prop_assert!(!b.lt(a));
            prop_assert_eq!(b.since(a), n);
            prop_assert_eq!((b - a) as i64, n as i64);
            prop_assert_eq!(b - n, a);
        }
    }
}
