//! Correlation statistics with exact p-values, confidence intervals and
//! multiple-testing control (METHOD.md section 7).
//!
//! Every test reports `n`, the number of pairs actually used, and `excluded`,
//! the number of pairs dropped because one of their values was not finite
//! (`inf`/`NaN`, e.g. an infinite stiffness index). A statistic that cannot be
//! computed (n < 3 after exclusion, zero variance, mismatched lengths) is never
//! reported as a number: the functions return [`NotComputable`] with a
//! human-readable reason instead, and never panic.
//!
//! Conventions (all match SciPy):
//!
//! * Pearson r: `r = Σ(x-x̄)(y-ȳ) / sqrt(Σ(x-x̄)² Σ(y-ȳ)²)`, clipped to [-1, 1].
//! * Two-sided p-value: under H0 (bivariate normal, ρ = 0),
//!   `t = r sqrt((n-2)/(1-r²))` follows Student t with `ν = n-2` degrees of
//!   freedom; `p = P(|T| ≥ |t|) = I_{1-r²}(ν/2, 1/2)` (regularised incomplete
//!   beta function). This equals `scipy.stats.pearsonr`, which evaluates the
//!   same quantity as `2·sf` of a Beta(ν/2, ν/2) on [-1, 1] at |r|.
//!   `|r| = 1` gives `p = 0` exactly.
//! * Fisher-z interval at confidence level `L`: `z = atanh r`,
//!   `se = 1/sqrt(n-3)`, `[tanh(z - h·se), tanh(z + h·se)]` with
//!   `h = Φ⁻¹((1+L)/2)` (1.959963984540054 for L = 0.95). For `n = 3` the
//!   interval is `[-1, 1]`; for `|r| = 1` (n > 3) it collapses to `[r, r]`
//!   (`atanh(±1) = ±inf`). Same as `scipy.stats.pearsonr(...).confidence_interval()`.
//! * Spearman rho: Pearson r of the average ranks (ties share the mean of the
//!   ranks they span). p-value: for n ≤ [`SPEARMAN_EXACT_MAX_N`] without
//!   ties, the exact permutation p-value (the share of the n! pairings with
//!   |ρ| at least the observed one, as R's `cor.test(method = "spearman")`
//!   and `scipy.stats.permutation_test` with all pairings); otherwise the
//!   same t statistic with `n-2` df, as `scipy.stats.spearmanr` reports.
//!   The t approximation is poor for few points (it gives p = 0 for |ρ| = 1
//!   at any n, where the exact value is 2/n!).
//! * Point-biserial: Pearson r against a 0/1 variable (`scipy.stats.pointbiserialr`).
//! * Partial Pearson r given one control variable z: the Pearson r of the
//!   residuals of x and y after their least-squares lines on z, which is
//!   `(r_xy - r_xz r_yz) / sqrt((1 - r_xz²)(1 - r_yz²))`; p from the same
//!   t statistic with `n-3` df, Fisher-z interval with `se = 1/sqrt(n-4)`
//!   (`pingouin.partial_corr`, R's `ppcor::pcor.test`).

#![deny(missing_docs)]

use serde::{Deserialize, Serialize};
use statrs::function::erf::erfc_inv;
use statrs::function::gamma::ln_gamma;
use std::fmt;
use std::sync::OnceLock;

/// Confidence level used by the functions without a `_with_level` suffix.
pub const DEFAULT_LEVEL: f64 = 0.95;

/// Which correlation coefficient a [`Correlation`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Pearson product-moment correlation.
    Pearson,
    /// Spearman rank correlation (Pearson on average ranks).
    Spearman,
    /// Point-biserial correlation (Pearson against a 0/1 variable).
    PointBiserial,
    /// Partial Pearson correlation given one control variable.
    PartialPearson,
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Method::Pearson => "Pearson r",
            Method::Spearman => "Spearman rho",
            Method::PointBiserial => "point-biserial r",
            Method::PartialPearson => "partial Pearson r",
        })
    }
}

