//! Side-by-side benchmark of berthd and Debian's containerd 1.6 (see `berth_tests::bench`).
//! `scripts/bench` builds both in release mode and runs this; `bench --quick` is the smoke mode.

use std::process::ExitCode;

use berth_tests::bench::{self, Command};

fn main() -> ExitCode {
    let command = match bench::parse(std::env::args().skip(1)) {
        Ok(command) => command,
        Err(err) => {
            eprintln!("bench: {err:#}\n\n{}", bench::USAGE);
            return ExitCode::from(2);
        }
    };
    let options = match command {
        Command::Help => {
            println!("{}", bench::USAGE);
            return ExitCode::SUCCESS;
        }
        Command::List => {
            for (name, summary) in bench::list(&bench::Options::full()) {
                println!("{name:10} {summary}");
            }
            return ExitCode::SUCCESS;
        }
        Command::Run(options) => options,
    };
    match bench::run(&options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("bench: {err:#}");
            ExitCode::FAILURE
        }
    }
}
