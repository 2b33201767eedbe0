//! Reference values computed with SciPy 1.17.1 / NumPy 2.4 (inputs and
//! outputs written here as literals; the tests need no Python).
#![allow(clippy::excessive_precision)]

use stiffness_stats::*;

/// |a - b| <= abs + rel * |b|
fn close(a: f64, b: f64, rel: f64, abs: f64) -> bool {
    (a - b).abs() <= abs + rel * b.abs()
}

#[track_caller]
fn assert_close(what: &str, got: f64, want: f64, rel: f64, abs: f64) {
    assert!(
        close(got, want, rel, abs),
        "{what}: got {got:e}, want {want:e} (diff {:e})",
        got - want
    );
}

#[track_caller]
fn check(c: &Correlation, n: usize, r: f64, p: f64, ci: Option<(f64, f64)>) {
    assert_eq!(c.n, n);
    assert_close("r", c.r, r, 1e-10, 0.0);
    assert_close("p", c.p, p, 1e-10, 1e-15);
    if let Some((lo, hi)) = ci {
        assert_close("ci_low", c.ci_low, lo, 1e-10, 1e-14);
        assert_close("ci_high", c.ci_high, hi, 1e-10, 1e-14);
    }
}

// GENERIC: scipy.stats.pearsonr
const GENERIC_X: [f64; 10] = [1.2, 2.4, 3.1, 4.8, 5.0, 6.3, 7.7, 8.1, 9.6, 10.2];
const GENERIC_Y: [f64; 10] = [2.3, 1.9, 4.4, 3.8, 6.1, 5.2, 7.9, 6.6, 9.4, 8.8];
const GENERIC_R: f64 = 0.9408620005775492;
const GENERIC_P: f64 = 4.980651399620001e-05;
const GENERIC_CI: (f64, f64) = (0.7635652105008814, 0.9862451161189483);

// GENERIC_SP: rho from scipy.stats.spearmanr; p exact: the share of all
// 10! pairings of the ranks (scipy.stats.rankdata) with |rho| >= the observed
// one, enumerated in numpy (746 of 3,628,800); spearmanr's t approximation
// gives 5.48e-5.
const GENERIC_SP_X: [f64; 10] = [1.2, 2.4, 3.1, 4.8, 5.0, 6.3, 7.7, 8.1, 9.6, 10.2];
const GENERIC_SP_Y: [f64; 10] = [2.3, 1.9, 4.4, 3.8, 6.1, 5.2, 7.9, 6.6, 9.4, 8.8];
const GENERIC_SP_R: f64 = 0.9393939393939393;
const GENERIC_SP_P: f64 = 0.00020557760141093475;

const GENERIC_CI90: (f64, f64) = (0.8088903164841529, 0.982577771073133);

// NEG: scipy.stats.pearsonr
const NEG_X: [f64; 8] = [0.5, 1.5, 2.0, 3.5, 4.0, 5.5, 6.0, 7.25];
const NEG_Y: [f64; 8] = [3.1, 2.2, 2.9, 1.7, 2.4, 0.9, 1.8, 0.4];
const NEG_R: f64 = -0.867347357430618;
const NEG_P: f64 = 0.0052704491268227675;
const NEG_CI: (f64, f64) = (-0.9756851981102279, -0.41839722237875726);

// NEG_SP: rho from scipy.stats.spearmanr; p exact, enumerated as GENERIC_SP
// (1126 of 8! = 40,320 pairings; the t approximation gives 0.0208).
const NEG_SP_X: [f64; 8] = [0.5, 1.5, 2.0, 3.5, 4.0, 5.5, 6.0, 7.25];
const NEG_SP_Y: [f64; 8] = [3.1, 2.2, 2.9, 1.7, 2.4, 0.9, 1.8, 0.4];
const NEG_SP_R: f64 = -0.7857142857142858;
const NEG_SP_P: f64 = 0.027926587301587303;

// TIES_SP: scipy.stats.spearmanr
const TIES_SP_X: [f64; 12] = [1.0, 2.0, 2.0, 3.0, 4.0, 4.0, 4.0, 5.0, 6.0, 7.0, 7.0, 8.0];
const TIES_SP_Y: [f64; 12] = [2.0, 1.0, 3.0, 3.0, 5.0, 4.0, 6.0, 6.0, 8.0, 7.0, 9.0, 9.0];
const TIES_SP_R: f64 = 0.9556085934876797;
const TIES_SP_P: f64 = 1.2599089155461563e-06;