/// A computed correlation test.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Correlation {
    /// Which coefficient `r` is.
    pub method: Method,
    /// Number of pairs used (after excluding non-finite pairs); always ≥ 3.
    pub n: usize,
    /// The correlation coefficient, in [-1, 1].
    pub r: f64,
    /// Two-sided p-value: `I_{1-r²}((n-2)/2, 1/2)` (Student t, n-2 df), or
    /// for Spearman with few untied pairs the exact permutation p-value (see
    /// the crate docs).
    pub p: f64,
    /// Lower end of the Fisher-z interval (see crate docs). For Spearman the
    /// Fisher-z interval with `se = 1/sqrt(n-3)` is an approximation.
    pub ci_low: f64,
    /// Upper end of the Fisher-z interval.
    pub ci_high: f64,
    /// Confidence level of `[ci_low, ci_high]`, e.g. 0.95.
    pub level: f64,
    /// Number of pairs dropped because a value was `inf` or `NaN`.
    pub excluded: usize,
}

/// Why a statistic could not be computed. Carries the sample size that was
/// left, the number of excluded non-finite values, and a readable reason
/// such as `"n = 2 < 3 after excluding 1 pair with inf/NaN"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotComputable {
    /// Number of usable pairs (values) after exclusion.
    pub n: usize,
    /// Number of pairs (values) dropped because of `inf`/`NaN`.
    pub excluded: usize,
    /// Human-readable explanation.
    pub reason: String,
}

impl fmt::Display for NotComputable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for NotComputable {}

impl NotComputable {
    fn new(n: usize, excluded: usize, reason: impl Into<String>) -> Self {
        Self {
            n,
            excluded,
            reason: reason.into(),
        }
    }
}

fn plural(k: usize, one: &str, many: &str) -> String {
    format!("{k} {}", if k == 1 { one } else { many })
}

fn check_level(level: f64, n: usize, excluded: usize) -> Result<(), NotComputable> {
    if level.is_finite() && level > 0.0 && level < 1.0 {
        Ok(())
    } else {
        Err(NotComputable::new(
            n,
            excluded,
            format!("confidence level {level} is not in (0, 1)"),
        ))
    }
}

/// Keeps the pairs where both values are finite; returns them and the count of
/// dropped pairs.
fn finite_pairs(x: &[f64], y: &[f64]) -> Result<(Vec<f64>, Vec<f64>, usize), NotComputable> {
    let ([xs, ys], excluded) = finite_rows([x, y])?;
    Ok((xs, ys, excluded))
}

/// The rows (i-th values of every column) whose values are all finite, as
/// columns, and the number of rows dropped. Not computable when the
/// columns differ in length.
fn finite_rows<const K: usize>(
    columns: [&[f64]; K],
) -> Result<([Vec<f64>; K], usize), NotComputable> {
    const NAMES: [&str; 3] = ["x", "y", "z"];
    let len = columns[0].len();
    if let Some(k) = columns.iter().position(|c| c.len() != len) {
        return Err(NotComputable::new(
            0,
            0,
            format!(
                "x has {len} values but {} has {}",
                NAMES.get(k).unwrap_or(&"a column"),
                columns[k].len()
            ),
        ));
    }
    let kept: Vec<usize> = (0..len)
        .filter(|&i| columns.iter().all(|c| c[i].is_finite()))
        .collect();
    let cols = columns.map(|c| kept.iter().map(|&i| c[i]).collect());
    Ok((cols, len - kept.len()))
}

fn require_n(n: usize, min: usize, excluded: usize, what: &str) -> Result<(), NotComputable> {
    if n >= min {
        return Ok(());
    }
    let mut reason = format!("n = {n} < {min}");
    if excluded > 0 {
        reason.push_str(&format!(
            " after excluding {} with inf/NaN",
            plural(excluded, what, &format!("{what}s"))
        ));
    }
    Err(NotComputable::new(n, excluded, reason))
}

fn is_constant(v: &[f64]) -> bool {
    v.iter().all(|&a| a == v[0])
}

/// Pearson core on finite data of equal length n ≥ 3 (two-pass, centred sums).
/// Returns r clipped to [-1, 1]; errors on zero variance.
fn pearson_core(
    x: &[f64],
    y: &[f64],
    excluded: usize,
    xname: &str,
    yname: &str,
) -> Result<f64, NotComputable> {
    let n = x.len();
    for (v, name) in [(x, xname), (y, yname)] {
        if is_constant(v) {
            return Err(NotComputable::new(
                n,
                excluded,
                format!("{name} has zero variance"),
            ));
        }
    }
    let mx = x.iter().sum::<f64>() / n as f64;
    let my = y.iter().sum::<f64>() / n as f64;
    let (mut sxx, mut syy, mut sxy) = (0.0, 0.0, 0.0);
    for (&a, &b) in x.iter().zip(y) {
        let (dx, dy) = (a - mx, b - my);
        sxx += dx * dx;
        syy += dy * dy;
        sxy += dx * dy;
    }
    if sxx <= 0.0 || syy <= 0.0 {
        let name = if sxx <= 0.0 { xname } else { yname };
        return Err(NotComputable::new(
            n,
            excluded,
            format!("{name} has zero variance"),
        ));
    }
    // sqrt of the product is exact for e.g. y = c·x; fall back to the product
    // of square roots if the product over- or underflows.
    let prod = sxx * syy;
    let denom = if prod.is_normal() {
        prod.sqrt()
    } else {
        sxx.sqrt() * syy.sqrt()
    };
    Ok((sxy / denom).clamp(-1.0, 1.0))
}

