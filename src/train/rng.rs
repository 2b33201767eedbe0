//! Counter-based randomness: every random choice of a training run is a pure
//! function of `(seed, purpose, a, b)`, so that a resumed run needs no RNG
//! state beyond the seed and reproduces an uninterrupted run bit for bit.
//!
//! The generator is the crate's SplitMix64 ([`Rng`]; Steele, Lea and Flood
//! 2014), started from a key that mixes the seed with the purpose and the two
//! counters.

use crate::model::random::{mix64, shuffle, Rng, GOLDEN};

/// What a random stream is used for; streams of different purposes never share a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Weight initialisation (`a` = tensor index).
    Init = 1,
    /// The order of the training images in an epoch (`a` = epoch).
    Shuffle = 2,
    /// Crop offset and flip of one image (`a` = epoch, `b` = image index).
    Augment = 3,
}

/// The generator for `(seed, purpose, a, b)`: SplitMix64 started from the
/// key mix(... mix(mix(seed) ^ purpose g) ^ a g ...) ^ b g), g = 2^64 / phi.
pub fn stream(seed: u64, purpose: Purpose, a: u64, b: u64) -> Rng {
    let key = [purpose as u64, a, b]
        .iter()
        .fold(mix64(seed), |k, &x| mix64(k ^ x.wrapping_mul(GOLDEN)));
    Rng(key)
}

/// The order of `n` images in `epoch`: a Fisher-Yates shuffle of 0..n.
pub fn permutation(seed: u64, epoch: usize, n: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    shuffle(
        &mut order,
        &mut stream(seed, Purpose::Shuffle, epoch as u64, 0),
    );
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permutation_is_a_reproducible_permutation() {
        let p = permutation(7, 3, 100);
        assert_eq!(p, permutation(7, 3, 100));
        assert_ne!(p, permutation(7, 4, 100));
        let mut sorted = p.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>());
    }

    /// The draws that fixed the shipped models' training (initialisation,
    /// order, augmentation) stay the same.
    #[test]
    fn streams_are_pinned() {
        let mut r = stream(3, Purpose::Augment, 5, 7);
        let bits: Vec<u64> = (0..3).map(|_| r.next_u64()).collect();
        assert_eq!(
            bits,
            [
                6333642708511315533,
                11269472306443353462,
                6730167038301697586
            ]
        );
        let below: Vec<usize> = (0..3).map(|_| r.below(10)).collect();
        assert_eq!(below, [6, 9, 2]);
        assert_eq!(r.uniform().to_bits(), 4603134435433822396);
        assert_eq!(r.gaussian().to_bits(), 4593142958376964571);
        let mut init = stream(0, Purpose::Init, 12, 0);
        assert_eq!(init.gaussian().to_bits(), 4595798377878235242);
        assert_eq!(permutation(7, 3, 10), [0, 8, 3, 9, 7, 6, 1, 4, 5, 2]);
    }

    #[test]
    fn gaussian_has_unit_variance() {
        let mut rng = stream(1, Purpose::Init, 0, 0);
        let xs: Vec<f64> = (0..20000).map(|_| rng.gaussian()).collect();
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / xs.len() as f64;
        assert!(
            mean.abs() < 0.03 && (var - 1.0).abs() < 0.05,
            "{mean} {var}"
        );
    }
}