// N50: scipy.stats.pearsonr
const N50_X: [f64; 50] = [
    0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0,
    17.0, 18.0, 19.0, 20.0, 21.0, 22.0, 23.0, 24.0, 25.0, 26.0, 27.0, 28.0, 29.0, 30.0, 31.0, 32.0,
    33.0, 34.0, 35.0, 36.0, 37.0, 38.0, 39.0, 40.0, 41.0, 42.0, 43.0, 44.0, 45.0, 46.0, 47.0, 48.0,
    49.0,
];
const N50_Y: [f64; 50] = [
    0.0,
    3.0244129544236893,
    3.727892280477045,
    1.9233600241796016,
    -0.2704074859237844,
    -0.37677282398941525,
    2.1617535054032224,
    5.470959796156367,
    6.968074739870145,
    5.73635545572527,
    3.3679366673318905,
    2.5000293803478897,
    4.390281245998695,
    7.760501110479923,
    9.971822067084611,
    9.450863520471351,
    7.1362900500048045,
    5.61580752436133,
    6.747038259684972,
    9.949631628988858,
    12.738835752182883,
    13.009966915608167,
    10.97344607212879,
    8.961338787474489,
    9.283264913980128,
    12.102944749706682,
    15.287675351438807,
    16.369127785213507,
    14.812717364923607,
    12.509098347361098,
    12.035905127721414,
    14.287887064030805,
    17.654280043725073,
    19.4997355803218,
    18.58724805836007,
    16.215451991511546,
    15.024663439670652,
    16.569385599929003,
    19.889105736128155,
    22.391386158852264,
    22.235339481438047,
    20.024131993585872,
    18.2504353562531,
    19.004675772114204,
    22.05310577531624,
    25.052710573602354,
    25.70536504294643,
    23.870719368235672,
    21.695236016029,
    21.638742041721585,
];
const N50_R: f64 = 0.9576859860434729;
const N50_P: f64 = 1.301689907582261e-27;
const N50_CI: (f64, f64) = (0.9262479012829511, 0.9758907824131887);

// N50_SP: scipy.stats.spearmanr
const N50_SP_X: [f64; 50] = [
    0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0,
    17.0, 18.0, 19.0, 20.0, 21.0, 22.0, 23.0, 24.0, 25.0, 26.0, 27.0, 28.0, 29.0, 30.0, 31.0, 32.0,
    33.0, 34.0, 35.0, 36.0, 37.0, 38.0, 39.0, 40.0, 41.0, 42.0, 43.0, 44.0, 45.0, 46.0, 47.0, 48.0,
    49.0,
];
const N50_SP_Y: [f64; 50] = [
    0.0,
    3.0244129544236893,
    3.727892280477045,
    1.9233600241796016,
    -0.2704074859237844,
    -0.37677282398941525,
    2.1617535054032224,
    5.470959796156367,
    6.968074739870145,
    5.73635545572527,
    3.3679366673318905,
    2.5000293803478897,
    4.390281245998695,
    7.760501110479923,
    9.971822067084611,
    9.450863520471351,
    7.1362900500048045,
    5.61580752436133,
    6.747038259684972,
    9.949631628988858,
    12.738835752182883,
    13.009966915608167,
    10.97344607212879,
    8.961338787474489,
    9.283264913980128,
    12.102944749706682,
    15.287675351438807,
    16.369127785213507,
    14.812717364923607,
    12.509098347361098,
    12.035905127721414,
    14.287887064030805,
    17.654280043725073,
    19.4997355803218,
    18.58724805836007,
    16.215451991511546,
    15.024663439670652,
    16.569385599929003,
    19.889105736128155,
    22.391386158852264,
    22.235339481438047,
    20.024131993585872,
    18.2504353562531,
    19.004675772114204,
    22.05310577531624,
    25.052710573602354,
    25.70536504294643,
    23.870719368235672,
    21.695236016029,
    21.638742041721585,
];
const N50_SP_R: f64 = 0.953517406962785;
const N50_SP_P: f64 = 1.1842647914573726e-26;

// N3: scipy.stats.pearsonr
const N3_X: [f64; 3] = [1.0, 2.0, 4.0];
const N3_Y: [f64; 3] = [1.5, 1.0, 3.5];
const N3_R: f64 = 0.8660254037844386;
const N3_P: f64 = 0.33333333333333337;
const N3_CI: (f64, f64) = (-1.0, 1.0);

// N3_SP: rho from scipy.stats.spearmanr; p exact: every one of the 3! pairings
// has |rho| >= 0.5 (the t approximation gives 0.667).
const N3_SP_X: [f64; 3] = [1.0, 2.0, 4.0];
const N3_SP_Y: [f64; 3] = [1.5, 1.0, 3.5];
const N3_SP_R: f64 = 0.5;
const N3_SP_P: f64 = 1.0;

// N4: scipy.stats.pearsonr
const N4_X: [f64; 4] = [0.1, 0.7, 0.3, 0.9];
const N4_Y: [f64; 4] = [1.0, 2.5, 1.1, 1.9];
const N4_R: f64 = 0.8241785699053393;
const N4_P: f64 = 0.17582143009466078;
const N4_CI: (f64, f64) = (-0.658553972961855, 0.9961823019757873);

// scipy.stats.pointbiserialr
const PB_G: [bool; 12] = [
    true, false, true, true, false, false, true, false, true, true, false, true,
];
const PB_Y: [f64; 12] = [
    0.42, 0.91, 0.33, 0.5, 0.77, 1.2, 0.28, 0.66, 0.61, 0.39, 0.85, 0.58,
];
const PB_R: f64 = -0.825099926587929;
const PB_P: f64 = 0.000953275104541572;
const PB_CI: (f64, f64) = (-0.9494242861968912, -0.4771335269088727);

