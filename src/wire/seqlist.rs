//! A set of Seq numbers as sorted, merged, disjoint inclusive ranges.
//!
//! `Need-Seq: 0..18446744073709551615` is two numbers, not a list to
//! expand: every operation here costs in proportion to the number of
//! ranges, never to how many Seqs they cover.

use smallvec::SmallVec;
use std::fmt;

/// Sorted, merged (adjacent ranges joined), disjoint inclusive ranges.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct SeqList {
    ranges: SmallVec<[(u64, u64); SeqList::INLINE]>,
}

impl SeqList {
    /// Ranges held without a heap allocation.
    pub(crate) const INLINE: usize = 4;

    /// The empty set.
    #[inline]
    pub fn new() -> Self {
        Self::default()
    }

    /// The set of Seqs in `ranges` (each `(first, last)`, first ≤ last;
    /// reversed pairs are swapped).
    pub fn from_ranges(ranges: impl IntoIterator<Item = (u64, u64)>) -> Self {
        let mut v: SmallVec<[(u64, u64); 4]> = ranges
            .into_iter()
            .map(|(a, b)| if a <= b { (a, b) } else { (b, a) })
            .collect();
        v.sort_unstable();
        let mut out: SmallVec<[(u64, u64); 4]> = SmallVec::with_capacity(v.len());
        for (a, b) in v {
            match out.last_mut() {
                Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
                _ => out.push((a, b)),
            }
        }
        SeqList { ranges: out }
    }

    /// The single range `first..=last`.
    pub fn range(first: u64, last: u64) -> Self {
        Self::from_ranges([(first, last)])
    }

    /// True when no Seq is in the set.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Number of disjoint ranges.
    #[inline]
    pub fn range_count(&self) -> usize {
        self.ranges.len()
    }

    /// How many Seqs the set covers (up to 2^64, hence `u128`).
    pub fn count(&self) -> u128 {
        self.ranges
            .iter()
            .map(|&(a, b)| u128::from(b - a) + 1)
            .sum()
    }

    /// Whether `seq` is in the set (binary search over ranges).
    #[inline]
    pub fn contains(&self, seq: u64) -> bool {
        let i = self.ranges.partition_point(|&(_, b)| b < seq);
        self.ranges.get(i).is_some_and(|&(a, _)| a <= seq)
    }

    /// The ranges, smallest first.
    #[inline]
    pub fn ranges(&self) -> impl ExactSizeIterator<Item = (u64, u64)> + '_ {
        self.ranges.iter().copied()
    }

    /// The smallest Seq in the set.
    #[inline]
    pub fn first(&self) -> Option<u64> {
        self.ranges.first().map(|r| r.0)
    }

    /// Add `first..=last` to the set.
    pub fn insert_range(&mut self, first: u64, last: u64) {
        let (a, b) = if first <= last {
            (first, last)
        } else {
            (last, first)
        };
        // Ranges that overlap or touch [a, b] form one contiguous run.
        let lo = self
            .ranges
            .partition_point(|&(_, e)| e.saturating_add(1) < a);
        let hi = self
            .ranges
            .partition_point(|&(s, _)| s <= b.saturating_add(1) || b == u64::MAX);
        if lo == hi {
            self.ranges.insert(lo, (a, b));
        } else {
            let na = a.min(self.ranges[lo].0);
            let nb = b.max(self.ranges[hi - 1].1);
            self.ranges.drain(lo + 1..hi);
            self.ranges[lo] = (na, nb);
        }
    }

    /// Add `first..=last` (first <= last) in O(1) when it does not start
    /// before the last range held, as the items of a sorted list do: one
    /// push, or a merge with that last range. Otherwise change nothing and
    /// answer false (the caller collects such items and merges them once,
    /// see [`SeqList::from_ranges`]).
    #[inline]
    pub(crate) fn try_append(&mut self, first: u64, last: u64) -> bool {
        debug_assert!(first <= last);
        match self.ranges.last_mut() {
            Some(r) if first < r.0 => false,
            Some(r) if first <= r.1.saturating_add(1) => {
                r.1 = r.1.max(last);
                true
            }
            _ => {
                self.ranges.push((first, last));
                true
            }
        }
    }

    /// Add one Seq.
    pub fn insert(&mut self, seq: u64) {
        self.insert_range(seq, seq);
    }

    /// Remove every Seq ≤ `seq`.
    pub fn remove_through(&mut self, seq: u64) {
        let cut = self.ranges.partition_point(|&(_, b)| b <= seq);
        self.ranges.drain(..cut);
        if let Some(first) = self.ranges.first_mut() {
            if first.0 <= seq {
                first.0 = seq + 1;
            }
        }
    }

    /// The first `n` ranges only (the oldest gaps first).
    pub fn truncated(&self, n: usize) -> SeqList {
        SeqList {
            ranges: self.ranges.iter().copied().take(n).collect(),
        }
    }
}

