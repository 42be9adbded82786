//! Command line of the benchmark. Hand-parsed: a handful of flags does not need a parser crate.

use std::time::Duration;

use anyhow::{bail, Context};

pub const USAGE: &str = "\
usage: bench [--quick] [--only SECTION[,SECTION...]] [--ops N] [--import-mib N]
             [--import-layers N] [--unpack-mib N] [--unpack-layers N] [--snapshot-ops N]
             [--runs N] [--list] [--help]

Drives the same workload against berthd and Debian's containerd 1.6, both started on private
temp paths in this run, and prints both figures and their ratio. Needs root, /usr/bin/ctr and
/usr/bin/containerd; berthd comes from $BERTHD_BIN (scripts/bench sets it to a release build).

  --quick              smoke mode: 20 metadata ops, 10 MiB images, 10 snapshot pairs,
                       short settle times
  --only LIST          run only these sections (see --list); idle RSS is always measured
  --ops N              metadata operations per view (default 1000)
  --import-mib N       size of the generated import image in MiB (default 200)
  --import-layers N    layers of the generated import image (default 8)
  --unpack-mib N       size of the image imported with unpack in MiB (default 300)
  --unpack-layers N    layers of the image imported with unpack (default 10)
  --snapshot-ops N     snapshot prepare+remove pairs per view (default 100)
  --runs N             import runs per daemon, with and without unpack; the median is
                       reported (default 3)
  --list               list the sections and exit";

#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub quick: bool,
    /// Sections to run by name; `None` runs all of them.
    pub only: Option<Vec<String>>,
    pub ops: usize,
    pub import_mib: u64,
    pub import_layers: usize,
    pub unpack_mib: u64,
    pub unpack_layers: usize,
    pub snapshot_ops: usize,
    pub runs: usize,
    /// How long daemons sit untouched before their idle RSS is read.
    pub settle: Duration,
}

/// What the command line asks for.
#[derive(Debug, PartialEq)]
pub enum Command {
    Run(Options),
    List,
    Help,
}

impl Options {
    pub fn full() -> Options {
        Options {
            quick: false,
            only: None,
            ops: 1000,
            import_mib: 200,
            import_layers: 8,
            unpack_mib: 300,
            unpack_layers: 10,
            snapshot_ops: 100,
            runs: 3,
            settle: Duration::from_secs(3),
        }
    }

    pub fn quick() -> Options {
        Options {
            quick: true,
            ops: 20,
            import_mib: 10,
            unpack_mib: 10,
            snapshot_ops: 10,
            settle: Duration::from_millis(500),
            ..Options::full()
        }
    }

    /// Whether section `name` is selected.
    pub fn wants(&self, name: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|names| names.iter().any(|n| n == name))
    }
}

fn number<T: std::str::FromStr>(flag: &str, value: Option<String>) -> anyhow::Result<T>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    let value = value.with_context(|| format!("{flag} needs a value"))?;
    value
        .parse()
        .with_context(|| format!("{flag}: {value:?} is not a number"))
}

/// Parses the arguments after the program name. `--quick` sets defaults that later flags can
/// still override, wherever it appears.
pub fn parse(args: impl IntoIterator<Item = String>) -> anyhow::Result<Command> {
    let args: Vec<String> = args.into_iter().collect();
    let mut options = if args.iter().any(|a| a == "--quick") {
        Options::quick()
    } else {
        Options::full()
    };
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => {}
            "--help" | "-h" => return Ok(Command::Help),
            "--list" => return Ok(Command::List),
            "--only" => {
                let list = args.next().context("--only needs a list of sections")?;
                let names: Vec<String> = list
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect();
                if names.is_empty() {
                    bail!("--only needs at least one section");
                }
                options.only = Some(names);
            }
            "--ops" => options.ops = number("--ops", args.next())?,
            "--import-mib" => options.import_mib = number("--import-mib", args.next())?,
            "--import-layers" => options.import_layers = number("--import-layers", args.next())?,
            "--unpack-mib" => options.unpack_mib = number("--unpack-mib", args.next())?,
            "--unpack-layers" => options.unpack_layers = number("--unpack-layers", args.next())?,
            "--snapshot-ops" => options.snapshot_ops = number("--snapshot-ops", args.next())?,
            "--runs" => options.runs = number("--runs", args.next())?,
            other => bail!("unknown argument {other:?}"),
        }
    }
    if options.ops == 0
        || options.runs == 0
        || options.import_layers == 0
        || options.unpack_layers == 0
        || options.snapshot_ops == 0
    {
        bail!(
            "--ops, --runs, --import-layers, --unpack-layers and --snapshot-ops must be at least 1"
        );
    }
    if options.import_mib == 0 || options.unpack_mib == 0 {
        bail!("--import-mib and --unpack-mib must be at least 1");
    }
    Ok(Command::Run(options))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Options {
        match parse(args.iter().map(|s| s.to_string())).expect("parses") {
            Command::Run(o) => o,
            other => panic!("expected a run, got {other:?}"),
        }
    }

    #[test]
    fn defaults_quick_and_overrides() {
        assert_eq!(run(&[]), Options::full());
        let quick = run(&["--quick"]);
        assert_eq!((quick.ops, quick.import_mib), (20, 10));
        assert_eq!((quick.unpack_mib, quick.snapshot_ops), (10, 10));
        assert_eq!(
            run(&["--snapshot-ops", "7", "--unpack-layers", "3"]).snapshot_ops,
            7
        );
        // An explicit flag wins over --quick, on either side of it.
        assert_eq!(run(&["--ops", "50", "--quick"]).ops, 50);
        let only = run(&["--only", "metadata, import"]);
        assert!(only.wants("import") && only.wants("metadata") && !only.wants("snapshots"));
        assert!(Options::full().wants("anything"));
    }

    #[test]
    fn refuses_bad_input() {
        for bad in [
            &["--ops"][..],
            &["--ops", "many"],
            &["--ops", "0"],
            &["--snapshot-ops", "0"],
            &["--unpack-mib", "0"],
            &["--only", ","],
            &["--frobnicate"],
        ] {
            assert!(parse(bad.iter().map(|s| s.to_string())).is_err(), "{bad:?}");
        }
        assert_eq!(
            parse(["--help".to_string()]).expect("parses"),
            Command::Help
        );
    }
}
