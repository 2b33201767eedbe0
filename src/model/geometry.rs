//! Spatial footprints of convolution chains along one axis.
//!
//! Column colouring (see [`crate::analysis::jacobian`]) needs to know which output
//! positions an input position can influence. Along one spatial axis a
//! convolution with kernel k, stride s and padding p lets input position h
//! reach output o iff `o*s - p <= h <= o*s - p + k - 1`, so an interval of
//! input positions maps to an interval of output positions. Composing these
//! maps through a chain of layers gives the footprint of the chain.

/// A closed interval `[lo, hi]` of positions on one axis; empty when `lo > hi`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval {
    pub lo: i64,
    pub hi: i64,
}

impl Interval {
    pub fn point(p: usize) -> Self {
        Self {
            lo: p as i64,
            hi: p as i64,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.lo > self.hi
    }

    /// The smallest interval containing both.
    pub fn hull(self, other: Self) -> Self {
        match (self.is_empty(), other.is_empty()) {
            (true, _) => other,
            (_, true) => self,
            _ => Self {
                lo: self.lo.min(other.lo),
                hi: self.hi.max(other.hi),
            },
        }
    }

    pub fn intersects(&self, other: &Self) -> bool {
        !self.is_empty() && !other.is_empty() && self.lo <= other.hi && other.lo <= self.hi
    }

    pub fn contains(&self, p: i64) -> bool {
        self.lo <= p && p <= self.hi
    }

    /// Output positions of a sliding window (kernel `k`, stride `s`, padding
    /// `p`, `out_len` outputs) that read any input position in `self`:
    /// `[ceil((lo + p - k + 1) / s), floor((hi + p) / s)]`, clipped to the output.
    pub fn through_window(self, k: usize, s: usize, p: usize, out_len: usize) -> Self {
        if self.is_empty() {
            return self;
        }
        let (k, s, p) = (k as i64, s as i64, p as i64);
        let lo = (self.lo + p - k + 1).div_euclid(s)
            + i64::from((self.lo + p - k + 1).rem_euclid(s) != 0);
        let hi = (self.hi + p).div_euclid(s);
        Self {
            lo: lo.max(0),
            hi: hi.min(out_len as i64 - 1),
        }
    }
}

/// The footprint of a linear map along one axis, tabulated for every input position.
#[derive(Debug, Clone)]
pub struct AxisFootprint {
    /// `reach[h]`: the output positions input position h can influence.
    pub reach: Vec<Interval>,
    pub out_len: usize,
}

impl AxisFootprint {
    pub fn new(reach: Vec<Interval>, out_len: usize) -> Self {
        Self { reach, out_len }
    }

    pub fn in_len(&self) -> usize {
        self.reach.len()
    }

    /// The smallest period P such that any two input positions congruent
    /// modulo P have disjoint footprints; they can then share one coloured
    /// tangent. At most `in_len` (every position its own colour).
    pub fn colouring_period(&self) -> usize {
        let n = self.in_len();
        (1..n.max(1))
            .find(|&period| self.is_valid_period(period))
            .unwrap_or(n.max(1))
    }

    fn is_valid_period(&self, period: usize) -> bool {
        let n = self.in_len();
        (0..n).all(|a| {
            (a + period..n)
                .step_by(period)
                .all(|b| !self.reach[a].intersects(&self.reach[b]))
        })
    }

    /// For colouring period `period`: `owner[r][o]` is the unique input position
    /// h with h = r (mod period) whose footprint contains output o, if any.
    pub fn owners(&self, period: usize) -> Vec<Vec<Option<usize>>> {
        (0..period)
            .map(|r| {
                (0..self.out_len)
                    .map(|o| {
                        (r..self.in_len())
                            .step_by(period)
                            .find(|&h| self.reach[h].contains(o as i64))
                    })
                    .collect()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_3x3_stride1_pad1_spreads_by_one() {
        let iv = Interval::point(0).through_window(3, 1, 1, 8);
        assert_eq!(iv, Interval { lo: 0, hi: 1 });
        let iv = Interval::point(4).through_window(3, 1, 1, 8);
        assert_eq!(iv, Interval { lo: 3, hi: 5 });
    }

    #[test]
    fn window_stride2_matches_brute_force() {
        for (k, s, p) in [(3, 2, 1), (1, 2, 0), (7, 2, 3), (3, 1, 1), (1, 1, 0)] {
            let in_len = 13;
            let out_len = (in_len + 2 * p - k) / s + 1;
            for h in 0..in_len as i64 {
                let brute: Vec<i64> = (0..out_len as i64)
                    .filter(|o| {
                        let start = o * s as i64 - p as i64;
                        start <= h && h < start + k as i64
                    })
                    .collect();
                let iv = Interval::point(h as usize).through_window(k, s, p, out_len);
                let from_iv: Vec<i64> = (iv.lo..=iv.hi).collect();
                assert_eq!(brute, from_iv, "k={k} s={s} p={p} h={h}");
            }
        }
    }

    #[test]
    fn two_3x3_convs_need_period_5() {
        let reach = (0..16)
            .map(|h| {
                Interval::point(h)
                    .through_window(3, 1, 1, 16)
                    .through_window(3, 1, 1, 16)
            })
            .collect();
        let fp = AxisFootprint::new(reach, 16);
        assert_eq!(fp.colouring_period(), 5);
        let owners = fp.owners(5);
        for (r, row) in owners.iter().enumerate() {
            for (o, owner) in row.iter().enumerate() {
                let near: Vec<usize> = (r..16)
                    .step_by(5)
                    .filter(|&h| (h as i64 - o as i64).abs() <= 2)
                    .collect();
                assert_eq!(owner.map(|h| vec![h]).unwrap_or_default(), near);
            }
        }
    }
}
