//! The command line on good and bad input: exit codes, messages, outputs,
//! resume after a kill, and shards merged.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{scratch, shared, stderr, tool};

#[test]
fn bad_inputs_exit_2_with_a_message_naming_the_file() {
    let dir = scratch("cli-bad");
    let junk = dir.join("junk.pt");
    std::fs::write(&junk, b"\x7fELF not a checkpoint").unwrap();
    let truncated = dir.join("trunc.safetensors");
    std::fs::write(&truncated, [200u8, 0, 0, 0, 0, 0, 0, 0, b'{']).unwrap();
    let missing = dir.join("missing.th");
    for (model, needle) in [
        (&junk, "junk.pt"),
        (&truncated, "trunc.safetensors"),
        (&missing, "missing.th"),
    ] {
        let o = tool(&["inspect", "--model", model.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(stderr(&o).contains(needle), "{}", stderr(&o));
        assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
    }
}

#[test]
fn inspect_lists_blocks_of_a_real_checkpoint() {
    let Some(shared) = shared() else { return };
    let model = shared.join("models/cifar10-resnet-akamaster/resnet56-4bfd9763.th");
    let o = tool(&["inspect", "--model", model.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["arch"], "resnet56");
    assert_eq!(v["blocks"].as_array().unwrap().len(), 27);
    assert_eq!(v["blocks"][0]["n"], 16384);
    assert_eq!(v["blocks"][9]["square"], false);
    assert_eq!(v["parameters"], 853_018);
}

#[test]
fn eval_wrong_data_is_a_clear_error() {
    let Some(shared) = shared() else { return };
    let model = shared.join("models/cifar10-resnet-akamaster/resnet20-12fca82f.th");
    let dir = scratch("cli-evalbad");
    let o = tool(&[
        "eval",
        "--model",
        model.to_str().unwrap(),
        "--data",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = tool(&[
        "eval",
        "--model",
        model.to_str().unwrap(),
        "--data",
        "x",
        "--normalize",
        "0.5:bad",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("normalisation"), "{}", stderr(&o));
}

fn analyze_args<'a>(model: &'a str, input: &'a str, out: &'a str) -> Vec<&'a str> {
    vec![
        "analyze",
        "--model",
        model,
        "--input-npy",
        input,
        "--blocks",
        "layer3.1,layer3.2",
        "--spectrum",
        "both",
        "--out",
        out,
        "--threads",
        "1",
    ]
}

/// Records without their timing, as a sorted list of JSON lines.
fn record_set(dir: &Path) -> Vec<String> {
    let mut lines: Vec<String> = std::fs::read_to_string(dir.join("records.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["seconds"] = serde_json::Value::Null;
            v.to_string()
        })
        .collect();
    lines.sort();
    lines
}

#[test]
fn killed_run_resumes_to_the_same_records() {
    let Some(shared) = shared() else { return };
    let model = shared.join("models/cifar10-resnet-akamaster/resnet20-12fca82f.th");
    let input = shared.join("golden/resnet20/input.npy");
    let (model, input) = (model.to_str().unwrap(), input.to_str().unwrap());
    let full = scratch("cli-resume-full");
    let o = tool(&analyze_args(model, input, full.to_str().unwrap()));
    assert!(o.status.success(), "{}", stderr(&o));
    let want = record_set(&full);
    assert_eq!(want.len(), 8, "2 blocks x 2 kinds x 2 spectra");

    // Without --resume an existing run is refused.
    let o = tool(&analyze_args(model, input, full.to_str().unwrap()));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));

    // A kill can leave any prefix of records.jsonl, including half a line.
    let text = std::fs::read_to_string(full.join("records.jsonl")).unwrap();
    for cut in [0, text.len() / 3, text.len() / 2 + 7, text.len() - 1] {
        let dir = scratch(&format!("resume-{cut}"));
        std::fs::copy(full.join("manifest.json"), dir.join("manifest.json")).unwrap();
        std::fs::write(dir.join("records.jsonl"), &text[..cut]).unwrap();
        let mut args = analyze_args(model, input, dir.to_str().unwrap());
        args.push("--resume");
        let o = tool(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(
            record_set(&dir),
            want,
            "resumed after cutting at byte {cut}"
        );
    }

    // Resuming with other options is refused.
    let mut args = analyze_args(model, input, full.to_str().unwrap());
    args.extend(["--resume", "--seed", "5"]);
    let o = tool(&args);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("incompatible"), "{}", stderr(&o));
}

#[test]
fn sigkill_then_resume_completes_the_run() {
    let Some(shared) = shared() else { return };
    let model = shared.join("models/cifar10-resnet-akamaster/resnet20-12fca82f.th");
    let input = shared.join("golden/resnet20/input.npy");
    let (model, input) = (model.to_str().unwrap(), input.to_str().unwrap());
    let dir = scratch("cli-sigkill");
    let mut child = Command::new(env!("CARGO_BIN_EXE_resnet-stiffness"))
        .args(analyze_args(model, input, dir.to_str().unwrap()))
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2500));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let mut args = analyze_args(model, input, dir.to_str().unwrap());
    args.push("--resume");
    let o = tool(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let records = record_set(&dir);
    assert_eq!(records.len(), 8);
    let mut keys: Vec<String> = records
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            format!("{} {} {}", v["block"], v["kind"], v["spectrum"])
        })
        .collect();
    keys.dedup();
    assert_eq!(keys.len(), 8, "no record doubled");
}