// TREND: rho from scipy.stats.spearmanr against 0..n; p exact, enumerated as
// GENERIC_SP (90 of 8! and, without index 2, 34 of 7! pairings).
const TREND_V: [f64; 8] = [0.3, 0.5, 0.45, 0.8, 0.9, 0.85, 1.4, 1.1];
const TREND_R: f64 = 0.9285714285714287;
const TREND_P: f64 = 0.002232142857142857;

const TREND_DROP2_R: f64 = 0.9285714285714288;
const TREND_DROP2_P: f64 = 0.006746031746031746;

// scipy.stats.false_discovery_control(valid, method='bh')
const BH_P: [Option<f64>; 12] = [
    Some(0.04),
    Some(0.001),
    None,
    Some(0.03),
    Some(0.04),
    Some(0.2),
    Some(0.9),
    None,
    Some(0.012),
    Some(0.04),
    Some(0.5),
    Some(0.001),
];
const BH_Q: [Option<f64>; 12] = [
    Some(0.05714285714285715),
    Some(0.005),
    None,
    Some(0.05714285714285715),
    Some(0.05714285714285715),
    Some(0.25),
    Some(0.9),
    None,
    Some(0.04),
    Some(0.05714285714285715),
    Some(0.5555555555555556),
    Some(0.005),
];

const BH2_P: [f64; 4] = [0.8, 0.95, 0.99, 0.9];
const BH2_Q: [f64; 4] = [0.99, 0.99, 0.99, 0.99];

const SUM_V: [f64; 8] = [2.5, 3.1, 0.7, 4.4, 3.1, 2.0, 5.9, 1.3];
const SUM_MEAN: f64 = 2.875;
const SUM_MEDIAN: f64 = 2.8;
const SUM_STD: f64 = 1.677370390990442;
const SUM_CI95: (f64, f64) = (1.4726832598097817, 4.277316740190218);
const SUM_CI99: (f64, f64) = (0.7996664637795621, 4.9503335362204375);

// scipy.stats.t.ppf(1 - alpha/2, df)
const T_CRIT: [(f64, f64, f64); 9] = [
    (0.05, 1.0, 12.706204736174694),
    (0.05, 2.0, 4.302652729749462),
    (0.05, 8.0, 2.306004135204166),
    (0.01, 8.0, 3.355387331333395),
    (0.05, 30.0, 2.0422724563012378),
    (0.5, 5.0, 0.7266868438004226),
    (1e-06, 3.0, 130.15458956192757),
    (0.05, 1000.0, 1.9623390808264083),
    (0.2, 0.5, 10.27032441023451),
];

// 2 * scipy.stats.t.sf(|t|, df)
const T_P: [(f64, f64, f64); 7] = [
    (0.0, 5.0, 1.0),
    (1.0, 1.0, 0.5000000000000001),
    (2.5, 3.0, 0.08770664700806556),
    (-3.7, 12.0, 0.0030357709644811513),
    (10.0, 40.0, 1.9313117004115506e-12),
    (40.0, 10.0, 2.2808577430857535e-12),
    (0.01, 200.0, 0.992031255153281),
];

// pearsonr p-value: 2 * beta(n/2-1, n/2-1, loc=-1, scale=2).sf(|r|)
const R_P: [(f64, usize, f64); 12] = [
    (0.632, 10, 0.04995111218497711),
    (0.633, 10, 0.04947874473495762),
    (0.3, 20, 0.1987577173445536),
    (-0.99, 30, 2.3040857723400385e-25),
    (0.03, 20000, 2.2022670829016617e-05),
    (0.9, 2000, 0.0),
    (0.3, 2000, 7.155650218021552e-43),
    (0.01, 50000, 0.025347318606676973),
    (0.02, 50000, 7.732072591057624e-06),
    (0.005, 200000, 0.02534731867304727),
    (1e-09, 100, 0.9999999921214687),
    (0.5, 3, 0.6666666666666666),
];

// SciPy's pearsonr p-value
const P631_N10: f64 = 0.05042647156847982;
// r = 0.999999, n = 8: I_{1-r²}(3, 1/2) from mpmath (50 digits) for the
// double nearest 0.999999. SciPy gives 2.4999981260487087e-18, 3.3e-10
// relatively off because it rounds (1+r)/2 before evaluating the beta sf.
const P_NEAR1_N8: f64 = 2.4999981252160422682e-18;

const CRIT_R10: f64 = 0.6318968647198338;

const Z975: f64 = 1.959963984540054;

#[test]
fn pearson_generic() {
    let c = pearson(&GENERIC_X, &GENERIC_Y).unwrap();
    check(&c, 10, GENERIC_R, GENERIC_P, Some(GENERIC_CI));
    assert_eq!(c.method, Method::Pearson);
    assert_eq!(c.excluded, 0);
    assert_eq!(c.level, 0.95);
    let c90 = pearson_with_level(&GENERIC_X, &GENERIC_Y, 0.90).unwrap();
    check(&c90, 10, GENERIC_R, GENERIC_P, Some(GENERIC_CI90));
}

#[test]
fn pearson_negative() {
    let c = pearson(&NEG_X, &NEG_Y).unwrap();
    check(&c, 8, NEG_R, NEG_P, Some(NEG_CI));
    assert!(c.r < 0.0 && c.ci_high < 0.0);
}

