//! The command line: options ([`args`]), one function per subcommand
//! ([`commands`]) and progress output ([`progress`]).

pub mod args;
pub mod commands;
pub mod progress;
