//! A section is one comparison (import, metadata operations, ...) run against both daemons.
//! Sections are listed in one place, so each gets `--only`, the table and cleanup for free.

use std::path::Path;

use super::daemons::Daemons;
use super::import::Import;
use super::metadata::Metadata;
use super::options::Options;
use super::report::{Row, Target};
use super::snapshots::Snapshots;

/// What a section gets to work with (its sizes come from the options when it is listed).
pub struct Bench<'a> {
    pub daemons: &'a Daemons,
    /// A temp dir for tarballs and other inputs, removed at the end.
    pub work: &'a Path,
}

/// What a section found: rows for the table and notes printed below it (per-run figures,
/// breakdowns, consistency checks).
#[derive(Debug, Default)]
pub struct SectionReport {
    pub rows: Vec<Row>,
    pub notes: Vec<String>,
}

pub trait Section {
    /// The name `--only` selects it by.
    fn name(&self) -> &'static str;
    /// One line on what it measures, with the sizes in use.
    fn summary(&self) -> String;
    fn run(&self, bench: &Bench) -> anyhow::Result<SectionReport>;
}

/// Issue 2's target for metadata operations: Berth at least twice as fast.
pub const METADATA_TARGET: Target = Target::AtLeast(2.0);
/// Issue 3's target for `ctr images import` with unpack: Berth at least 1.5 times as fast.
pub const UNPACK_TARGET: Target = Target::AtLeast(1.5);
/// Issue 3's target for snapshot prepare+remove: Berth at least twice as fast.
pub const SNAPSHOT_TARGET: Target = Target::AtLeast(2.0);
/// Issue 2's target for idle memory: at most a third of containerd's.
pub const RSS_TARGET: Target = Target::AtMost(1.0 / 3.0);

/// Every section, in the order they run, sized by `options`.
pub fn all(options: &Options) -> Vec<Box<dyn Section>> {
    vec![
        Box::new(Import {
            name: "import",
            unpack: false,
            mib: options.import_mib,
            layers: options.import_layers,
            runs: options.runs,
            // Issue 2 sets no target for import without unpack; the figure is for reference.
            target: None,
        }),
        Box::new(Metadata { ops: options.ops }),
        Box::new(Import {
            name: "unpack",
            unpack: true,
            mib: options.unpack_mib,
            layers: options.unpack_layers,
            runs: options.runs,
            target: Some(UNPACK_TARGET),
        }),
        Box::new(Snapshots {
            ops: options.snapshot_ops,
        }),
    ]
}
