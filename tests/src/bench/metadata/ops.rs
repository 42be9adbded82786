//! The metadata workload: one fixed sequence of everyday `ctr` commands on a namespace holding a
//! small image. The same sequence drives both daemons, through ctr and through the gRPC mirror,
//! so every daemon sees the same requests against the same state.

use std::fmt;

/// The label every labelling operation sets (its value changes each round).
pub const LABEL_KEY: &str = "bench.round";

/// What the sequence works on: the namespace and the image imported into it beforehand.
#[derive(Debug, Clone)]
pub struct Fixture {
    pub namespace: String,
    pub image: String,
    /// Blobs of the image (manifest, config, layers), labelled in turn.
    pub digests: Vec<String>,
}

/// The kinds of operation, for the per-kind breakdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    ContentList,
    ContentLabel,
    ImageList,
    ImageTag,
    LeaseCreate,
    ImageLabel,
    LeaseList,
    ImageRemove,
    LeaseRemove,
    NamespaceLabel,
}

impl Kind {
    /// The ctr command, as shown in the breakdown.
    pub fn command(self) -> &'static str {
        match self {
            Kind::ContentList => "content ls",
            Kind::ContentLabel => "content label",
            Kind::ImageList => "images ls",
            Kind::ImageTag => "images tag",
            Kind::LeaseCreate => "leases create",
            Kind::ImageLabel => "images label",
            Kind::LeaseList => "leases ls",
            Kind::ImageRemove => "images rm",
            Kind::LeaseRemove => "leases rm",
            Kind::NamespaceLabel => "namespaces label",
        }
    }
}

/// One operation of the sequence, with everything needed to issue it either way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    ContentList,
    ContentLabel { digest: String, value: String },
    ImageList,
    ImageTag { source: String, target: String },
    LeaseCreate { id: String },
    ImageLabel { name: String, value: String },
    LeaseList,
    ImageRemove { name: String },
    LeaseRemove { id: String },
    NamespaceLabel { namespace: String, value: String },
}

/// Operations per round; a round leaves the namespace as it found it, apart from label values.
pub const ROUND: usize = 10;

/// The first `count` operations of the workload on `fixture`: rounds of reads and writes over
/// content, images, leases and the namespace, each round tagging and removing an image and
/// creating and removing a lease.
pub fn sequence(fixture: &Fixture, count: usize) -> Vec<Op> {
    (0..count)
        .map(|i| {
            let round = i / ROUND;
            let value = round.to_string();
            let tag = format!("{}-r{round}", fixture.image);
            let lease = format!("bench-lease-{round}");
            match i % ROUND {
                0 => Op::ContentList,
                1 => Op::ContentLabel {
                    digest: fixture.digests[round % fixture.digests.len()].clone(),
                    value,
                },
                2 => Op::ImageList,
                3 => Op::ImageTag {
                    source: fixture.image.clone(),
                    target: tag,
                },
                4 => Op::LeaseCreate { id: lease },
                5 => Op::ImageLabel {
                    name: fixture.image.clone(),
                    value,
                },
                6 => Op::LeaseList,
                7 => Op::ImageRemove { name: tag },
                8 => Op::LeaseRemove { id: lease },
                _ => Op::NamespaceLabel {
                    namespace: fixture.namespace.clone(),
                    value,
                },
            }
        })
        .collect()
}

impl Op {
    pub fn kind(&self) -> Kind {
        match self {
            Op::ContentList => Kind::ContentList,
            Op::ContentLabel { .. } => Kind::ContentLabel,
            Op::ImageList => Kind::ImageList,
            Op::ImageTag { .. } => Kind::ImageTag,
            Op::LeaseCreate { .. } => Kind::LeaseCreate,
            Op::ImageLabel { .. } => Kind::ImageLabel,
            Op::LeaseList => Kind::LeaseList,
            Op::ImageRemove { .. } => Kind::ImageRemove,
            Op::LeaseRemove { .. } => Kind::LeaseRemove,
            Op::NamespaceLabel { .. } => Kind::NamespaceLabel,
        }
    }

    /// The ctr arguments (after `-a` and `-n`) that perform this operation.
    pub fn ctr_args(&self) -> Vec<String> {
        let label = |value: &str| format!("{LABEL_KEY}={value}");
        let words: Vec<String> = match self {
            Op::ContentList => vec!["content".into(), "ls".into()],
            Op::ContentLabel { digest, value } => {
                vec![
                    "content".into(),
                    "label".into(),
                    digest.clone(),
                    label(value),
                ]
            }
            Op::ImageList => vec!["images".into(), "ls".into()],
            Op::ImageTag { source, target } => {
                vec![
                    "images".into(),
                    "tag".into(),
                    source.clone(),
                    target.clone(),
                ]
            }
            Op::LeaseCreate { id } => {
                vec!["leases".into(), "create".into(), "--id".into(), id.clone()]
            }
            Op::ImageLabel { name, value } => {
                vec!["images".into(), "label".into(), name.clone(), label(value)]
            }
            Op::LeaseList => vec!["leases".into(), "ls".into()],
            Op::ImageRemove { name } => vec!["images".into(), "rm".into(), name.clone()],
            Op::LeaseRemove { id } => vec!["leases".into(), "rm".into(), id.clone()],
            Op::NamespaceLabel { namespace, value } => {
                vec![
                    "namespaces".into(),
                    "label".into(),
                    namespace.clone(),
                    label(value),
                ]
            }
        };
        words
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ctr {}", self.ctr_args().join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> Fixture {
        Fixture {
            namespace: "bench".into(),
            image: "docker.io/berth/x:1".into(),
            digests: vec!["sha256:a".into(), "sha256:b".into()],
        }
    }

    #[test]
    fn rounds_pair_creates_with_removes() {
        let ops = sequence(&fixture(), 2 * ROUND + 3);
        assert_eq!(ops.len(), 23);
        let kinds: Vec<Kind> = ops.iter().map(Op::kind).collect();
        assert_eq!(
            kinds[..ROUND],
            kinds[ROUND..2 * ROUND],
            "every round is alike"
        );
        for round in ops.chunks(ROUND).take(2) {
            match (&round[3], &round[7], &round[4], &round[8]) {
                (
                    Op::ImageTag { target, .. },
                    Op::ImageRemove { name },
                    Op::LeaseCreate { id },
                    Op::LeaseRemove { id: removed },
                ) => {
                    assert_eq!(target, name);
                    assert_eq!(id, removed);
                }
                other => panic!("unexpected round {other:?}"),
            }
        }
        assert_eq!(
            ops[1].to_string(),
            "ctr content label sha256:a bench.round=0"
        );
        assert_eq!(
            ops[11].ctr_args()[2],
            "sha256:b",
            "labels rotate over the blobs"
        );
        assert_eq!(
            ops[14].ctr_args(),
            ["leases", "create", "--id", "bench-lease-1"]
        );
    }
}