#[test]
fn pearson_tiny_p_n50() {
    let c = pearson(&N50_X, &N50_Y).unwrap();
    check(&c, 50, N50_R, N50_P, Some(N50_CI));
    // relative comparison of a p-value of order 1e-27
    assert_close("tiny p", c.p, N50_P, 1e-10, 0.0);
}

#[test]
fn pearson_n3_and_n4() {
    let c = pearson(&N3_X, &N3_Y).unwrap();
    check(&c, 3, N3_R, N3_P, Some(N3_CI));
    // n = 3: p = 1 - (2/pi) asin|r| exactly (t with 1 df)
    let closed = 1.0 - 2.0 / std::f64::consts::PI * N3_R.asin();
    assert_close("n=3 closed form", c.p, closed, 1e-13, 0.0);
    let c = pearson(&N4_X, &N4_Y).unwrap();
    check(&c, 4, N4_R, N4_P, Some(N4_CI));
    // n = 4: p = 1 - |r| exactly (t with 2 df)
    assert_close("n=4 closed form", c.p, 1.0 - N4_R, 1e-13, 0.0);
}

#[test]
fn spearman_generic_negative_ties() {
    let c = spearman(&GENERIC_SP_X, &GENERIC_SP_Y).unwrap();
    check(&c, 10, GENERIC_SP_R, GENERIC_SP_P, None);
    assert_eq!(c.method, Method::Spearman);
    let c = spearman(&NEG_SP_X, &NEG_SP_Y).unwrap();
    check(&c, 8, NEG_SP_R, NEG_SP_P, None);
    let c = spearman(&TIES_SP_X, &TIES_SP_Y).unwrap();
    check(&c, 12, TIES_SP_R, TIES_SP_P, None);
    let c = spearman(&N50_SP_X, &N50_SP_Y).unwrap();
    check(&c, 50, N50_SP_R, N50_SP_P, None);
    let c = spearman(&N3_SP_X, &N3_SP_Y).unwrap();
    check(&c, 3, N3_SP_R, N3_SP_P, Some((-1.0, 1.0)));
    // Spearman's interval is the Fisher-z interval of rho.
    let c = spearman(&GENERIC_SP_X, &GENERIC_SP_Y).unwrap();
    assert_eq!((c.ci_low, c.ci_high), fisher_interval(c.r, 10, 0.95));
}

#[test]
fn average_ranks_ties() {
    assert_eq!(
        average_ranks(&[10.0, 20.0, 20.0, 5.0, 20.0, -1.0]),
        vec![3.0, 5.0, 5.0, 2.0, 5.0, 1.0]
    );
    assert_eq!(average_ranks(&[]), Vec::<f64>::new());
    assert_eq!(average_ranks(&[7.0, 7.0]), vec![1.5, 1.5]);
}

#[test]
fn spearman_invariant_under_monotone_transform() {
    let a = spearman(&GENERIC_SP_X, &GENERIC_SP_Y).unwrap();
    let ey: Vec<f64> = GENERIC_SP_Y.iter().map(|v| v.exp()).collect();
    let b = spearman(&GENERIC_SP_X, &ey).unwrap();
    assert_eq!(a.r, b.r);
    assert_eq!(a.p, b.p);
}

#[test]
fn spearman_trend_vs_index() {
    let c = spearman_trend(&TREND_V).unwrap();
    check(&c, 8, TREND_R, TREND_P, None);
    // an infinite value at index 2 is dropped, the others keep their index
    let mut v = TREND_V;
    v[2] = f64::INFINITY;
    let c = spearman_trend(&v).unwrap();
    check(&c, 7, TREND_DROP2_R, TREND_DROP2_P, None);
    assert_eq!(c.excluded, 1);
}

#[test]
fn point_biserial_matches_scipy() {
    let c = point_biserial(&PB_G, &PB_Y).unwrap();
    check(&c, 12, PB_R, PB_P, Some(PB_CI));
    assert_eq!(c.method, Method::PointBiserial);
    // identical to Pearson against 0/1
    let g: Vec<f64> = PB_G.iter().map(|&b| b as u8 as f64).collect();
    let p = pearson(&g, &PB_Y).unwrap();
    assert_eq!(
        (p.r, p.p, p.ci_low, p.ci_high),
        (c.r, c.p, c.ci_low, c.ci_high)
    );
}

#[test]
fn perfect_correlation() {
    let x = [1.0, 2.0, 3.0, 4.0, 5.0];
    let y = [2.0, 4.0, 6.0, 8.0, 10.0];
    let c = pearson(&x, &y).unwrap();
    assert_eq!((c.r, c.p, c.ci_low, c.ci_high), (1.0, 0.0, 1.0, 1.0));
    let yn: Vec<f64> = y.iter().map(|v| -v).collect();
    let c = pearson(&x, &yn).unwrap();
    assert_eq!((c.r, c.p, c.ci_low, c.ci_high), (-1.0, 0.0, -1.0, -1.0));
    // monotone but nonlinear: Spearman exactly 1; exact p = 2/5! (the
    // identity and the reversal)
    let c = spearman(&x, &[1.0, 8.0, 27.0, 64.0, 1000.0]).unwrap();
    assert_eq!((c.r, c.ci_low, c.ci_high), (1.0, 1.0, 1.0));
    assert_close("exact p", c.p, 2.0 / 120.0, 1e-15, 0.0);
    // n = 3: interval is [-1, 1] as in SciPy
    let c = pearson(&x[..3], &y[..3]).unwrap();
    assert_eq!((c.r, c.p, c.ci_low, c.ci_high), (1.0, 0.0, -1.0, 1.0));
    assert_eq!(correlation_p_value(-1.0, 10), 0.0);
}