fn finish(method: Method, r: f64, n: usize, level: f64, excluded: usize) -> Correlation {
    let (ci_low, ci_high) = fisher_interval(r, n, level);
    Correlation {
        method,
        n,
        r,
        p: correlation_p_value(r, n),
        ci_low,
        ci_high,
        level,
        excluded,
    }
}

/// Pearson correlation of paired samples with the exact two-sided p-value and
/// the 95% Fisher-z interval (see crate docs for the formulas).
///
/// Pairs with a non-finite value are dropped and counted in `excluded`.
/// Not computable if `x.len() != y.len()`, n < 3 after exclusion, or either
/// variable has zero variance (all values equal).
pub fn pearson(x: &[f64], y: &[f64]) -> Result<Correlation, NotComputable> {
    pearson_with_level(x, y, DEFAULT_LEVEL)
}

/// [`pearson`] with a Fisher-z interval at confidence `level` ∈ (0, 1).
pub fn pearson_with_level(x: &[f64], y: &[f64], level: f64) -> Result<Correlation, NotComputable> {
    let (xs, ys, excluded) = finite_pairs(x, y)?;
    let n = xs.len();
    require_n(n, 3, excluded, "pair")?;
    check_level(level, n, excluded)?;
    let r = pearson_core(&xs, &ys, excluded, "x", "y")?;
    Ok(finish(Method::Pearson, r, n, level, excluded))
}

/// Partial Pearson correlation of x and y given the control z: Pearson r of
/// the residuals `x - x̂(z)` and `y - ŷ(z)` of their least-squares lines on
/// z, which equals `(r_xy - r_xz r_yz) / sqrt((1 - r_xz²)(1 - r_yz²))`.
/// Under H0 (no linear association left once z is accounted for)
/// `t = r sqrt((n-3)/(1-r²))` is Student t with n-3 df; the interval is
/// Fisher-z with `se = 1/sqrt(n-4)`, as `pingouin.partial_corr`.
///
/// Triples with a non-finite value are dropped and counted in `excluded`.
/// Not computable if the lengths differ, n < 4 after exclusion, a variable
/// has zero variance, or x or y is (to 1e-12 of its variance) a linear
/// function of z, when nothing is left to correlate.
pub fn partial_pearson(x: &[f64], y: &[f64], z: &[f64]) -> Result<Correlation, NotComputable> {
    partial_pearson_with_level(x, y, z, DEFAULT_LEVEL)
}

/// [`partial_pearson`] with a Fisher-z interval at confidence `level` ∈ (0, 1).
pub fn partial_pearson_with_level(
    x: &[f64],
    y: &[f64],
    z: &[f64],
    level: f64,
) -> Result<Correlation, NotComputable> {
    let ([xs, ys, zs], excluded) = finite_rows([x, y, z])?;
    let n = xs.len();
    require_n(n, 4, excluded, "triple")?;
    check_level(level, n, excluded)?;
    let ex = residuals(&xs, &zs, "x", excluded)?;
    let ey = residuals(&ys, &zs, "y", excluded)?;
    let r = pearson_core(&ex, &ey, excluded, "x given z", "y given z")?;
    let (ci_low, ci_high) = fisher_interval(r, n - 1, level);
    Ok(Correlation {
        method: Method::PartialPearson,
        n,
        r,
        p: correlation_p_value(r, n - 1),
        ci_low,
        ci_high,
        level,
        excluded,
    })
}

