//! Deterministic sample selection and sharding.
//!
//! Stratified: for every label, the indices of that label are shuffled with a
//! SplitMix64-driven Fisher-Yates shuffle seeded by (seed, label) and the first
//! K are taken; the union is sorted. The same (data, K, seed) always gives the
//! same samples, on any machine. A shard I/N takes every N-th sample of that
//! sorted list starting at I, so N shards partition the samples exactly.

use stiffness_records::Shard;

use crate::model::random::{shuffle, Rng};

/// K samples per label (all of a label if it has fewer), sorted by index.
pub fn stratified(labels: &[usize], per_class: usize, seed: u64) -> Vec<usize> {
    let classes = labels.iter().max().map_or(0, |m| m + 1);
    let mut chosen: Vec<usize> = (0..classes)
        .flat_map(|label| {
            let mut mine: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == label).collect();
            let key = seed ^ (label as u64).wrapping_mul(0xA24B_AED4_963E_E407);
            shuffle(&mut mine, &mut Rng(key));
            mine.truncate(per_class);
            mine
        })
        .collect();
    chosen.sort_unstable();
    chosen
}

/// N samples drawn uniformly without replacement, sorted by index.
pub fn uniform(len: usize, count: usize, seed: u64) -> Vec<usize> {
    let mut all: Vec<usize> = (0..len).collect();
    shuffle(&mut all, &mut Rng(seed));
    all.truncate(count);
    all.sort_unstable();
    all
}

/// `count` indices spread evenly over 0..len, floor(i len / count) for
/// i < count (all of 0..len when count >= len), so that a subset of a
/// class-sorted image folder still holds every class.
pub fn evenly_spaced(len: usize, count: usize) -> Vec<usize> {
    let count = count.min(len);
    (0..count)
        .map(|i| (i as u128 * len as u128 / count as u128) as usize)
        .collect()
}

/// The part of `samples` that shard `shard` owns.
pub fn shard(samples: &[usize], shard: Option<Shard>) -> Vec<usize> {
    match shard {
        None => samples.to_vec(),
        Some(s) => samples
            .iter()
            .copied()
            .skip(s.index)
            .step_by(s.count)
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evenly_spaced_covers_the_range() {
        assert_eq!(evenly_spaced(10, 4), vec![0, 2, 5, 7]);
        assert_eq!(evenly_spaced(3, 5), vec![0, 1, 2]);
        assert_eq!(evenly_spaced(7, 7), (0..7).collect::<Vec<_>>());
        let labels: Vec<usize> = (0..50_000).map(|i| i / 5000).collect();
        let picked = evenly_spaced(labels.len(), 100);
        for label in 0..10 {
            assert_eq!(picked.iter().filter(|&&i| labels[i] == label).count(), 10);
        }
    }

    #[test]
    fn stratified_takes_k_per_label_deterministically() {
        let labels: Vec<usize> = (0..100).map(|i| i % 4).collect();
        let a = stratified(&labels, 3, 7);
        assert_eq!(a, stratified(&labels, 3, 7));
        assert_ne!(a, stratified(&labels, 3, 8));
        assert_eq!(a.len(), 12);
        for label in 0..4 {
            assert_eq!(a.iter().filter(|&&i| labels[i] == label).count(), 3);
        }
        assert!(a.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn small_classes_give_what_they_have() {
        let labels = [0, 0, 1, 2, 2, 2];
        let a = stratified(&labels, 2, 1);
        assert_eq!(a.iter().filter(|&&i| labels[i] == 1).count(), 1);
        assert_eq!(a.len(), 5);
    }

    #[test]
    fn shards_partition_the_samples() {
        let samples = uniform(1000, 37, 3);
        assert_eq!(samples.len(), 37);
        let mut joined: Vec<usize> = (0..4)
            .flat_map(|index| shard(&samples, Some(Shard { index, count: 4 })))
            .collect();
        joined.sort_unstable();
        assert_eq!(joined, samples);
    }
}