#[test]
fn p_value_from_r_and_n() {
    for (r, n, p) in R_P {
        let got = correlation_p_value(r, n);
        assert_close(&format!("r={r} n={n}"), got, p, 1e-10, 1e-300);
    }
    assert_close(
        "r=0.999999 n=8",
        correlation_p_value(0.999999, 8),
        P_NEAR1_N8,
        1e-13,
        0.0,
    );
    assert!(correlation_p_value(0.5, 2).is_nan());
    assert!(correlation_p_value(1.5, 10).is_nan());
    assert!(correlation_p_value(f64::NAN, 10).is_nan());
}

#[test]
fn ten_label_rule() {
    // METHOD.md: with 10 labels |r| must exceed 0.632 for p < 0.05.
    // The exact threshold is r* = 0.63190 (SciPy), so 0.632 itself is already
    // (just) significant: p(0.631) is just above 0.05, p(0.632) and p(0.633)
    // just below.
    let p631 = correlation_p_value(0.631, 10);
    let p632 = correlation_p_value(0.632, 10);
    let p633 = correlation_p_value(0.633, 10);
    assert_close("p(0.631)", p631, P631_N10, 1e-10, 0.0);
    assert!(p631 > 0.05 && p631 < 0.051, "p(0.631) = {p631}");
    assert!(p632 < 0.05 && p632 > 0.0499, "p(0.632) = {p632}");
    assert!(p633 < 0.05 && p633 > 0.049, "p(0.633) = {p633}");
    assert_eq!(correlation_p_value(-0.632, 10), p632);
    // A sample with r = 0.6318 (below r* = 0.63190) is not significant, 0.6319 is.
    assert!(correlation_p_value(0.6318, 10) > 0.05);
    assert!(correlation_p_value(0.6319, 10) < 0.05);
    let rc = critical_r(10, 0.05);
    assert_close("critical r", rc, CRIT_R10, 1e-12, 0.0);
    assert!(rc > 0.631 && rc < 0.632);
    assert_close(
        "p at critical r",
        correlation_p_value(rc, 10),
        0.05,
        1e-12,
        0.0,
    );
}

#[test]
fn t_distribution_helpers() {
    for (t, df, p) in T_P {
        assert_close(
            &format!("t={t} df={df}"),
            t_two_sided_p(t, df),
            p,
            1e-10,
            1e-15,
        );
    }
    for (alpha, df, t) in T_CRIT {
        assert_close(
            &format!("alpha={alpha} df={df}"),
            t_critical(alpha, df),
            t,
            1e-10,
            0.0,
        );
    }
    assert_eq!(t_two_sided_p(f64::INFINITY, 3.0), 0.0);
    assert!(t_two_sided_p(1.0, 0.0).is_nan());
    assert!(t_critical(0.0, 3.0).is_nan());
    assert!(t_critical(0.05, -1.0).is_nan());
}

#[test]
fn fisher_interval_constant() {
    // 95% Fisher interval uses 1.959963984540054 = ndtri(0.975)
    let (lo, hi) = fisher_interval(0.5, 28, 0.95);
    let z = 0.5_f64.atanh();
    let h = Z975 / 5.0;
    assert_close("lo", lo, (z - h).tanh(), 1e-14, 0.0);
    assert_close("hi", hi, (z + h).tanh(), 1e-14, 0.0);
    assert_eq!(fisher_interval(0.5, 3, 0.95), (-1.0, 1.0));
}

#[test]
fn benjamini_hochberg_matches_scipy() {
    let q = benjamini_hochberg(&BH_P);
    assert_eq!(q.len(), BH_P.len());
    for (i, (got, want)) in q.iter().zip(BH_Q).enumerate() {
        match (got, want) {
            (None, None) => {}
            (Some(g), Some(w)) => assert_close(&format!("q[{i}]"), *g, w, 1e-12, 0.0),
            _ => panic!("q[{i}]: got {got:?}, want {want:?}"),
        }
    }
    // ties get equal q; q is monotone in p
    assert_eq!(q[0], q[4]);
    assert_eq!(q[1], q[11]);
    let pairs: Vec<(f64, f64)> = BH_P
        .iter()
        .zip(&q)
        .filter_map(|(p, q)| Some(((*p)?, (*q)?)))
        .collect();
    for a in &pairs {
        assert!(a.1 >= a.0);
        for b in &pairs {
            if a.0 <= b.0 {
                assert!(a.1 <= b.1);
            }
        }
    }
    // capped at 1 / running minimum from the top
    let q2 = benjamini_hochberg(&BH2_P.map(Some));
    for (g, w) in q2.iter().zip(BH2_Q) {
        assert_close("q2", g.unwrap(), w, 1e-12, 0.0);
    }
    let q3 = benjamini_hochberg(&[Some(1.0), Some(1.0), Some(0.9)]);
    assert_eq!(q3, vec![Some(1.0), Some(1.0), Some(1.0)]);
    // invalid entries are ignored
    let q4 = benjamini_hochberg(&[Some(f64::NAN), Some(0.02), Some(-0.1), Some(1.5), None]);
    assert_eq!(q4, vec![None, Some(0.02), None, None, None]);
    assert!(benjamini_hochberg(&[]).is_empty());
    assert_eq!(benjamini_hochberg(&[None, None]), vec![None, None]);
}

