//! `write_report`: tables, figures, Markdown and HTML from record directories.

use crate::aggregate::samples_of;
use crate::analysis::{method_name, Analysis, Axis, CorrelationRow, Scope};
use crate::dataset::Dataset;
use crate::doc::{html, markdown, Block};
use crate::error::Result;
use crate::figures::{pval, short};
use crate::fsutil::{atomic_write, create_dir};
use crate::metric::Metric;
use crate::plots::{all_figures, variants, FigureType, Rendered};
use crate::tables::{aggregates_csv, confounding_csv, correlations_csv, trends_csv};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use stiffness_records::SpectrumVariant;
use stiffness_stats::critical_r;

/// Output document formats (CSV tables and figures are always written).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `report.md`.
    Markdown,
    /// `report.html`, self-contained.
    Html,
}

/// What to write and how.
#[derive(Clone, Debug, PartialEq)]
pub struct ReportOptions {
    /// Document formats.
    pub formats: Vec<Format>,
    /// Sample of the eigenvalue figure (default: the first sample).
    pub eigen_sample: Option<usize>,
    /// Block of the eigenvalue figure (default: the deepest square block).
    pub eigen_block: Option<String>,
    /// Significance level for q-values (default 0.05).
    pub alpha: f64,
    /// Metrics shown in figures and document tables (all metrics are in the
    /// CSV tables and heat maps).
    pub key_metrics: Vec<Metric>,
    /// The record directories are the checkpoints of one training run in
    /// training order: add trends across training per block.
    pub across_training: bool,
}

impl Default for ReportOptions {
    fn default() -> Self {
        Self {
            formats: vec![Format::Markdown, Format::Html],
            eigen_sample: None,
            eigen_block: None,
            alpha: 0.05,
            key_metrics: Metric::KEY.to_vec(),
            across_training: false,
        }
    }
}

/// What a report run produced.
#[derive(Clone, Debug, PartialEq)]
pub struct ReportSummary {
    /// Files written, relative to the output directory, sorted.
    pub files: Vec<PathBuf>,
    /// Unique records used.
    pub records: usize,
    /// Duplicate records dropped.
    pub duplicates: usize,
    /// Models in the report.
    pub models: usize,
    /// Tests with a p-value (the Benjamini-Hochberg family).
    pub tests: usize,
    /// Tests with q < alpha.
    pub significant: usize,
    /// Warnings and skipped figures.
    pub notes: Vec<String>,
}

/// The report's title (the level-1 heading).
pub const TITLE: &str = "Block-level stiffness report";

/// Reads the record directories `dirs` (several models, or shards of one;
/// with `options.across_training`, the checkpoints of one run in training
/// order), and writes into `out`: `aggregates.csv`, `correlations.csv`,
/// `trends.csv`, `confounding.csv` (when a square block has block-kind exact
/// records), `figures/*.svg`, `figures/*.png`, and `report.md` /
/// `report.html` as chosen in `options`. Every file is written atomically.
pub fn write_report(
    dirs: &[PathBuf],
    out: &Path,
    options: &ReportOptions,
) -> Result<ReportSummary> {
    let data = Dataset::load(dirs)?;
    let analysis = Analysis::new(&data, options.across_training)?;
    let fig_dir = out.join("figures");
    create_dir(&fig_dir)?;
    let mut files = Vec::new();
    let mut put = |name: &str, bytes: &[u8]| -> Result<()> {
        atomic_write(&out.join(name), bytes)?;
        files.push(PathBuf::from(name));
        Ok(())
    };
    put("aggregates.csv", &aggregates_csv(&analysis))?;
    put("correlations.csv", &correlations_csv(&analysis))?;
    put("trends.csv", &trends_csv(&analysis))?;
    if !analysis.confounding.rows.is_empty() {
        put("confounding.csv", &confounding_csv(&analysis))?;
    }
    let (figures, mut notes) = all_figures(&data, &analysis, options, &fig_dir)?;
    notes.extend(data_notes(&data));
    notes.extend(checkpoint_notes(&data, &analysis));
    let blocks = document(&data, &analysis, options, &figures, &notes);
    if options.formats.contains(&Format::Markdown) {
        put("report.md", markdown(&blocks).as_bytes())?;
    }
    if options.formats.contains(&Format::Html) {
        put("report.html", html(TITLE, &blocks).as_bytes())?;
    }
    for f in &figures {
        files.push(PathBuf::from(format!("figures/{}.svg", f.stem)));
        files.push(PathBuf::from(format!("figures/{}.png", f.stem)));
    }
    files.sort();
    Ok(ReportSummary {
        files,
        records: data.records.len(),
        duplicates: data.duplicates,
        models: data.models().len(),
        tests: analysis.family_size(),
        significant: significant(&analysis, options.alpha),
        notes,
    })
}

