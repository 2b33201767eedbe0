//! One function per subcommand: turn its options into a library call and
//! print the result. No analysis happens here.

use std::path::Path;

use candle_core::DType;
use resnet_stiffness::analysis::{self, Settings};
use resnet_stiffness::error::{Error, Result};
use resnet_stiffness::model::{self, LoadedModel};
use resnet_stiffness::{bench, eval, train};
use stiffness_data::{DataOptions, Dataset};
use stiffness_records::{store, SpectrumVariant};

use crate::cli::args::*;
use crate::cli::progress::{bar, say, JobBar, StatusLog};

fn load(args: &ModelArgs, dtype: DType) -> Result<LoadedModel> {
    model::load(&args.model, args.arch.as_deref(), dtype)
}

fn open_data(path: &Path, o: &DataArgs) -> Result<Dataset> {
    Ok(DataOptions::from(o).open(path)?)
}

/// Print the architecture and every block's shapes.
pub fn inspect(a: InspectArgs) -> Result<()> {
    let loaded = load(&a.model, DType::F32)?;
    let net = &loaded.model;
    let default = if net.spec.family == model::Family::Torchvision {
        224
    } else {
        32
    };
    let (h, w) = parse_size(a.input_size.as_deref(), default)?;
    let blocks = net.block_shapes([net.spec.in_channels, h, w])?;
    if a.json {
        let out = serde_json::json!({
            "model": loaded.path, "format": loaded.format.description(), "arch": net.spec.name(),
            "spec": net.spec, "parameters": net.parameter_count(), "input": [net.spec.in_channels, h, w],
            "blocks": blocks,
        });
        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
        return Ok(());
    }
    println!("{}: {}", loaded.path.display(), loaded.format.description());
    println!("architecture: {}", net.spec);
    println!("parameters: {}", net.parameter_count());
    println!("input: {}x{}x{}", net.spec.in_channels, h, w);
    println!(
        "{:<10} {:>14} {:>14} {:>8} {:>7}",
        "block", "input", "output", "n", "square"
    );
    for b in &blocks {
        let fmt = |s: [usize; 3]| format!("{}x{}x{}", s[0], s[1], s[2]);
        println!(
            "{:<10} {:>14} {:>14} {:>8} {:>7}",
            b.name,
            fmt(b.input),
            fmt(b.output),
            b.n,
            if b.square { "yes" } else { "no" }
        );
    }
    println!(
        "\nplan of `analyze --solver auto` at this input size (exact spectrum, one sample \
         at a time, the memory this machine has available):"
    );
    let budget = analysis::memory::Budget::new(None)?;
    let policy = analysis::plan::Policy {
        solver: analysis::plan::Solver::Auto,
        record_bytes: budget.map(|b| b.limit),
        limit_source: budget.map_or_else(String::new, |b| b.describe()),
        dense_seconds: analysis::plan::DEFAULT_DENSE_SECONDS,
    };
    let with_inputs: Vec<_> = net
        .blocks
        .iter()
        .zip(&blocks)
        .map(|(b, s)| (b, s.input))
        .collect();
    let rows = analysis::plan::plan(
        &with_inputs,
        &model::JacobianKind::ALL,
        &[SpectrumVariant::Exact],
        &policy,
    );
    print!("{}", analysis::plan::render(&rows));
    Ok(())
}

fn parse_size(s: Option<&str>, default: usize) -> Result<(usize, usize)> {
    let Some(s) = s else {
        return Ok((default, default));
    };
    let bad = || {
        Error::Usage(format!(
            "--input-size {s:?}: expected H or HxW, e.g. 32 or 224x224"
        ))
    };
    let parts: Vec<usize> = s
        .split('x')
        .map(|p| p.trim().parse().map_err(|_| bad()))
        .collect::<Result<_>>()?;
    match parts[..] {
        [n] if n > 0 => Ok((n, n)),
        [h, w] if h > 0 && w > 0 => Ok((h, w)),
        _ => Err(bad()),
    }
}