#[test]
fn summary_matches_scipy() {
    let s = summarize(&SUM_V).unwrap();
    assert_eq!((s.n, s.excluded), (8, 0));
    assert_close("mean", s.mean, SUM_MEAN, 1e-14, 0.0);
    assert_close("median", s.median, SUM_MEDIAN, 1e-14, 0.0);
    assert_close("std", s.std.unwrap(), SUM_STD, 1e-13, 0.0);
    assert_eq!((s.min, s.max), (0.7, 5.9));
    assert_close("ci low", s.ci_low.unwrap(), SUM_CI95.0, 1e-10, 0.0);
    assert_close("ci high", s.ci_high.unwrap(), SUM_CI95.1, 1e-10, 0.0);
    let s = summarize_with_level(&SUM_V, 0.99).unwrap();
    assert_close("ci99 low", s.ci_low.unwrap(), SUM_CI99.0, 1e-10, 0.0);
    assert_close("ci99 high", s.ci_high.unwrap(), SUM_CI99.1, 1e-10, 0.0);
    // odd n median, exclusion of non-finite values
    let s = summarize(&[3.0, f64::NAN, 1.0, f64::INFINITY, 2.0]).unwrap();
    assert_eq!((s.n, s.excluded, s.median, s.mean), (3, 2, 2.0, 2.0));
    assert_eq!(s.std, Some(1.0));
    // n = 1: no spread, no interval
    let s = summarize(&[4.0, f64::NEG_INFINITY]).unwrap();
    assert_eq!(
        (s.n, s.excluded, s.mean, s.median, s.min, s.max),
        (1, 1, 4.0, 4.0, 4.0, 4.0)
    );
    assert_eq!((s.std, s.ci_low, s.ci_high), (None, None, None));
    // constant: zero-width interval
    let s = summarize(&[2.0, 2.0, 2.0]).unwrap();
    assert_eq!(
        (s.std, s.ci_low, s.ci_high),
        (Some(0.0), Some(2.0), Some(2.0))
    );
    // nothing finite
    let e = summarize(&[f64::NAN, f64::INFINITY]).unwrap_err();
    assert_eq!(e.reason, "n = 0 < 1 after excluding 2 values with inf/NaN");
    assert_eq!((e.n, e.excluded), (0, 2));
    assert!(summarize(&[]).is_err());
    assert!(summarize_with_level(&SUM_V, 1.0).is_err());
}

#[test]
fn degenerate_too_few_pairs() {
    let e = pearson(&[1.0, 2.0], &[3.0, 5.0]).unwrap_err();
    assert_eq!(e.reason, "n = 2 < 3");
    assert_eq!((e.n, e.excluded), (2, 0));
    let e = pearson(&[1.0, 2.0, f64::INFINITY], &[3.0, 5.0, 1.0]).unwrap_err();
    assert_eq!(e.reason, "n = 2 < 3 after excluding 1 pair with inf/NaN");
    assert_eq!((e.n, e.excluded), (2, 1));
    let e = spearman(&[1.0, f64::NAN, 3.0, 4.0], &[1.0, 2.0, f64::NAN, 0.0]).unwrap_err();
    assert_eq!(e.reason, "n = 2 < 3 after excluding 2 pairs with inf/NaN");
    assert!(pearson(&[], &[]).is_err());
    assert!(point_biserial(&[true, false], &[1.0, 2.0]).is_err());
    assert!(spearman_trend(&[1.0, 2.0]).is_err());
}

#[test]
fn degenerate_zero_variance() {
    let e = pearson(&[0.1, 0.1, 0.1, 0.1], &[1.0, 2.0, 3.0, 4.0]).unwrap_err();
    assert_eq!(e.reason, "x has zero variance");
    let e = pearson(&[1.0, 2.0, 3.0, 4.0], &[0.3; 4]).unwrap_err();
    assert_eq!(e.reason, "y has zero variance");
    // constant after exclusion
    let e = pearson(&[1.0, 1.0, 1.0, 9.0], &[1.0, 2.0, 3.0, f64::NAN]).unwrap_err();
    assert_eq!(e.reason, "x has zero variance");
    assert_eq!((e.n, e.excluded), (3, 1));
    let e = spearman(&[5.0; 5], &[1.0, 2.0, 3.0, 4.0, 5.0]).unwrap_err();
    assert_eq!(e.reason, "x has zero variance (all values tied)");
    let e = point_biserial(&[true; 4], &[1.0, 2.0, 3.0, 4.0]).unwrap_err();
    assert_eq!(e.reason, "group has zero variance (all 4 samples are true)");
    // the only `false` sample is excluded by its NaN value
    let e = point_biserial(&[true, true, true, false], &[1.0, 2.0, 3.0, f64::NAN]).unwrap_err();
    assert_eq!(e.reason, "group has zero variance (all 3 samples are true)");
    assert_eq!(e.excluded, 1);
    let e = spearman_trend(&[2.0, 2.0, 2.0]).unwrap_err();
    assert_eq!(e.reason, "y has zero variance (all values tied)");
}