fn significant(a: &Analysis, alpha: f64) -> usize {
    let q = a
        .correlations
        .iter()
        .map(|c| c.q)
        .chain(a.trends.iter().map(|t| t.q));
    q.filter(|q| q.is_some_and(|q| q < alpha)).count()
}

/// A warning when the checkpoints of a report across training were not
/// analysed on the same samples (their trends then mix in other images).
fn checkpoint_notes(data: &Dataset, a: &Analysis) -> Option<String> {
    let samples = |m| -> Vec<usize> { samples_of(data, m).into_keys().collect() };
    let first = samples(a.checkpoints.first()?);
    let differ: Vec<&str> = a.checkpoints[1..]
        .iter()
        .filter(|m| samples(m) != first)
        .map(|m| m.name.as_str())
        .collect();
    (!differ.is_empty()).then(|| {
        format!(
            "Checkpoints {} were analysed on other samples than {}: the trends across training compare different images (analyse every checkpoint with the same data, sampling and --seed).",
            differ.join(", "),
            a.checkpoints[0].name
        )
    })
}

fn data_notes(data: &Dataset) -> Vec<String> {
    let mut notes = Vec::new();
    if data.duplicates > 0 {
        notes.push(format!(
            "{} duplicate records (same model hash, sample, block, kind, spectrum) were dropped; {} of them differed from the record kept in more than the timing.",
            data.duplicates, data.conflicting
        ));
    }
    if data.skipped_lines > 0 {
        notes.push(format!(
            "{} truncated final record lines were skipped.",
            data.skipped_lines
        ));
    }
    if !data.failed.is_empty() {
        let listed: Vec<String> = data
            .failed
            .iter()
            .take(10)
            .map(|(sample, block, reason)| format!("sample {sample}, {block}: {reason}"))
            .collect();
        let more = data.failed.len().saturating_sub(listed.len());
        notes.push(format!(
            "{} records could not be computed and are left out of every table and test ({}{}).",
            data.failed.len(),
            listed.join("; "),
            if more > 0 {
                format!("; and {more} more")
            } else {
                String::new()
            }
        ));
    }
    notes
}

/// The whole document.
fn document(
    data: &Dataset,
    a: &Analysis,
    opt: &ReportOptions,
    figs: &[Rendered],
    notes: &[String],
) -> Vec<Block> {
    let mut b = vec![Block::Heading(1, TITLE.into())];
    b.extend(reproducibility(data));
    b.extend(method(a, opt));
    b.extend(solvers(data));
    b.extend(performance(a));
    b.extend(stiffness(a, opt));
    b.extend(trends(a, opt, Axis::Depth));
    if !a.checkpoints.is_empty() {
        b.extend(checkpoints(a));
        b.extend(trends(a, opt, Axis::Training));
    }
    b.extend(correlations(a, opt, Scope::Labels));
    b.extend(correlations(a, opt, Scope::Samples));
    b.extend(crate::paper::section(data, a, opt.alpha));
    b.extend(crate::confound::section(a, opt.alpha));
    b.extend(figure_section(figs, !a.checkpoints.is_empty()));
    b.push(Block::Heading(2, "Notes".into()));
    b.push(if notes.is_empty() {
        Block::Para("None.".into())
    } else {
        Block::List(notes.to_vec())
    });
    b
}