/// Print accuracy and loss, overall and per class.
pub fn eval(a: EvalArgs) -> Result<()> {
    let net = load(&a.model, DType::F32)?.model;
    let data = open_data(&a.data, &a.options)?;
    eval::check_fit(&net, &data, &a.data.display().to_string())?;
    if a.limit == Some(0) {
        return Err(Error::Usage(
            "--limit 0: nothing to evaluate; give at least 1".into(),
        ));
    }
    let n = a.limit.unwrap_or(data.len()).min(data.len());
    let indices: Vec<usize> = (0..n).collect();
    let pb = bar(n, "eval");
    let outcomes = eval::evaluate(&net, &data, &indices, &|done| pb.set_position(done as u64))?;
    pb.finish_and_clear();
    let summary = eval::summarize(&outcomes, data.class_names());
    if a.json {
        println!("{}", serde_json::to_string(&summary).unwrap_or_default());
        return Ok(());
    }
    println!(
        "images: {}  top-1 accuracy: {:.2}%  mean loss: {:.4}",
        summary.count,
        100.0 * summary.accuracy,
        summary.loss
    );
    println!(
        "{:>5} {:<16} {:>7} {:>9} {:>8}",
        "label", "class", "count", "accuracy", "loss"
    );
    for c in &summary.per_class {
        println!(
            "{:>5} {:<16} {:>7} {:>8.2}% {:>8.4}",
            c.label,
            c.name,
            c.count,
            100.0 * c.accuracy,
            c.loss
        );
    }
    Ok(())
}

/// Publish a training run's weights.
pub fn export(a: ExportArgs) -> Result<()> {
    use stiffness_checkpoint::safetensors::SaveDType;
    let dtype = match a.dtype.as_str() {
        "f16" => SaveDType::F16,
        "f32" => SaveDType::F32,
        other => {
            return Err(Error::Usage(format!(
                "--dtype {other}: expected f16 or f32"
            )))
        }
    };
    let e = train::export::export(&a.run, &a.out, dtype, a.eval_data.as_deref())?;
    println!(
        "{} epochs; held-out accuracy {:.2}% (run, float32), {:.2}% (file, {}), loss {:.4}",
        e.epochs,
        100.0 * e.run_accuracy,
        100.0 * e.file_accuracy,
        a.dtype,
        e.file_loss
    );
    println!(
        "wrote {} and {}",
        e.model_path.display(),
        e.record_path.display()
    );
    Ok(())
}

/// Tables, figures and documents from record directories.
pub fn report(a: ReportArgs) -> Result<()> {
    let formats = a
        .format
        .split(',')
        .map(|f| match f.trim() {
            "md" => Ok(stiffness_report::Format::Markdown),
            "html" => Ok(stiffness_report::Format::Html),
            other => Err(Error::Usage(format!(
                "--format {other:?}: expected md and/or html"
            ))),
        })
        .collect::<Result<Vec<_>>>()?;
    let options = stiffness_report::ReportOptions {
        formats,
        across_training: a.across_training,
        ..Default::default()
    };
    let summary = stiffness_report::write_report(&a.records, &a.out, &options)?;
    eprintln!(
        "report: {} records, {} models, {} tests ({} significant at q < 0.05) -> {}",
        summary.records,
        summary.models,
        summary.tests,
        summary.significant,
        a.out.display()
    );
    Ok(())
}
/// Train with a progress bar and a line per epoch.
pub fn train(a: TrainArgs) -> Result<()> {
    let config = a.config()?;
    let pb = bar(0, "train");
    let log = StatusLog::new();
    let summary = train::train(&config, &mut |p| {
        let status = format!(
            "epoch {}/{} loss {:.4} acc {:.3} lr {:.4} {:.0} img/s",
            p.epoch, p.epochs, p.loss, p.accuracy, p.lr, p.images_per_sec
        );
        pb.set_length(p.total_steps as u64);
        pb.set_position(p.step as u64);
        log.maybe(&pb, || {
            format!(
                "step {}/{} {status} ETA {:.0} s",
                p.step, p.total_steps, p.eta_secs
            )
        });
        pb.set_message(status);
        if let Some(e) = &p.finished {
            say(&pb, format!(
                "epoch {}: train loss {:.4} acc {:.4} | test loss {:.4} acc {:.4} | {:.0} s, {:.0} img/s",
                e.epoch, e.loss, e.train_acc, e.test_loss, e.test_acc, e.seconds, e.images_per_sec
            ));
        }
    })?;
    pb.finish_and_clear();
    println!(
        "final test accuracy {:.4}; model {}",
        summary.final_test_acc,
        summary.model_path.display()
    );
    Ok(())
}

/// Analyse into `--out`; with `--json` and `--input-npy`, print the records.
pub fn analyze(a: AnalyzeArgs) -> Result<()> {
    let settings = a.settings()?;
    if a.dry_run {
        print!(
            "{}",
            analysis::plan::render(&analysis::settings::plan(&settings)?)
        );
        return Ok(());
    }
    let written = run_analysis(&settings, &a.out, a.resume)?;
    if a.json && a.input_npy.is_some() {
        for r in stiffness_records::read_records(&a.out)? {
            println!("{}", r.to_json_line());
        }
    } else {
        eprintln!("{written} new records in {}", a.out.display());
    }
    Ok(())
}