#[test]
fn nonfinite_pairs_are_excluded_and_counted() {
    let mut x = GENERIC_X.to_vec();
    let mut y = GENERIC_Y.to_vec();
    x.insert(3, f64::INFINITY);
    y.insert(3, 2.0);
    x.push(1.0);
    y.push(f64::NAN);
    x.insert(0, f64::NEG_INFINITY);
    y.insert(0, f64::INFINITY);
    let c = pearson(&x, &y).unwrap();
    check(&c, 10, GENERIC_R, GENERIC_P, Some(GENERIC_CI));
    assert_eq!(c.excluded, 3);
    let c = spearman(&x, &y).unwrap();
    check(&c, 10, GENERIC_SP_R, GENERIC_SP_P, None);
    assert_eq!(c.excluded, 3);
    let mut g = PB_G.to_vec();
    let mut v = PB_Y.to_vec();
    g.push(true);
    v.push(f64::INFINITY);
    let c = point_biserial(&g, &v).unwrap();
    check(&c, 12, PB_R, PB_P, Some(PB_CI));
    assert_eq!(c.excluded, 1);
}

#[test]
fn bad_arguments_do_not_panic() {
    let e = pearson(&[1.0, 2.0, 3.0], &[1.0, 2.0]).unwrap_err();
    assert_eq!(e.reason, "x has 3 values but y has 2");
    assert!(point_biserial(&[true, false, true], &[1.0, 2.0]).is_err());
    for level in [0.0, 1.0, f64::NAN, -0.5, 95.0] {
        assert!(pearson_with_level(&GENERIC_X, &GENERIC_Y, level).is_err());
        assert!(spearman_with_level(&GENERIC_X, &GENERIC_Y, level).is_err());
    }
}

#[test]
fn serde_round_trip_shape() {
    // Serialize/Deserialize are derived; check the derive compiles for all types.
    fn is_serde<T: serde::Serialize + serde::de::DeserializeOwned>() {}
    is_serde::<Correlation>();
    is_serde::<NotComputable>();
    is_serde::<Summary>();
    is_serde::<Method>();
}

/// Every permutation of `0..n` (Heap's algorithm), passed to `f`.
fn for_each_permutation(n: usize, f: &mut impl FnMut(&[usize])) {
    let mut a: Vec<usize> = (0..n).collect();
    let mut c = vec![0; n];
    f(&a);
    let mut i = 1;
    while i < n {
        if c[i] < i {
            a.swap(if i % 2 == 0 { 0 } else { c[i] }, i);
            f(&a);
            c[i] += 1;
            i = 1;
        } else {
            c[i] = 0;
            i += 1;
        }
    }
}

/// A deterministic pseudo-random sample without ties.
fn untied(n: usize, seed: u64) -> Vec<f64> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|i| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64 + i as f64 * 1e-9
        })
        .collect()
}

#[test]
fn spearman_exact_p_equals_brute_force_enumeration() {
    // Independent of the counting table: enumerate all n! pairings, compute
    // rho of each through `spearman`, count |rho| >= |rho_obs|.
    for n in 3..=8 {
        for seed in 0..4 {
            let (x, y) = (untied(n, 2 * seed + 1), untied(n, 2 * seed + 2));
            let c = spearman(&x, &y).unwrap();
            let (mut hits, mut total) = (0u64, 0u64);
            for_each_permutation(n, &mut |perm| {
                let yp: Vec<f64> = perm.iter().map(|&i| y[i]).collect();
                let r = spearman(&x, &yp).unwrap().r;
                hits += u64::from(r.abs() >= c.r.abs() - 1e-12);
                total += 1;
            });
            assert_eq!(c.p, hits as f64 / total as f64, "n = {n}, seed {seed}");
        }
    }
}