/// The residuals of v after its least-squares line on z (both finite, same
/// length): `(v - v̄) - b (z - z̄)`, `b = S_vz / S_zz`. Not computable when z
/// or v is constant, or v is a linear function of z (residual sum of
/// squares at most 1e-12 of `S_vv`).
fn residuals(v: &[f64], z: &[f64], name: &str, excluded: usize) -> Result<Vec<f64>, NotComputable> {
    let n = v.len();
    for (w, name) in [(z, "z"), (v, name)] {
        if is_constant(w) {
            return Err(NotComputable::new(
                n,
                excluded,
                format!("{name} has zero variance"),
            ));
        }
    }
    let mean = |w: &[f64]| w.iter().sum::<f64>() / n as f64;
    let (mv, mz) = (mean(v), mean(z));
    let (svz, szz, svv) = v
        .iter()
        .zip(z)
        .fold((0.0, 0.0, 0.0), |(vz, zz, vv), (&a, &b)| {
            let (da, db) = (a - mv, b - mz);
            (vz + da * db, zz + db * db, vv + da * da)
        });
    let slope = svz / szz;
    let e: Vec<f64> = v
        .iter()
        .zip(z)
        .map(|(&a, &b)| (a - mv) - slope * (b - mz))
        .collect();
    if e.iter().map(|d| d * d).sum::<f64>() <= 1e-12 * svv {
        return Err(NotComputable::new(
            n,
            excluded,
            format!("{name} is a linear function of the control z"),
        ));
    }
    Ok(e)
}

/// Spearman rank correlation: Pearson r of the average ranks
/// ([`average_ranks`]) of x and y, computed after dropping non-finite pairs.
/// The p-value is exact ([`spearman_exact_p`]) for n ≤
/// [`SPEARMAN_EXACT_MAX_N`] pairs without ties; otherwise the two-sided
/// Student-t value with n-2 df, `t = ρ sqrt((n-2)/((1+ρ)(1-ρ)))`, exactly
/// as `scipy.stats.spearmanr`. The interval is the Fisher-z interval of ρ
/// with `se = 1/sqrt(n-3)` (an approximation for ranks). Zero variance
/// means all values tied.
pub fn spearman(x: &[f64], y: &[f64]) -> Result<Correlation, NotComputable> {
    spearman_with_level(x, y, DEFAULT_LEVEL)
}

/// [`spearman`] with the interval at confidence `level` ∈ (0, 1).
pub fn spearman_with_level(x: &[f64], y: &[f64], level: f64) -> Result<Correlation, NotComputable> {
    let (xs, ys, excluded) = finite_pairs(x, y)?;
    let n = xs.len();
    require_n(n, 3, excluded, "pair")?;
    check_level(level, n, excluded)?;
    for (v, name) in [(&xs, "x"), (&ys, "y")] {
        if is_constant(v) {
            return Err(NotComputable::new(
                n,
                excluded,
                format!("{name} has zero variance (all values tied)"),
            ));
        }
    }
    let (rx, ry) = (average_ranks(&xs), average_ranks(&ys));
    let r = pearson_core(&rx, &ry, excluded, "x", "y")?;
    let mut c = finish(Method::Spearman, r, n, level, excluded);
    if let Some(p) = spearman_exact_p(&rx, &ry) {
        c.p = p;
    }
    Ok(c)
}

/// Largest number of pairs for which [`spearman`] reports the exact
/// permutation p-value (12! = 479,001,600 pairings, counted in a table of
/// 2^12 x 573 entries, built once).
pub const SPEARMAN_EXACT_MAX_N: usize = 12;

/// Exact two-sided permutation p-value of Spearman's ρ from the ranks `rx`,
/// `ry` (1..=n, no ties): with `S = Σ (rx_i - ry_i)²`, ρ = 1 - 6S/(n³-n), so
/// `p = #{π : |S(π) - μ| ≥ |S_obs - μ|} / n!` over the n! pairings π, where
/// μ = (n³-n)/6 is the mean of S. `None` if n < 3, n >
/// [`SPEARMAN_EXACT_MAX_N`], the lengths differ, or a rank is not a whole
/// number in 1..=n used once (ties).
pub fn spearman_exact_p(rx: &[f64], ry: &[f64]) -> Option<f64> {
    let n = rx.len();
    if !(3..=SPEARMAN_EXACT_MAX_N).contains(&n) || ry.len() != n {
        return None;
    }
    let (ix, iy) = (untied_ranks(rx)?, untied_ranks(ry)?);
    let s_obs: usize = ix
        .iter()
        .zip(&iy)
        .map(|(&a, &b)| a.abs_diff(b).pow(2))
        .sum();
    let counts = rank_distance_counts(n);
    // S runs over 0..=2μ; |S - μ| ≥ |S_obs - μ| in integers, doubled.
    let two_mu = counts.len() - 1;
    let deviation = |s: usize| (2 * s).abs_diff(two_mu);
    let hits: u64 = counts
        .iter()
        .enumerate()
        .filter(|&(s, _)| deviation(s) >= deviation(s_obs))
        .map(|(_, &c)| c)
        .sum();
    let total: u64 = counts.iter().sum();
    Some(hits as f64 / total as f64)
}

