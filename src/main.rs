//! `resnet-stiffness`: a thin command line over the library. It parses the
//! options and dispatches; every subcommand is a library call (see
//! `cli::commands`).

mod cli;

use std::process::ExitCode;

use clap::Parser;
use cli::args::{Cli, Command};
use cli::commands;

/// Let a closed stdout (`resnet-stiffness inspect ... | head`) end the
/// process quietly, as it does for other Unix tools, instead of making
/// `println!` panic: restore SIGPIPE's default action, which Rust's runtime
/// sets to "ignore".
fn exit_quietly_on_closed_pipe() {
    #[cfg(unix)]
    {
        extern "C" {
            fn signal(signum: i32, handler: usize) -> usize;
        }
        const SIGPIPE: i32 = 13;
        const SIG_DFL: usize = 0;
        // SAFETY: `signal` is the C library's; resetting SIGPIPE to its
        // default action at start-up, before any thread exists, is sound.
        unsafe {
            signal(SIGPIPE, SIG_DFL);
        }
    }
}

fn main() -> ExitCode {
    exit_quietly_on_closed_pipe();
    // With no arguments the tool runs its main job on the built-in default.
    let args: Vec<String> = std::env::args().collect();
    let cli = if args.len() == 1 {
        Cli::parse_from([args[0].as_str(), "demo"])
    } else {
        Cli::parse()
    };
    let result = match cli.command {
        Command::Demo(a) => commands::demo(a),
        Command::Inspect(a) => commands::inspect(a),
        Command::Eval(a) => commands::eval(a),
        Command::Analyze(a) => commands::analyze(a),
        Command::Merge(a) => commands::merge(a),
        Command::Report(a) => commands::report(a),
        Command::Bench(a) => commands::bench(a),
        Command::Train(a) => commands::train(a),
        Command::Export(a) => commands::export(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code() as u8)
        }
    }
}