fn reproducibility(data: &Dataset) -> Vec<Block> {
    let mut b = vec![Block::Heading(2, "Reproducibility".into())];
    let dirs: Vec<String> = data
        .dirs
        .iter()
        .map(|d| format!("`{}`", d.display()))
        .collect();
    b.push(Block::Para(format!(
        "Record directories: {}. {} unique records ({} duplicates dropped).",
        dirs.join(", "),
        data.records.len(),
        data.duplicates
    )));
    let header = [
        "model",
        "sha256",
        "arch",
        "data",
        "format",
        "normalize",
        "sampling",
        "seed",
        "tolerance",
        "tool",
        "created",
    ];
    let rows = data
        .models()
        .iter()
        .map(|m| manifest_row(data, m))
        .collect();
    b.push(Block::Table(
        header.iter().map(|s| s.to_string()).collect(),
        rows,
    ));
    b
}

fn manifest_row(data: &Dataset, m: &crate::dataset::ModelId) -> Vec<String> {
    let samples = samples_of(data, m).len();
    match data.manifest(m) {
        Some(x) => vec![
            m.name.clone(),
            format!("`{}`", m.sha256),
            x.arch.clone(),
            format!("`{}`", x.data_path),
            x.data_format.clone(),
            x.normalize.clone(),
            sampling(samples, x.per_class, x.samples),
            x.seed.to_string(),
            x.tolerance.clone(),
            x.tool_version.clone(),
            x.created.clone(),
        ],
        None => {
            let mut row = vec![m.name.clone(), format!("`{}`", m.sha256)];
            row.extend([
                "(no manifest.json)".to_string(),
                String::new(),
                String::new(),
                String::new(),
            ]);
            row.extend([
                format!("{samples} samples analysed"),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
            ]);
            row
        }
    }
}

fn sampling(analysed: usize, per_class: Option<usize>, samples: Option<usize>) -> String {
    let drawn = match (per_class, samples) {
        (Some(k), _) => format!("{k} per class"),
        (None, Some(n)) => format!("{n} in all"),
        (None, None) => "all".into(),
    };
    format!("{drawn} drawn; {analysed} samples in the records")
}

/// How the records' metrics were computed: dense, or matrix-free with the
/// evidence summarised (convergence, the largest residual, what is null).
fn solvers(data: &Dataset) -> Vec<Block> {
    let krylov: Vec<&stiffness_records::Record> = data
        .records
        .iter()
        .filter(|r| r.method == stiffness_records::Method::Krylov)
        .collect();
    if krylov.is_empty() {
        return Vec::new();
    }
    let unconverged = krylov.iter().filter(|r| r.converged != Some(true)).count();
    let residual = krylov
        .iter()
        .flat_map(|r| {
            [
                r.max_re_residual,
                r.min_re_residual,
                r.spectral_radius_residual,
                r.euler_residual,
                r.soderlind_residual,
                r.sigma_max_residual,
            ]
        })
        .flatten()
        .fold(0.0_f64, f64::max);
    let applications: usize = krylov.iter().filter_map(|r| r.applications).sum();
    let tol = krylov
        .iter()
        .filter_map(|r| r.krylov_tol)
        .fold(0.0_f64, f64::max);
    vec![Block::Para(format!(
        "Solvers: {} of {} records are matrix-free (`method` = krylov: Krylov-Schur extremes \
         on JVPs of the reduced operator, Söderlind's number from (J + J^T)/2, sigma_max from \
         J^T J; METHOD.md section 8); the others are dense. Their neg_share, n_zero, \
         stiffness_ratio and euler_unstable_share need the whole spectrum and are not computed \
         (– in the tables), and their sigma_min only where the rank bound proves it is 0. \
         Evidence: {} of them did not converge (their unconverged metrics are null); the \
         largest true relative Ritz residual is {residual:.1e} (tolerance {tol:.0e}); {applications} \
         operator applications in all.",
        krylov.len(),
        data.records.len(),
        unconverged
    ))]
}