/// Ranks 1..=n as 0-based integers, or `None` unless they are a
/// permutation of 1..=n (no ties).
fn untied_ranks(ranks: &[f64]) -> Option<Vec<usize>> {
    let mut seen = vec![false; ranks.len()];
    let mut out = Vec::with_capacity(ranks.len());
    for &r in ranks {
        if r.fract() != 0.0 || r < 1.0 || r > ranks.len() as f64 {
            return None;
        }
        let i = r as usize - 1;
        if std::mem::replace(&mut seen[i], true) {
            return None;
        }
        out.push(i);
    }
    Some(out)
}

/// `counts[s]` = the number of permutations π of 0..n with
/// `Σ_i (i - π(i))² = s`, for s = 0..=(n³-n)/3; cached per n.
fn rank_distance_counts(n: usize) -> &'static [u64] {
    static TABLES: [OnceLock<Vec<u64>>; SPEARMAN_EXACT_MAX_N + 1] =
        [const { OnceLock::new() }; SPEARMAN_EXACT_MAX_N + 1];
    TABLES[n].get_or_init(|| count_rank_distances(n))
}

/// Dynamic programme over the set of values used so far: position i =
/// |used| takes an unused value j and adds (i - j)² to S. `table[used][s]`
/// counts the partial permutations of `used` with partial sum s.
fn count_rank_distances(n: usize) -> Vec<u64> {
    let width = (n * n * n - n) / 3 + 1;
    let mut table = vec![0u64; (1 << n) * width];
    table[0] = 1;
    for used in 0..(1usize << n) {
        let i = used.count_ones() as usize;
        let (head, tail) = table.split_at_mut((used + 1) * width);
        let from = &head[used * width..];
        for j in (0..n).filter(|j| used & (1 << j) == 0) {
            let next = used | (1 << j);
            let step = i.abs_diff(j).pow(2);
            let to = &mut tail[(next - used - 1) * width..][..width];
            for (s, &c) in from[..width - step].iter().enumerate() {
                to[s + step] += c;
            }
        }
    }
    table.split_off(((1 << n) - 1) * width)
}

/// Spearman trend test of a metric against its position: ρ between
/// `values[i]` and `i` (i = 0, 1, …; e.g. block index). Non-finite values are
/// dropped (counted in `excluded`) and the remaining ones keep their original
/// index.
pub fn spearman_trend(values: &[f64]) -> Result<Correlation, NotComputable> {
    let index: Vec<f64> = (0..values.len()).map(|i| i as f64).collect();
    spearman(&index, values)
}

/// Point-biserial correlation between a binary variable (`group[i]` is 1 when
/// true, 0 when false; e.g. "sample classified correctly") and `y`: Pearson r
/// against 0/1, with Pearson's p-value and interval, as
/// `scipy.stats.pointbiserialr`. Positive r means larger y in the `true`
/// group. Pairs with non-finite `y` are dropped and counted. Not computable
/// if one of the groups is empty or y has zero variance.
pub fn point_biserial(group: &[bool], y: &[f64]) -> Result<Correlation, NotComputable> {
    point_biserial_with_level(group, y, DEFAULT_LEVEL)
}

/// [`point_biserial`] with the interval at confidence `level` ∈ (0, 1).
pub fn point_biserial_with_level(
    group: &[bool],
    y: &[f64],
    level: f64,
) -> Result<Correlation, NotComputable> {
    let g: Vec<f64> = group.iter().map(|&b| if b { 1.0 } else { 0.0 }).collect();
    let (gs, ys, excluded) = finite_pairs(&g, y)?;
    let n = gs.len();
    require_n(n, 3, excluded, "pair")?;
    check_level(level, n, excluded)?;
    if is_constant(&gs) {
        let which = if gs[0] == 1.0 { "true" } else { "false" };
        return Err(NotComputable::new(
            n,
            excluded,
            format!("group has zero variance (all {n} samples are {which})"),
        ));
    }
    let r = pearson_core(&gs, &ys, excluded, "group", "y")?;
    Ok(finish(Method::PointBiserial, r, n, level, excluded))
}

