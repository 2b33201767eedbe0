//! Progress on stderr: a bar with an ETA on a terminal, and a status line
//! at most once a minute when stderr is redirected (a log file).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{HumanDuration, ProgressBar, ProgressState, ProgressStyle};
use resnet_stiffness::analysis::Progress;

/// How often a long job logs a status line when its progress bar is hidden
/// (stderr is not a terminal, e.g. redirected to a log file).
const LOG_EVERY: Duration = Duration::from_secs(60);

/// Status lines for a hidden progress bar, at most one per [`LOG_EVERY`].
pub struct StatusLog {
    last: Mutex<Instant>,
}

impl StatusLog {
    pub fn new() -> Self {
        Self {
            last: Mutex::new(Instant::now()),
        }
    }

    /// Print `line()` on stderr when `bar` is hidden and a line is due.
    pub fn maybe(&self, bar: &ProgressBar, line: impl FnOnce() -> String) {
        if !bar.is_hidden() {
            return;
        }
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if last.elapsed() >= LOG_EVERY {
            *last = Instant::now();
            eprintln!("{}", line());
        }
    }
}

/// Seconds left at the mean pace so far (elapsed / done x left). indicatif's
/// own running estimate swings by orders of magnitude when steps take tens
/// of seconds each (the analysis's units).
pub fn mean_pace_eta(done: u64, total: u64, elapsed: Duration) -> f64 {
    if done == 0 {
        return 0.0;
    }
    elapsed.as_secs_f64() / done as f64 * total.saturating_sub(done) as f64
}

/// A progress bar of `total` steps labelled `what`.
pub fn bar(total: usize, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(total as u64);
    let style =
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {per_sec} ETA {eta} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(what.to_string());
    bar.enable_steady_tick(Duration::from_millis(500));
    bar
}

/// A line above the progress bar, or on stderr when the bar is hidden (not a terminal).
pub fn say(pb: &ProgressBar, line: String) {
    if pb.is_hidden() {
        eprintln!("{line}");
    } else {
        pb.println(line);
    }
}

/// The analysis job's progress: the evaluation, then the (sample, block)
/// units, with status lines when the bar is hidden.
pub struct JobBar {
    pub bar: ProgressBar,
    log: StatusLog,
}

impl JobBar {
    pub fn new() -> Self {
        let bar = bar(0, "eval");
        let style = ProgressStyle::with_template(
            "{prefix} [{bar:30}] {pos}/{len} {per_sec} ETA {mean_eta} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .with_key(
            "mean_eta",
            |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                let secs = mean_pace_eta(state.pos(), state.len().unwrap_or(0), state.elapsed());
                let _ = write!(w, "{:#}", HumanDuration(Duration::from_secs_f64(secs)));
            },
        )
        .progress_chars("=> ");
        bar.set_style(style);
        Self {
            bar,
            log: StatusLog::new(),
        }
    }
}

impl Progress for JobBar {
    fn evaluated(&self, done: usize, total: usize) {
        self.bar.set_length(total as u64);
        self.bar.set_position(done as u64);
    }

    fn start(&self, total: usize, skipped: usize) {
        self.bar.reset();
        self.bar.set_prefix("analyze");
        self.bar.set_length(total as u64);
        if skipped > 0 {
            say(
                &self.bar,
                format!("resuming: {skipped} (sample, block) units already done"),
            );
        }
    }

    fn unit_done(&self, block: &str, seconds: f64) {
        let status = format!("last: {block} {seconds:.1}s");
        self.bar.inc(1);
        self.log.maybe(&self.bar, || {
            format!(
                "{}/{} units, {status}, ETA {:.0} s",
                self.bar.position(),
                self.bar.length().unwrap_or(0),
                mean_pace_eta(
                    self.bar.position(),
                    self.bar.length().unwrap_or(0),
                    self.bar.elapsed()
                )
            )
        });
        self.bar.set_message(status);
    }
}
