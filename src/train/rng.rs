//! Counter-based randomness: every random choice of a training run is a pure
//! function of `(seed, purpose, a, b)`, so that a resumed run needs no RNG
//! state beyond the seed and reproduces an uninterrupted run bit for bit.
//!
//! The generator is SplitMix64 (Steele, Lea and Flood 2014), started from a
//! key that mixes the seed with the purpose and the two counters.

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

/// SplitMix64's output function.
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

/// A SplitMix64 stream.
#[derive(Debug, Clone)]
pub struct Stream {
    state: u64,
}

impl Stream {
    /// The stream for `(seed, purpose, a, b)`.
    pub fn new(seed: u64, purpose: Purpose, a: u64, b: u64) -> Self {
        let key = [purpose as u64, a, b]
            .iter()
            .fold(mix64(seed), |k, &x| mix64(k ^ x.wrapping_mul(GOLDEN)));
        Stream { state: key }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN);
        mix64(self.state)
    }

    /// Uniform in [0, 1) with 53 random bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform integer in 0..n (n > 0), by rejection (no modulo bias).
    pub fn below(&mut self, n: u64) -> u64 {
        let zone = u64::MAX - u64::MAX % n;
        loop {
            let x = self.next_u64();
            if x < zone {
                return x % n;
            }
        }
    }

    /// Standard normal by the Box-Muller transform.
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform(); // (0, 1]
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// The order of `n` images in `epoch`: a Fisher-Yates shuffle of 0..n.
pub fn permutation(seed: u64, epoch: usize, n: usize) -> Vec<usize> {
    let mut rng = Stream::new(seed, Purpose::Shuffle, epoch as u64, 0);
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        order.swap(i, j);
    }
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

    #[test]
    fn normal_has_unit_variance() {
        let mut rng = Stream::new(1, Purpose::Init, 0, 0);
        let xs: Vec<f64> = (0..20000).map(|_| rng.normal()).collect();
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / xs.len() as f64;
        assert!(
            mean.abs() < 0.03 && (var - 1.0).abs() < 0.05,
            "{mean} {var}"
        );
    }
}