/// Average (fractional) ranks, 1-based: the k-th smallest value gets rank k,
/// and a run of tied values spanning ranks i..=j gets (i+j)/2 each
/// (`scipy.stats.rankdata(method='average')`). Values should be finite
/// (NaN sorts last under `f64::total_cmp`).
pub fn average_ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; values.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && values[order[j + 1]] == values[order[i]] {
            j += 1;
        }
        // positions i..=j (0-based) hold ranks i+1..=j+1
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            ranks[k] = avg;
        }
        i = j + 1;
    }
    ranks
}

/// Exact two-sided p-value of a correlation coefficient r from n pairs under
/// H0 ρ = 0: `p = P(|T_{n-2}| ≥ |r| sqrt((n-2)/(1-r²))) = I_{1-r²}((n-2)/2, 1/2)`.
/// Returns 0 for |r| = 1 and NaN for n < 3 or r outside [-1, 1] / NaN.
pub fn correlation_p_value(r: f64, n: usize) -> f64 {
    if n < 3 || r.is_nan() || r.abs() > 1.0 {
        return f64::NAN;
    }
    let a = r.abs();
    if a == 1.0 {
        return 0.0;
    }
    let df = (n - 2) as f64;
    let one_minus_r2 = (1.0 - a) * (1.0 + a);
    two_sided_p_from_beta(df, one_minus_r2, a * a)
}

/// Two-sided Student-t p-value `P(|T_ν| ≥ |t|)` = `I_{ν/(ν+t²)}(ν/2, 1/2)`.
/// Returns NaN for ν ≤ 0 or NaN t; 0 for infinite t.
pub fn t_two_sided_p(t: f64, df: f64) -> f64 {
    if t.is_nan() || df.is_nan() || df <= 0.0 {
        return f64::NAN;
    }
    if t.is_infinite() {
        return 0.0;
    }
    let t2 = t * t;
    two_sided_p_from_beta(df, df / (df + t2), t2 / (df + t2))
}

/// `I_x(ν/2, 1/2)` where `x + y = 1`, evaluated on whichever side converges
/// directly (no cancellation for tiny p).
fn two_sided_p_from_beta(df: f64, x: f64, y: f64) -> f64 {
    let a = df / 2.0;
    let b = 0.5;
    if x < (a + 1.0) / (a + b + 2.0) {
        beta_reg_cf(a, b, x, y)
    } else {
        1.0 - beta_reg_cf(b, a, y, x)
    }
}

/// Regularised incomplete beta `I_x(a, b)` by its continued fraction
/// (modified Lentz), valid and fast for `x < (a+1)/(a+b+2)`; `y = 1 - x`
/// supplied separately to keep precision.
fn beta_reg_cf(a: f64, b: f64, x: f64, y: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if y <= 0.0 {
        return 1.0;
    }
    const EPS: f64 = 1e-16;
    const TINY: f64 = 1e-300;
    // ln x and ln y through ln_1p of the smaller one (x + y = 1).
    let (ln_x, ln_y) = if x < y {
        (x.ln(), (-x).ln_1p())
    } else {
        ((-y).ln_1p(), y.ln())
    };
    let ln_front = a * ln_x + b * ln_y - ln_beta(a, b);
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 - qab * x / qap;
    if d.abs() < TINY {
        d = TINY;
    }
    d = 1.0 / d;
    let mut h = d;
    for m in 1..100_000 {
        let m = f64::from(m);
        let m2 = 2.0 * m;
        for aa in [
            m * (b - m) * x / ((qam + m2) * (a + m2)),
            -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2)),
        ] {
            d = 1.0 + aa * d;
            if d.abs() < TINY {
                d = TINY;
            }
            c = 1.0 + aa / c;
            if c.abs() < TINY {
                c = TINY;
            }
            d = 1.0 / d;
            h *= d * c;
        }
        if (d * c - 1.0).abs() <= EPS {
            break;
        }
    }
    (ln_front.exp() * h / a).clamp(0.0, 1.0)
}