fn method(a: &Analysis, opt: &ReportOptions) -> Vec<Block> {
    let present: Vec<String> = variants(a)
        .iter()
        .map(|(k, v)| format!("{k} Jacobian with the {v} spectrum"))
        .collect();
    let mut b = vec![
        Block::Heading(2, "Method".into()),
        Block::Para(format!(
            "Analysed: {}. `block` is J_B = dB/dx (the map x_k -> x_k+1), `residual` is J_F = dF/dx (the vector field of dx/dt = F(x)). Eigenvalue tolerance tol = 1e-6 * max(1, rho); stiffness_index = max Re λ / min Re λ (signed; +inf and NaN occur and are excluded from means and tests but counted); non-square (downsampling) blocks have singular values only. Summaries: mean, median, sample std and 95% t-interval over the finite values. Correlations: Pearson r (exact two-sided p, Fisher-z 95% interval) and Spearman rho (exact permutation p for n ≤ 12 pairs without ties, else Student t with n - 2 df) across labels (per-label metric mean vs per-label accuracy or loss) and across samples (metric vs per-sample loss; point-biserial r vs correctness). Benjamini-Hochberg q over the whole family of {} tests in this report (correlations and trends); significance level {}.",
            present.join("; "),
            a.family_size(),
            opt.alpha
        )),
    ];
    let has = |v| a.groups.keys().any(|k| k.spectrum == v);
    if has(SpectrumVariant::Exact) && has(SpectrumVariant::PaperCompat) {
        b.extend(compare_variants(a));
    }
    b
}

fn compare_variants(a: &Analysis) -> Vec<Block> {
    let text = "The exact spectrum is the set of n = C*H*W eigenvalues of the flattened n x n Jacobian. The paper-compatible spectrum is what torch.linalg.eigvals returns when applied to the unflattened jacrev output of shape (1, C_out, H_out, W_out, 1, C_in, H_in, W_in): it treats the last two axes as matrices and returns the eigenvalues of the H_in x W_in slices J8[c_o, h_o, w_o, c_i, :, :], C_out*H_out*W_out*C_in*H_in values in all. These are not eigenvalues of the block's Jacobian (at 1x1 spatial size they are simply its entries), so the two columns below measure different things; the paper-compatible numbers are given only to reproduce and compare with published values.";
    let mut rows = Vec::new();
    for k in a
        .groups
        .keys()
        .filter(|k| k.spectrum == SpectrumVariant::Exact)
    {
        let mut paper = k.clone();
        paper.spectrum = SpectrumVariant::PaperCompat;
        let cell = |key, m| a.overall(key, m).map_or("–".to_string(), mean_cell);
        rows.push(vec![
            k.model.name.clone(),
            k.block.clone(),
            k.kind.to_string(),
            cell(k, Metric::StiffnessIndex),
            cell(&paper, Metric::StiffnessIndex),
            cell(k, Metric::NegShare),
            cell(&paper, Metric::NegShare),
        ]);
    }
    let header = [
        "model",
        "block",
        "kind",
        "stiffness_index exact",
        "stiffness_index paper-compat",
        "neg_share exact",
        "neg_share paper-compat",
    ];
    vec![
        Block::Heading(3, "Exact and paper-compatible spectra".into()),
        Block::Para(text.into()),
        Block::Table(header.iter().map(|s| s.to_string()).collect(), rows),
    ]
}

/// "mean ± std (n = k, m excluded)" of an aggregate.
fn mean_cell(g: &crate::aggregate::Aggregate) -> String {
    let excl = g.counts.excluded();
    let excl = if excl > 0 {
        format!(", {excl} inf/NaN excluded")
    } else {
        String::new()
    };
    match g.summary {
        Some(s) => format!(
            "{} ± {} (n = {}{excl})",
            short(s.mean),
            s.std.map_or("–".into(), short),
            s.n
        ),
        None => format!("undefined (n = 0{excl})"),
    }
}

fn performance(a: &Analysis) -> Vec<Block> {
    let mut b = vec![Block::Heading(2, "Accuracy and loss per label".into())];
    let mut rows = Vec::new();
    for (m, p) in &a.performance {
        b.push(Block::Para(format!(
            "{} [{}]: per-label accuracy and loss from {}.",
            m.name,
            m.short_hash(),
            p.source.describe()
        )));
        for l in &p.labels {
            rows.push(vec![
                m.name.clone(),
                l.label.to_string(),
                l.name.clone(),
                short(l.accuracy),
                short(l.loss),
                l.count.to_string(),
            ]);
        }
    }
    let header = [
        "model",
        "label",
        "name",
        "accuracy",
        "mean loss",
        "n images",
    ];
    b.push(Block::Table(
        header.iter().map(|s| s.to_string()).collect(),
        rows,
    ));
    b
}

