//! Command-line commands; one file per command.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod bench;
mod common;
mod generate;
mod jam;
mod logging;
mod ports;
mod report;
mod run;
mod tokenize;

/// Real-time AI piano accompaniment over MIDI, with Aria under ONNX Runtime.
#[derive(Debug, Parser)]
#[command(name = "aria-bridge", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The live daemon: follow a MIDI clock and a player, answer bar by bar on the output port.
    Run(run::Args),
    /// Headless jam: an internal clock plays a human MIDI file through the engine and writes the session.
    Jam(jam::Args),
    /// Print the Aria tokens of a MIDI file as one JSON array.
    Tokenize(tokenize::Args),
    /// Continue a MIDI prompt with the model.
    Generate(generate::Args),
    /// Measure prefill, decode and whole-bar latency of a model.
    Bench(bench::Args),
    /// List the MIDI input and output ports this build can see.
    Ports(ports::Args),
    /// Latency figures, advice and plots from a `--log` file; piano roll of a session.
    Report(report::Args),
}

/// Parses the command line and runs the command.
pub fn run() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    let _console = logging::init();
    match cli.command {
        Command::Run(a) => run::run(a),
        Command::Jam(a) => jam::run(a),
        Command::Tokenize(a) => tokenize::run(a),
        Command::Generate(a) => generate::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Ports(a) => ports::run(a),
        Command::Report(a) => report::run(a),
    }
}