/// Where the seq-list fast path ([`super::grammar::seq_list_fast`]) puts
/// each finished range: sorted, each after the one before and not touching
/// it (as the items of an ascending list, merged, are).
pub(crate) trait RangeSink {
    /// Append `first..=last` as range number `at` (0 for the first);
    /// `false` when there is no room for it. The caller counts, so the
    /// count stays in a register while the list is read.
    fn append(&mut self, at: usize, first: u64, last: u64) -> bool;
}

impl RangeSink for SeqList {
    #[inline(always)]
    fn append(&mut self, at: usize, first: u64, last: u64) -> bool {
        debug_assert_eq!(at, self.ranges.len());
        debug_assert!(first <= last);
        debug_assert!(self
            .ranges
            .last()
            .is_none_or(|r| r.1.saturating_add(1) < first));
        self.ranges.push((first, last));
        true
    }
}

/// Up to [`SeqList::INLINE`] ranges in a plain array: what a `Need-Seq`
/// usually holds, collected before the set is built from them in one step
/// ([`InlineRanges::into_list`]). Appending to the set itself costs more:
/// `SmallVec::push` checks for spilling on every call, and its growth path
/// takes the set's address, which keeps the compiler from building the set
/// where the accessor returns it, so the whole set is copied right after
/// being written (a copy that waits for those writes to land).
#[derive(Default)]
pub(crate) struct InlineRanges([(u64, u64); SeqList::INLINE]);

impl RangeSink for InlineRanges {
    #[inline(always)]
    fn append(&mut self, at: usize, first: u64, last: u64) -> bool {
        match self.0.get_mut(at) {
            Some(slot) => {
                *slot = (first, last);
                true
            }
            None => false,
        }
    }
}

impl InlineRanges {
    /// The set of the first `len` ranges appended.
    #[inline(always)]
    pub(crate) fn into_list(self, len: usize) -> SeqList {
        SeqList {
            ranges: SmallVec::from_buf_and_len(self.0, len),
        }
    }
}

impl fmt::Display for SeqList {
    /// The canonical wire form: `12..17,19`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, &(a, b)) in self.ranges.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if a == b {
                write!(f, "{a}")?;
            } else {
                write!(f, "{a}..{b}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for SeqList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SeqList({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_adjacent_and_overlapping() {
        let s = SeqList::from_ranges([(19, 19), (12, 17), (15, 18), (30, 31)]);
        assert_eq!(s.to_string(), "12..19,30..31");
        assert_eq!(s.count(), 10);
    }

    #[test]
    fn full_range_is_two_numbers() {
        let s = SeqList::range(0, u64::MAX);
        assert_eq!(s.range_count(), 1);
        assert_eq!(s.count(), 1u128 << 64);
        assert!(s.contains(u64::MAX));
        assert_eq!(s.to_string(), "0..18446744073709551615");
    }

    #[test]
    fn insert_matches_from_ranges() {
        let items = [
            (5, 9),
            (1, 1),
            (11, 20),
            (10, 10),
            (40, 40),
            (u64::MAX, u64::MAX),
            (0, 0),
        ];
        let mut a = SeqList::new();
        for &(x, y) in &items {
            a.insert_range(x, y);
        }
        assert_eq!(a, SeqList::from_ranges(items));
        assert_eq!(a.to_string(), "0..1,5..20,40,18446744073709551615");
    }

    #[test]
    fn try_append_then_from_ranges_matches_from_ranges() {
        let cases: [&[(u64, u64)]; 5] = [
            &[(1, 2), (5, 9), (11, 11)],
            &[(1, 2), (3, 4), (4, 9)],
            &[(10, 12), (1, 2), (0, u64::MAX)],
            &[(u64::MAX, u64::MAX), (0, 0), (u64::MAX - 1, u64::MAX - 1)],
            &[(7, 7), (7, 7), (6, 8), (20, 30), (9, 19)],
        ];
        for items in cases {
            let mut s = SeqList::new();
            let mut aside = Vec::new();
            for &(a, b) in items {
                if !s.try_append(a, b) {
                    aside.push((a, b));
                }
            }
            let s = SeqList::from_ranges(s.ranges().chain(aside));
            assert_eq!(s, SeqList::from_ranges(items.iter().copied()), "{items:?}");
        }
    }

    #[test]
    fn remove_through_and_truncate() {
        let mut s = SeqList::from_ranges([(1, 5), (8, 9), (12, 12)]);
        s.remove_through(3);
        assert_eq!(s.to_string(), "4..5,8..9,12");
        s.remove_through(9);
        assert_eq!(s.to_string(), "12");
        let t = SeqList::from_ranges((0..100).map(|i| (i * 3, i * 3)));
        assert_eq!(t.truncated(64).range_count(), 64);
        assert_eq!(t.truncated(64).first(), Some(0));
    }
}