fn stiffness(a: &Analysis, opt: &ReportOptions) -> Vec<Block> {
    let mut header: Vec<String> = ["model", "block", "kind", "spectrum", "n samples"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    header.extend(opt.key_metrics.iter().map(|m| m.to_string()));
    let rows = a
        .groups
        .iter()
        .map(|(k, idx)| {
            let mut row = k.table_cells();
            row.push(idx.len().to_string());
            row.extend(
                opt.key_metrics
                    .iter()
                    .map(|&m| a.overall(k, m).map_or("–".into(), mean_cell)),
            );
            row
        })
        .collect();
    vec![
        Block::Heading(2, "Stiffness by block".into()),
        Block::Para("Mean ± sample std over all analysed samples, with the number of finite values used and of inf/NaN values excluded; – = metric not applicable. Per-label values and all metrics: aggregates.csv.".into()),
        Block::Table(header, rows),
    ]
}

fn test_cells(
    r: &Result<stiffness_stats::Correlation, stiffness_stats::NotComputable>,
    q: Option<f64>,
) -> Vec<String> {
    match r {
        Ok(c) => vec![
            c.n.to_string(),
            short(c.r),
            format!("[{}, {}]", short(c.ci_low), short(c.ci_high)),
            pval(c.p),
            q.map_or("–".into(), pval),
        ],
        Err(e) => vec![
            e.n.to_string(),
            format!("not computable: {}", e.reason),
            String::new(),
            String::new(),
            String::new(),
        ],
    }
}

/// Accuracy and loss of each checkpoint of a report across training.
fn checkpoints(a: &Analysis) -> Vec<Block> {
    let rows = a
        .checkpoints
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let p = &a.performance[m];
            let (accuracy, loss, count) = p.overall();
            vec![
                i.to_string(),
                m.name.clone(),
                m.short_hash().into(),
                short(accuracy),
                short(loss),
                count.to_string(),
            ]
        })
        .collect();
    let header = [
        "position",
        "checkpoint",
        "sha256",
        "accuracy",
        "mean loss",
        "n images",
    ];
    vec![
        Block::Heading(2, "Checkpoints across training".into()),
        Block::Para("The record directories in the order given, taken as the checkpoints of one training run in training order. Accuracy and loss from each checkpoint's eval.json when present, else from its analysed samples (see \"Accuracy and loss per label\").".into()),
        Block::Table(header.iter().map(|s| s.to_string()).collect(), rows),
    ]
}

fn trends(a: &Analysis, opt: &ReportOptions, axis: Axis) -> Vec<Block> {
    let rows = a
        .trends
        .iter()
        .filter(|t| t.axis == axis && opt.key_metrics.contains(&t.metric))
        .map(|t| {
            let mut row = vec![
                t.line.name().to_string(),
                t.kind.to_string(),
                t.spectrum.to_string(),
                t.metric.to_string(),
            ];
            let ends = (t.points.first(), t.points.last());
            row.push(match ends {
                (Some(f), Some(l)) => {
                    format!("{} ({}) → {} ({})", short(f.2), f.0, short(l.2), l.0)
                }
                _ => String::new(),
            });
            row.extend(test_cells(&t.result, t.q));
            row
        })
        .collect();
    let (title, line, points, text) = match axis {
        Axis::Depth => (
            "Depth trends",
            "model",
            "first → last block mean",
            "Spearman rho between the per-block mean (over all samples) and block depth; rho > 0 means the metric grows towards the end of the network (the paper's \"later blocks are stiffer\" claim for stiffness_index). All metrics: trends.csv (axis = depth).",
        ),
        Axis::Training => (
            "Trends across training",
            "block",
            "first → last checkpoint mean",
            "Per block, Spearman rho between the per-checkpoint mean (over all samples) and the checkpoint's position in training order; rho > 0 means the metric grows as the network trains (Hudson et al. 2023 report that stiffness rises with training). All metrics: trends.csv (axis = training).",
        ),
    };
    let mut header = vec![line, "kind", "spectrum", "metric", points];
    header.extend(["n points", "Spearman rho", "95% CI", "p", "q"]);
    vec![
        Block::Heading(2, title.into()),
        Block::Para(text.into()),
        Block::Table(header.iter().map(|s| s.to_string()).collect(), rows),
    ]
}