/// [`analysis::analyze`] with the progress bar.
fn run_analysis(settings: &Settings, out: &Path, resume: bool) -> Result<usize> {
    let progress = JobBar::new();
    let written = analysis::analyze(settings, out, resume, &progress)?;
    progress.bar.finish_and_clear();
    Ok(written)
}

/// The bundled default: a torchvision ResNet18 trained by this tool on
/// Fashion-MNIST, and 100 test images per class (see assets/).
const DEFAULT_MODEL: &str = "assets/fashion-mnist-resnet18/model.safetensors";
const DEFAULT_DATA: &str = "assets/fashion-mnist-sample/t10k-images-idx3-ubyte.gz";

/// A bundled file: as the relative path the README's commands use when run
/// from the checkout (so that records and reports show that path), else
/// inside the checkout this binary was built from.
fn bundled(relative: &str) -> Result<std::path::PathBuf> {
    let local = Path::new(relative);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let path = if local.exists() {
        local.to_path_buf()
    } else {
        root.join(relative)
    };
    if !path.exists() {
        return Err(Error::Usage(format!(
            "{}: the bundled default is missing; is this a complete checkout?",
            path.display()
        )));
    }
    Ok(path)
}

/// Evaluate, analyse and report the bundled default.
pub fn demo(a: DemoArgs) -> Result<()> {
    let (model, data) = (bundled(DEFAULT_MODEL)?, bundled(DEFAULT_DATA)?);
    let records = a.out.join("records");
    eprintln!(
        "resnet-stiffness demo: {} on {}",
        model.display(),
        data.display()
    );
    eprintln!(
        "step 1/3: evaluate; step 2/3: analyse {} images per class, blocks {}, both Jacobian \
         kinds, both spectra; step 3/3: report",
        a.per_class, a.blocks
    );
    let settings = Settings {
        model,
        arch: None,
        name: None,
        source: analysis::Source::Data {
            path: data,
            options: DataOptions::default(),
        },
        sampling: analysis::Sampling::PerClass(a.per_class),
        seed: 0,
        blocks: a.blocks.parse().map_err(Error::Usage)?,
        kinds: model::JacobianKind::ALL.to_vec(),
        variants: vec![SpectrumVariant::Exact, SpectrumVariant::PaperCompat],
        shard: None,
        threads: 2,
        save_eigenvalues: true,
        evaluate: true,
        max_memory: None,
        solver: analysis::plan::Solver::Auto,
        dense_seconds: analysis::plan::DEFAULT_DENSE_SECONDS,
    };
    // A second run continues (or, when finished, simply re-reports) the first.
    let written = run_analysis(&settings, &records, true)?;
    eprintln!("{written} new records in {}", records.display());
    let report_dir = a.out.join("report");
    report(ReportArgs {
        records: vec![records],
        out: report_dir.clone(),
        format: "md,html".into(),
        across_training: false,
    })?;
    println!("report: {}", report_dir.join("report.md").display());
    Ok(())
}

/// Join shard directories.
pub fn merge(a: MergeArgs) -> Result<()> {
    let merged = store::merge(&a.shards, &a.out)?;
    eprintln!(
        "merged {} records from {} shards into {}",
        merged.records,
        merged.shards,
        a.out.display()
    );
    Ok(())
}

/// Time the solvers (and, on request, evaluation and training throughput).
pub fn bench(a: BenchArgs) -> Result<()> {
    if a.eval {
        for arch in ["resnet20", "resnet18"] {
            let rate = bench::eval_throughput(arch, 32, 4)?;
            println!("eval {arch} 32x32: {rate:.0} images/s");
        }
    }
    if a.train {
        for arch in ["resnet18", "resnet34", "resnet50"] {
            let rate = bench::train_throughput(arch, 32, 5)?;
            println!("train {arch} 32x32 batch 128: {rate:.0} images/s");
        }
    }
    println!(
        "{:<11} {:<9} {:>12} {:>6} {:>8} {:>7} {:>10} {:>10} {:>10}",
        "block", "kind", "shape", "n", "active", "solved", "assembly_s", "reduced_s", "dense_s"
    );
    bench::blocks(a.max_n, a.max_dense, &mut |t| {
        let shape = format!("{}x{}x{}", t.shape[0], t.shape[1], t.shape[2]);
        let dense = t.dense_s.map_or("-".to_string(), |d| format!("{d:.3}"));
        println!(
            "{:<11} {:<9} {:>12} {:>6} {:>8} {:>7} {:>10.3} {:>10.3} {:>10}",
            t.block,
            t.kind,
            shape,
            t.n,
            t.n_active,
            t.solved_size,
            t.assembly_s,
            t.reduced_s,
            dense
        );
    })?;
    Ok(())
}