/// `ln Γ(z) - [(z - 1/2) ln z - z + ln(2π)/2]`, the Stirling remainder, by its
/// asymptotic series (Bernoulli numbers); accurate to < 1e-17 for z ≥ 15.
fn stirling_remainder(z: f64) -> f64 {
    const C: [f64; 8] = [
        1.0 / 12.0,
        -1.0 / 360.0,
        1.0 / 1260.0,
        -1.0 / 1680.0,
        1.0 / 1188.0,
        -691.0 / 360_360.0,
        1.0 / 156.0,
        -3617.0 / 122_400.0,
    ];
    let w = 1.0 / (z * z);
    C.iter().rev().fold(0.0, |acc, &c| acc * w + c) / z
}

/// `ln Γ(a + b) - ln Γ(a)` without cancellation for large a:
/// `(a - 1/2) ln(1 + b/a) + b ln(a + b) - b + δ(a + b) - δ(a)` with δ the
/// Stirling remainder.
fn ln_gamma_ratio(a: f64, b: f64) -> f64 {
    if a >= 15.0 && a + b >= 15.0 {
        (a - 0.5) * (b / a).ln_1p() + b * (a + b).ln() - b + stirling_remainder(a + b)
            - stirling_remainder(a)
    } else {
        ln_gamma(a + b) - ln_gamma(a)
    }
}

/// `ln B(a, b) = ln Γ(a) + ln Γ(b) - ln Γ(a + b)`.
fn ln_beta(a: f64, b: f64) -> f64 {
    let (small, large) = if a < b { (a, b) } else { (b, a) };
    ln_gamma(small) - ln_gamma_ratio(large, small)
}

/// Standard-normal quantile `Φ⁻¹(q) = -sqrt(2) erfc⁻¹(2q)`.
fn normal_quantile(q: f64) -> f64 {
    -std::f64::consts::SQRT_2 * erfc_inv(2.0 * q)
}

/// Fisher-z confidence interval for a correlation r from n pairs at
/// confidence `level`: `tanh(atanh r ∓ Φ⁻¹((1+level)/2) / sqrt(n-3))`.
/// Returns `(-1, 1)` for n ≤ 3 (as SciPy) and `(r, r)` for |r| = 1 with n > 3.
pub fn fisher_interval(r: f64, n: usize, level: f64) -> (f64, f64) {
    if n <= 3 {
        return (-1.0, 1.0);
    }
    if r.abs() >= 1.0 {
        return (r, r);
    }
    let z = r.atanh();
    let h = normal_quantile(0.5 + level / 2.0) / ((n - 3) as f64).sqrt();
    ((z - h).tanh(), (z + h).tanh())
}