#[test]
fn spearman_exact_up_to_12_pairs_then_student_t() {
    let factorial = |n: usize| (1..=n).map(|k| k as f64).product::<f64>();
    for n in 3..=SPEARMAN_EXACT_MAX_N {
        let x: Vec<f64> = (0..n).map(|i| i as f64).collect();
        let c = spearman(&x, &x).unwrap();
        assert_close("2/n!", c.p, 2.0 / factorial(n), 1e-14, 0.0);
        let rx = average_ranks(&x);
        assert_eq!(spearman_exact_p(&rx, &rx), Some(c.p));
    }
    // n = 13, no ties: the t approximation, as scipy.stats.spearmanr.
    let (x, y) = (untied(13, 5), untied(13, 6));
    let c = spearman(&x, &y).unwrap();
    assert_eq!(c.p, correlation_p_value(c.r, 13));
    // Ties: the t approximation at any n (TIES_SP above is n = 12).
    let c = spearman(&[1.0, 2.0, 2.0, 3.0, 5.0], &[1.0, 3.0, 2.0, 4.0, 5.0]).unwrap();
    assert_eq!(c.p, correlation_p_value(c.r, 5));
    assert_eq!(spearman_exact_p(&[1.0, 2.5, 2.5], &[1.0, 2.0, 3.0]), None);
    assert_eq!(spearman_exact_p(&[1.0, 2.0, 2.0], &[1.0, 2.0, 3.0]), None);
}

// PARTIAL: the partial correlation by another route than ours (residuals
// of least-squares lines): from the precision matrix P = inv(cov([x, y, z]))
// in NumPy 2.4, r = -P_xy / sqrt(P_xx P_yy); p = 2 scipy.stats.t.sf(|t|,
// n-3) with t = r sqrt((n-3)/(1-r²)); interval tanh(atanh r ∓
// scipy.stats.norm.ppf(0.975) / sqrt(n-4)), as pingouin.partial_corr.
const PARTIAL_X: [f64; 12] = [
    1.2, 2.4, 3.1, 4.8, 5.0, 6.3, 7.7, 8.1, 9.6, 10.2, 11.0, 12.5,
];
const PARTIAL_Y: [f64; 12] = [2.3, 1.9, 4.4, 3.8, 6.1, 5.2, 7.9, 6.6, 9.4, 8.8, 9.1, 12.0];
const PARTIAL_Z: [f64; 12] = [0.5, 1.1, 0.9, 2.2, 2.0, 3.1, 2.8, 4.0, 4.4, 4.1, 5.3, 5.0];
const PARTIAL_R: f64 = 0.891654791464024;
const PARTIAL_P: f64 = 0.00022661439625858897;
const PARTIAL_CI: (f64, f64) = (0.627323432744443, 0.9717557172551885);

// CONFOUNDED: x and y both follow z; scipy.stats.pearsonr(x, y) gives
// r = -0.9990429205372106 (p = 8.9e-11), the partial r given z (computed
// as PARTIAL) is positive and not significant.
const CONF_X: [f64; 9] = [2.1, 3.9, 6.2, 7.8, 10.1, 12.2, 13.8, 16.1, 17.9];
const CONF_Y: [f64; 9] = [-2.9, -6.2, -8.8, -12.1, -15.2, -17.8, -21.1, -24.0, -26.8];
const CONF_Z: [f64; 9] = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0];
const CONF_R: f64 = 0.5476330335226631;
const CONF_P: f64 = 0.16001278910837016;
const CONF_CI: (f64, f64) = (-0.25572455742618455, 0.9036034331698859);

#[test]
fn partial_pearson_matches_the_precision_matrix_route() {
    let c = partial_pearson(&PARTIAL_X, &PARTIAL_Y, &PARTIAL_Z).unwrap();
    assert_eq!(c.method, Method::PartialPearson);
    check(&c, 12, PARTIAL_R, PARTIAL_P, Some(PARTIAL_CI));
    let plain = pearson(&CONF_X, &CONF_Y).unwrap();
    assert_close("plain r", plain.r, -0.9990429205372106, 1e-10, 0.0);
    let c = partial_pearson(&CONF_X, &CONF_Y, &CONF_Z).unwrap();
    check(&c, 9, CONF_R, CONF_P, Some(CONF_CI));
}

#[test]
fn partial_pearson_drops_non_finite_triples_and_refuses_degenerate_ones() {
    let mut x = PARTIAL_X.to_vec();
    let mut y = PARTIAL_Y.to_vec();
    let mut z = PARTIAL_Z.to_vec();
    x.push(f64::INFINITY);
    y.push(1.0);
    z.push(1.0);
    x.insert(0, 2.0);
    y.insert(0, 3.0);
    z.insert(0, f64::NAN);
    let c = partial_pearson(&x, &y, &z).unwrap();
    check(&c, 12, PARTIAL_R, PARTIAL_P, Some(PARTIAL_CI));
    assert_eq!(c.excluded, 2);

    let e = partial_pearson(&[1.0, 2.0, 3.0], &[2.0, 1.0, 3.0], &[0.0, 1.0, 1.0]).unwrap_err();
    assert_eq!((e.n, e.reason.as_str()), (3, "n = 3 < 4"));
    let e = partial_pearson(&CONF_X, &CONF_Y[..8], &CONF_Z).unwrap_err();
    assert!(e.reason.contains("has 8"), "{}", e.reason);
    let twice_z: Vec<f64> = CONF_Z.iter().map(|v| 2.0 * v + 1.0).collect();
    let e = partial_pearson(&twice_z, &CONF_Y, &CONF_Z).unwrap_err();
    assert_eq!(e.reason, "x is a linear function of the control z");
    let e = partial_pearson(&CONF_X, &CONF_Y, &[4.0; 9]).unwrap_err();
    assert_eq!(e.reason, "z has zero variance");
}