#[test]
fn shards_merge_to_the_unsharded_run() {
    let Some(shared) = shared() else { return };
    let model = shared.join("models/cifar10-resnet-akamaster/resnet20-12fca82f.th");
    let data = shared.join("data/cifar10-jpg/test");
    let (model, data) = (model.to_str().unwrap(), data.to_str().unwrap());
    let run = |out: &Path, shard: Option<&str>| {
        let mut args = vec![
            "analyze",
            "--model",
            model,
            "--data",
            data,
            "--normalize",
            "imagenet",
            "--per-class",
            "1",
            "--blocks",
            "layer3.2",
            "--jacobian",
            "block",
            "--no-eval",
            "--out",
            out.to_str().unwrap(),
        ];
        if let Some(s) = shard {
            args.extend(["--shard", s]);
        }
        let o = tool(&args);
        assert!(o.status.success(), "{}", stderr(&o));
    };
    let whole = scratch("cli-shard-whole");
    run(&whole, None);
    let (a, b, merged) = (
        scratch("cli-shard-0"),
        scratch("cli-shard-1"),
        scratch("cli-shard-merged"),
    );
    run(&a, Some("0/2"));
    run(&b, Some("1/2"));
    let o = tool(&[
        "merge",
        "--out",
        merged.to_str().unwrap(),
        a.to_str().unwrap(),
        b.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(record_set(&merged), record_set(&whole));
    assert_eq!(record_set(&whole).len(), 10, "one sample per class");
    // A shard of another run (different seed) is refused.
    let other = scratch("cli-shard-other");
    let manifest = std::fs::read_to_string(b.join("manifest.json")).unwrap();
    std::fs::write(
        other.join("manifest.json"),
        manifest.replace("\"seed\": 0", "\"seed\": 9"),
    )
    .unwrap();
    std::fs::copy(b.join("records.jsonl"), other.join("records.jsonl")).unwrap();
    let o = tool(&[
        "merge",
        "--out",
        scratch("cli-shard-bad").to_str().unwrap(),
        a.to_str().unwrap(),
        other.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("seed"), "{}", stderr(&o));
}

#[test]
fn analyze_rejects_bad_options_and_inputs_with_exit_2() {
    let Some(shared) = shared() else { return };
    let model = shared.join("models/cifar10-resnet-akamaster/resnet20-12fca82f.th");
    let input = shared.join("golden/resnet20/input.npy");
    let dir = scratch("cli-analyze-bad");
    let flat = dir.join("flat.npy");
    stiffness_checkpoint::npy::write_npy_f32(&flat, &[4, 5], &[0.0; 20]).unwrap();
    let junk = dir.join("junk.npy");
    std::fs::write(&junk, b"not an npy file").unwrap();
    let wide = dir.join("wide.npy");
    stiffness_checkpoint::npy::write_npy_f32(&wide, &[1, 3, 8, 12], &[0.5; 288]).unwrap();
    let out = dir.join("out");
    let (model, input, out) = (
        model.to_str().unwrap(),
        input.to_str().unwrap(),
        out.to_str().unwrap(),
    );
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--input-npy", flat.to_str().unwrap()], "flat.npy"),
        (vec!["--input-npy", junk.to_str().unwrap()], "junk.npy"),
        (vec!["--input-npy", input, "--shard", "3/2"], "--shard"),
        (
            vec!["--input-npy", input, "--blocks", "layer9.9"],
            "layer9.9",
        ),
        (
            vec!["--input-npy", input, "--jacobian", "hessian"],
            "hessian",
        ),
        (
            vec!["--input-npy", input, "--spectrum", "approximate"],
            "approximate",
        ),
        (
            vec!["--input-npy", wide.to_str().unwrap(), "--spectrum", "both"],
            "3x8x12",
        ),
        (vec!["--input-npy", input, "--name", " "], "--name is empty"),
        (
            vec!["--input-npy", input, "--arch", "preact-resnet50"],
            "pre-activation Bottleneck",
        ),
        (
            vec!["--input-npy", input, "--arch", "wrn-17-2"],
            "wrn-D-K with D = 6n + 4",
        ),
        (
            vec!["--input-npy", input, "--arch", "cifar-resnet18"],
            "does not fit cifar-resnet18",
        ),
        (vec!["--input-npy", input, "--solver", "lapack"], "--solver"),
        (
            vec!["--input-npy", input, "--dense-seconds", "nan"],
            "--dense-seconds",
        ),
        (
            vec![
                "--input-npy",
                input,
                "--solver",
                "dense",
                "--max-memory",
                "64M",
                "--blocks",
                "layer1.0",
            ],
            "use --solver auto or krylov",
        ),
    ];
    for (extra, needle) in cases {
        let mut args = vec!["analyze", "--model", model, "--out", out];
        args.extend(extra);
        let o = tool(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(needle), "{args:?}: {}", stderr(&o));
        assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
        assert!(!Path::new(out).exists(), "{args:?} left {out}");
    }
}

/// `--dry-run` prints the plan and writes nothing; `--solver krylov` writes
/// records with their evidence; `auto` with `--dense-seconds 60` turns a
/// stage-1 block (s ~ 8000: ~5 min estimated) matrix-free and keeps a
/// stage-3 one (s <= 4096: < 45 s) dense.
#[test]
fn dry_run_plans_and_solver_chooses_the_method() {
    let Some(shared) = shared() else { return };
    let model = shared.join("models/cifar10-resnet-akamaster/resnet20-12fca82f.th");
    let input = shared.join("golden/resnet20/input.npy");
    let dir = scratch("cli-solver");
    let out = dir.join("plan");
    let (model, input) = (model.to_str().unwrap(), input.to_str().unwrap());
    let base = [
        "analyze",
        "--model",
        model,
        "--input-npy",
        input,
        "--threads",
        "1",
    ];
    let mut args = base.to_vec();
    args.extend([
        "--out",
        out.to_str().unwrap(),
        "--dry-run",
        "--blocks",
        "layer1.0,layer3.2",
    ]);
    let o = tool(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let plan = String::from_utf8_lossy(&o.stdout);
    for needle in [
        "layer1.0",
        "layer3.2",
        "16384",
        "dense time",
        "krylov mem",
        "dense",
    ] {
        assert!(plan.contains(needle), "{needle} not in\n{plan}");
    }
    assert!(!out.exists(), "--dry-run wrote {}", out.display());

    let out = dir.join("auto");
    let mut args = base.to_vec();
    args.extend([
        "--out",
        out.to_str().unwrap(),
        "--blocks",
        "layer1.0,layer3.2",
        "--jacobian",
        "residual",
        "--dense-seconds",
        "60",
    ]);
    let o = tool(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let records = stiffness_records::read_records(&out).unwrap();
    let method = |block: &str| records.iter().find(|r| r.block == block).unwrap().clone();
    let (big, small) = (method("layer1.0"), method("layer3.2"));
    assert_eq!(big.method, stiffness_records::Method::Krylov, "{big:?}");
    assert_eq!(small.method, stiffness_records::Method::Dense, "{small:?}");
    assert_eq!(big.converged, Some(true));
    assert!(big.applications.unwrap() > 0 && big.max_re_residual.is_some());
    assert!(big.neg_share.is_none() && big.not_computed.as_deref().unwrap().contains("neg_share"));
    assert!(small.neg_share.is_some() && small.applications.is_none());
    let csv = std::fs::read_to_string(out.join("records.csv")).unwrap();
    assert!(csv.lines().nth(1).unwrap().contains("krylov") || csv.contains(",krylov,"));
}

/// `train`, then `export`; the command line that `export` records, run again
/// into another folder, trains bit-identical weights (the run is a pure
/// function of its options).
/// `train` arguments for a tiny ResNet8 run on the first `limit` training
/// images of `data`: batch 16, 2 threads.
fn tiny_training(data: &Path, out: &Path, epochs: &str, limit: &str) -> Vec<String> {
    [
        "train",
        "--arch",
        "resnet8",
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--epochs",
        epochs,
        "--batch-size",
        "16",
        "--limit",
        limit,
        "--threads",
        "2",
    ]
    .map(String::from)
    .to_vec()
}

#[test]
fn exported_command_line_retrains_identical_weights() {
    let Some(shared) = shared() else { return };
    let data = shared.join("data/cifar10-jpg");
    let dir = scratch("cli-train-export");
    let (run, again, model) = (dir.join("run"), dir.join("again"), dir.join("model"));
    let (data, run_s, again_s) = (
        data.to_str().unwrap(),
        run.to_str().unwrap(),
        again.to_str().unwrap(),
    );
    let o = tool(&tiny_training(Path::new(data), &run, "1", "64"));
    assert!(o.status.success(), "{}", stderr(&o));
    let o = tool(&["export", "--run", run_s, "--out", model.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("held-out accuracy"));
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(model.join("training.json")).unwrap()).unwrap();
    let command = record["command"].as_str().unwrap().replace(run_s, again_s);
    let args: Vec<&str> = command.split_whitespace().skip(1).collect();
    let o = tool(&args);
    assert!(o.status.success(), "{command}: {}", stderr(&o));
    let weights = |d: &Path| std::fs::read(d.join("model.safetensors")).unwrap();
    assert!(
        weights(&run) == weights(&again),
        "{command} trained other weights"
    );
    let o = tool(&["export", "--run", run_s, "--out", again_s, "--dtype", "f8"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--dtype f8"), "{}", stderr(&o));
}

/// Stiffness across training, end to end: `train` writes a checkpoint per
/// epoch, `analyze` runs on each with the same samples, and `report
/// --across-training` adds the trends; one checkpoint alone is refused.
#[test]
fn report_follows_stiffness_across_training_checkpoints() {
    let Some(shared) = shared() else { return };
    let data = shared.join("data/cifar10-jpg");
    let dir = scratch("cli-across-training");
    let run = dir.join("run");
    let o = tool(&tiny_training(&data, &run, "2", "64"));
    assert!(o.status.success(), "{}", stderr(&o));
    let test = data.join("test");
    let analyses: Vec<PathBuf> = ["epoch-001", "epoch-002"]
        .iter()
        .map(|epoch| {
            let out = dir.join(epoch);
            let model = run.join(format!("{epoch}.safetensors"));
            // 8x8 inputs keep layer1.0's Jacobian at 16 * 8 * 8 = 1024.
            let o = tool(&[
                "analyze",
                "--model",
                model.to_str().unwrap(),
                "--data",
                test.to_str().unwrap(),
                "--resize",
                "8",
                "--samples",
                "3",
                "--blocks",
                "layer1.0",
                "--jacobian",
                "block",
                "--no-eval",
                "--out",
                out.to_str().unwrap(),
            ]);
            assert!(o.status.success(), "{}", stderr(&o));
            out
        })
        .collect();
    let report = dir.join("report");
    let mut args = vec![
        "report",
        "--across-training",
        "--out",
        report.to_str().unwrap(),
    ];
    args.push("--records");
    args.extend(analyses.iter().map(|d| d.to_str().unwrap()));
    let o = tool(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let md = std::fs::read_to_string(report.join("report.md")).unwrap();
    assert!(md.contains("## Trends across training"), "{md}");
    let trends = std::fs::read_to_string(report.join("trends.csv")).unwrap();
    let row = trends
        .lines()
        .find(|l| l.starts_with("training,layer1.0,,block,exact,spectral_radius,"))
        .unwrap_or_else(|| panic!("no training row in {trends}"));
    assert!(row.contains("epoch-001;epoch-002"), "{row}");

    let lone = dir.join("lone-report");
    let o = tool(&[
        "report",
        "--across-training",
        "--out",
        lone.to_str().unwrap(),
        "--records",
        analyses[0].to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("at least two checkpoints"),
        "{}",
        stderr(&o)
    );
    assert!(!lone.exists(), "nothing is written for a refused report");
}

/// A training run killed (SIGKILL) part-way through an epoch, after a
/// mid-epoch save, and resumed, ends with the same weights, bit for bit, as
/// an uninterrupted run; no stale mid-epoch or momentum files remain.
/// `export` refuses the run while its last save is mid-epoch.
#[test]
fn training_killed_mid_epoch_resumes_bit_identically() {
    let Some(shared) = shared() else { return };
    let data = shared.join("data/cifar10-jpg");
    let dir = scratch("cli-train-kill");
    let args = |out: &Path| -> Vec<String> {
        let mut args = tiny_training(&data, out, "2", "512");
        args.extend(["--save-minutes".into(), "0".into()]);
        args
    };
    let (whole, cut) = (dir.join("whole"), dir.join("cut"));
    let o = Command::new(env!("CARGO_BIN_EXE_resnet-stiffness"))
        .args(args(&whole))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));

    let mut child = Command::new(env!("CARGO_BIN_EXE_resnet-stiffness"))
        .args(args(&cut))
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let state_path = cut.join("train_state.json");
    let killed_at = loop {
        std::thread::sleep(std::time::Duration::from_millis(10));
        let state: Option<serde_json::Value> = std::fs::read(&state_path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        if let Some(state) = state.filter(|s| s["step"].as_u64() >= Some(40)) {
            child.kill().unwrap(); // SIGKILL
            break state;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it was killed"
        );
    };
    child.wait().unwrap();
    assert_eq!(killed_at["epoch"], 1, "{killed_at}");
    assert!(
        killed_at["partial"]["batches"].as_u64() > Some(0),
        "{killed_at}"
    );

    let o = tool(&[
        "export",
        "--run",
        cut.to_str().unwrap(),
        "--out",
        dir.join("x").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("part-way through epoch 2"),
        "{}",
        stderr(&o)
    );
    let mut resume = args(&cut);
    resume.push("--resume".into());
    let o = Command::new(env!("CARGO_BIN_EXE_resnet-stiffness"))
        .args(&resume)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let bytes = |d: &Path, f: &str| std::fs::read(d.join(f)).unwrap();
    assert!(bytes(&whole, "model.safetensors") == bytes(&cut, "model.safetensors"));
    let history = |d: &Path| {
        let v: serde_json::Value = serde_json::from_slice(&bytes(d, "train_state.json")).unwrap();
        let h = v["history"].as_array().unwrap().clone();
        h.iter()
            .map(|r| (r["loss"].clone(), r["test_acc"].clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(history(&whole), history(&cut));
    let mut names: Vec<String> = std::fs::read_dir(&cut)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("partial-") || n.starts_with("optimizer"))
        .collect();
    names.sort();
    assert_eq!(names, ["optimizer-step0000064.safetensors"]);

    // The finished run exports; its record gives the command that starts
    // the run (a resumed run ends with the same weights), not `--resume`.
    let record = dir.join("exported");
    let o = tool(&[
        "export",
        "--run",
        cut.to_str().unwrap(),
        "--out",
        record.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let json: serde_json::Value = serde_json::from_slice(&bytes(&record, "training.json")).unwrap();
    let command = json["command"].as_str().unwrap();
    assert!(!command.contains("--resume"), "{command}");
    assert!(
        command.contains(&format!("--out {}", cut.display())),
        "{command}"
    );
}

/// The README's first command on the bundled default (no shared data
/// needed), cut down to one image per class and the last block: evaluation,
/// 40 records (10 images x 2 kinds x 2 spectra) and the report.
#[test]
fn demo_runs_on_the_bundled_default() {
    let dir = scratch("cli-demo");
    let out = dir.to_str().unwrap();
    let o = tool(&[
        "demo",
        "--per-class",
        "1",
        "--blocks",
        "layer4.1",
        "--out",
        out,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(record_set(&dir.join("records")).len(), 40);
    let report = std::fs::read_to_string(dir.join("report/report.md")).unwrap();
    assert!(report.contains("layer4.1"), "{report}");
    let eval: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("records/eval.json")).unwrap()).unwrap();
    assert_eq!(eval["count"], 1000);
    assert!(eval["accuracy"].as_f64().unwrap() > 0.85, "{eval}");
    // The exported model is named by its folder, and the bundled files keep
    // the relative paths the README uses.
    let records = stiffness_records::read_records(&dir.join("records")).unwrap();
    assert!(records.iter().all(|r| r.model == "fashion-mnist-resnet18"));
    let manifest = stiffness_records::read_manifest(&dir.join("records")).unwrap();
    assert_eq!(
        manifest.model_path,
        "assets/fashion-mnist-resnet18/model.safetensors"
    );
    assert!(report.contains("| fashion-mnist-resnet18 |"), "{report}");
}

/// `analyze` is one library call: `analysis::analyze` with the settings the
/// command builds gives the command's records; `--name` names the model in
/// every record and in the manifest.
#[test]
fn the_library_call_is_the_command_and_name_names_the_model() {
    use resnet_stiffness::analysis::{self, BlockFilter, Sampling, Settings, Silent, Source};
    use resnet_stiffness::model::JacobianKind;
    use stiffness_records::SpectrumVariant;
    let Some(shared) = shared() else { return };
    let model = shared.join("models/cifar10-resnet-akamaster/resnet20-12fca82f.th");
    let input = shared.join("golden/resnet20/input.npy");
    let cli = scratch("cli-named");
    let mut args = analyze_args(
        model.to_str().unwrap(),
        input.to_str().unwrap(),
        cli.to_str().unwrap(),
    );
    args.extend(["--name", "akamaster-r20"]);
    let o = tool(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let records = stiffness_records::read_records(&cli).unwrap();
    assert_eq!(records.len(), 8);
    assert!(records.iter().all(|r| r.model == "akamaster-r20"));
    let manifest = stiffness_records::read_manifest(&cli).unwrap();
    assert_eq!(manifest.name.as_deref(), Some("akamaster-r20"));

    let lib = scratch("cli-library");
    let settings = Settings {
        model,
        arch: None,
        name: Some("akamaster-r20".into()),
        source: Source::Tensors(input),
        sampling: Sampling::PerClass(1),
        seed: 0,
        blocks: BlockFilter::Named(vec!["layer3.1".into(), "layer3.2".into()]),
        kinds: JacobianKind::ALL.to_vec(),
        variants: vec![SpectrumVariant::Exact, SpectrumVariant::PaperCompat],
        shard: None,
        threads: 1,
        save_eigenvalues: false,
        evaluate: true,
        max_memory: None,
        solver: resnet_stiffness::analysis::plan::Solver::Auto,
        dense_seconds: resnet_stiffness::analysis::plan::DEFAULT_DENSE_SECONDS,
    };
    assert_eq!(
        analysis::analyze(&settings, &lib, false, &Silent).unwrap(),
        8
    );
    assert_eq!(record_set(&lib), record_set(&cli));
}

/// Output piped into a reader that closes early (`| head`) ends the tool
/// quietly: no panic message.
#[test]
fn closed_stdout_is_not_a_panic() {
    let model = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("assets/fashion-mnist-resnet18/model.safetensors");
    let mut child = Command::new(env!("CARGO_BIN_EXE_resnet-stiffness"))
        .args(["inspect", "--model", model.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader goes away before the tool writes
    let o = child.wait_with_output().unwrap();
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
}