/// Two-sided Student-t critical value `t*` with `P(|T_ν| ≥ t*) = alpha`
/// (i.e. `scipy.stats.t.ppf(1 - alpha/2, ν)`), alpha ∈ (0, 1), ν > 0.
/// Solved by bisection on [`t_two_sided_p`] then Newton polishing to full
/// double precision. Returns NaN for invalid arguments.
pub fn t_critical(alpha: f64, df: f64) -> f64 {
    if !(alpha > 0.0 && alpha < 1.0 && df > 0.0 && df.is_finite()) {
        return f64::NAN;
    }
    // Bracket: p(t) decreases from 1 at t = 0.
    let (mut lo, mut hi) = (0.0_f64, 1.0_f64);
    while t_two_sided_p(hi, df) > alpha {
        lo = hi;
        hi *= 2.0;
        if hi > 1e300 {
            return f64::INFINITY;
        }
    }
    for _ in 0..60 {
        let mid = 0.5 * (lo + hi);
        if t_two_sided_p(mid, df) > alpha {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo <= 1e-6 * hi {
            break;
        }
    }
    // Newton on p(t) - alpha, dp/dt = -2 f(t) with f the t density.
    let ln_norm = ln_gamma_ratio(df / 2.0, 0.5) - 0.5 * (df * std::f64::consts::PI).ln();
    let mut t = 0.5 * (lo + hi);
    for _ in 0..8 {
        let f = (ln_norm - (df + 1.0) / 2.0 * (t * t / df).ln_1p()).exp();
        let step = (t_two_sided_p(t, df) - alpha) / (2.0 * f);
        if !step.is_finite() {
            break;
        }
        t += step;
        if step.abs() <= 1e-15 * t.abs() {
            break;
        }
    }
    t
}

/// Smallest |r| that reaches two-sided significance `alpha` with n pairs:
/// `r* = t* / sqrt(n - 2 + t*²)` with `t*` = [`t_critical`]`(alpha, n-2)`.
/// For n = 10, alpha = 0.05: r* = 0.6319 (METHOD.md: "|r| must exceed 0.632").
/// NaN for n < 3.
pub fn critical_r(n: usize, alpha: f64) -> f64 {
    if n < 3 {
        return f64::NAN;
    }
    let df = (n - 2) as f64;
    let t = t_critical(alpha, df);
    t / (df + t * t).sqrt()
}

/// Benjamini-Hochberg adjusted p-values (q-values) for one family of tests.
///
/// Entries that are `None`, non-finite or outside [0, 1] are not tests: they
/// get `None` and do not count towards m. With the m valid p-values sorted
/// ascending, `p_(1) ≤ … ≤ p_(m)` (stable sort, so ties keep their order):
/// `q_(i) = min_{j ≥ i} min(1, p_(j) · m / j)`, then mapped back to the input
/// positions. Tied p-values get equal q. The result is monotone in p and
/// capped at 1; identical to `scipy.stats.false_discovery_control(p,
/// method='bh')` and statsmodels `multipletests(p, method='fdr_bh')` on the
/// valid entries.
pub fn benjamini_hochberg(p: &[Option<f64>]) -> Vec<Option<f64>> {
    let mut valid: Vec<(usize, f64)> = p
        .iter()
        .enumerate()
        .filter_map(|(i, v)| match v {
            Some(x) if x.is_finite() && (0.0..=1.0).contains(x) => Some((i, *x)),
            _ => None,
        })
        .collect();
    valid.sort_by(|a, b| a.1.total_cmp(&b.1));
    let m = valid.len();
    let mut out = vec![None; p.len()];
    let mut running = f64::INFINITY;
    for (rank, &(idx, pv)) in valid.iter().enumerate().rev() {
        let adj = pv * (m as f64 / (rank + 1) as f64);
        running = running.min(adj);
        out[idx] = Some(running.clamp(0.0, 1.0));
    }
    out
}

/// Descriptive summary of one sample (e.g. a stiffness metric over the
/// analysed samples of one label).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Number of finite values used.
    pub n: usize,
    /// Number of values dropped because they were `inf`/`NaN`.
    pub excluded: usize,
    /// Arithmetic mean `x̄ = Σx / n`.
    pub mean: f64,
    /// Median (mean of the two middle values for even n).
    pub median: f64,
    /// Sample standard deviation with Bessel's correction (ddof = 1):
    /// `s = sqrt(Σ(x-x̄)² / (n-1))`; `None` for n = 1.
    pub std: Option<f64>,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// Confidence level of the interval for the mean, e.g. 0.95.
    pub level: f64,
    /// Lower end of the t-interval for the mean,
    /// `x̄ - t*_{n-1} s/sqrt(n)` with `t*` = [`t_critical`]`(1-level, n-1)`;
    /// `None` for n = 1. Equals x̄ when s = 0.
    pub ci_low: Option<f64>,
    /// Upper end of the t-interval for the mean, `x̄ + t*_{n-1} s/sqrt(n)`.
    pub ci_high: Option<f64>,
}

/// [`Summary`] of the finite values in `values` with a 95% t-interval for the
/// mean. Not computable if no finite value remains.
pub fn summarize(values: &[f64]) -> Result<Summary, NotComputable> {
    summarize_with_level(values, DEFAULT_LEVEL)
}

/// [`summarize`] with the mean's interval at confidence `level` ∈ (0, 1).
pub fn summarize_with_level(values: &[f64], level: f64) -> Result<Summary, NotComputable> {
    let mut v: Vec<f64> = values.iter().copied().filter(|a| a.is_finite()).collect();
    let excluded = values.len() - v.len();
    let n = v.len();
    require_n(n, 1, excluded, "value")?;
    check_level(level, n, excluded)?;
    v.sort_by(f64::total_cmp);
    let mean = v.iter().sum::<f64>() / n as f64;
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    };
    let (std, ci_low, ci_high) = if n >= 2 {
        let ss: f64 = v.iter().map(|a| (a - mean) * (a - mean)).sum();
        let s = (ss / (n - 1) as f64).sqrt();
        let half = t_critical(1.0 - level, (n - 1) as f64) * s / (n as f64).sqrt();
        (Some(s), Some(mean - half), Some(mean + half))
    } else {
        (None, None, None)
    };
    Ok(Summary {
        n,
        excluded,
        mean,
        median,
        std,
        min: v[0],
        max: v[n - 1],
        level,
        ci_low,
        ci_high,
    })
}