fn correlations(a: &Analysis, opt: &ReportOptions, scope: Scope) -> Vec<Block> {
    let (title, what) = match scope {
        Scope::Labels => ("Correlations across labels", "per-label metric mean vs per-label accuracy and loss"),
        Scope::Samples => ("Correlations across samples", "per-sample metric vs per-sample loss (Pearson, Spearman) and vs correctness (point-biserial)"),
    };
    let all: Vec<&CorrelationRow> = a.correlations.iter().filter(|c| c.scope == scope).collect();
    let computed = all.iter().filter(|c| c.result.is_ok()).count();
    let sig: Vec<&CorrelationRow> = all
        .iter()
        .copied()
        .filter(|c| c.q.is_some_and(|q| q < opt.alpha))
        .collect();
    let mut b = vec![
        Block::Heading(2, title.into()),
        Block::Para(format!(
            "{what}: {} tests, {computed} computable, {} with q < {}. {}Pairs with inf/NaN are excluded; where they are more than half, the test is not computed (the finite rest would be a selection, not a sample). All tests with n, r, p, interval, q, excluded counts and reasons: correlations.csv.",
            all.len(),
            sig.len(),
            opt.alpha,
            critical_note(a, scope, opt.alpha)
        )),
    ];
    b.extend(reasons(&all));
    b.push(significant_table(sig));
    b
}

fn critical_note(a: &Analysis, scope: Scope, alpha: f64) -> String {
    if scope != Scope::Labels {
        return String::new();
    }
    let n = a
        .performance
        .values()
        .map(|p| p.labels.len())
        .max()
        .unwrap_or(0);
    let r = critical_r(n, alpha);
    if r.is_finite() {
        format!(
            "With {n} labels |r| must exceed {} for p < {alpha}. ",
            short(r)
        )
    } else {
        String::new()
    }
}

fn reasons(rows: &[&CorrelationRow]) -> Option<Block> {
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for c in rows {
        if let Err(e) = &c.result {
            *count.entry(e.reason.as_str()).or_default() += 1;
        }
    }
    (!count.is_empty()).then(|| {
        Block::List(
            count
                .iter()
                .map(|(r, k)| format!("not computable ({k} tests): {r}"))
                .collect(),
        )
    })
}

fn significant_table(mut sig: Vec<&CorrelationRow>) -> Block {
    sig.sort_by(|a, b| a.q.partial_cmp(&b.q).unwrap_or(std::cmp::Ordering::Equal));
    let rows = sig
        .iter()
        .take(50)
        .map(|c| {
            let mut row = c.key.table_cells();
            row.extend([
                c.metric.to_string(),
                c.target.as_str().into(),
                method_name(c.method).into(),
            ]);
            row.extend(test_cells(&c.result, c.q));
            row
        })
        .collect();
    let header = [
        "model", "block", "kind", "spectrum", "metric", "target", "method", "n", "r", "95% CI",
        "p", "q",
    ];
    Block::Table(header.iter().map(|s| s.to_string()).collect(), rows)
}

fn figure_section(figs: &[Rendered], across_training: bool) -> Vec<Block> {
    let mut b = vec![Block::Heading(2, "Figures".into())];
    let sections = [
        (FigureType::Depth, "Metric against depth"),
        (FigureType::Training, "Metric across training"),
        (FigureType::Eigen, "Eigenvalues in the complex plane"),
        (FigureType::Scatter, "Per-label scatter plots"),
        (FigureType::Heatmap, "Correlation heat maps"),
    ];
    let shown = |kind: &FigureType| *kind != FigureType::Training || across_training;
    for (kind, title) in sections.into_iter().filter(|(k, _)| shown(k)) {
        b.push(Block::Heading(3, title.into()));
        let these: Vec<&Rendered> = figs.iter().filter(|f| f.section == kind).collect();
        if these.is_empty() {
            b.push(Block::Para("No figure of this type (see Notes).".into()));
        }
        b.extend(these.into_iter().map(|f| Block::Figure {
            stem: f.stem.clone(),
            caption: f.caption.clone(),
            svg: f.svg.clone(),
        }));
    }
    b
}
