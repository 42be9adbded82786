//! Checks around an import that unpacks (the `unpack` section is an `Import` with `unpack` set):
//! after each timed run the image's whole snapshot chain must be there, committed, parent by
//! parent, and hold the image's data, so a daemon that silently skipped the unpack cannot look
//! fast; after `images rm --sync` every snapshot of the namespace must be gone, so the next run
//! unpacks from scratch and containerd lets the namespace go.
//!
//! Everything here goes through the real ctr with the default snapshotter (overlayfs), as the
//! timed import did.

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};

use super::ctr::TimedCtr;
use super::daemons::Side;
use crate::image::layered::chain_ids;
use crate::image::ImageInfo;

/// How long a daemon may take to drop the snapshots of a removed image from its listing.
const GONE_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause between listings while waiting.
const POLL: Duration = Duration::from_millis(50);

/// One row of `ctr snapshots ls`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub key: String,
    /// Empty for a snapshot without parent.
    pub parent: String,
    pub kind: String,
}

/// The rows of `ctr snapshots ls` (after the header). Keys here never hold spaces; a row that
/// does not split into two or three columns is kept whole as a key of kind "?", so it still
/// counts and shows up in errors.
pub fn listed(out: &str) -> Vec<Listed> {
    out.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            let (key, parent, kind) = match cols.as_slice() {
                [key, kind] => (*key, "", *kind),
                [key, parent, kind] => (*key, *parent, *kind),
                _ => (l.trim(), "", "?"),
            };
            Listed {
                key: key.to_string(),
                parent: parent.to_string(),
                kind: kind.to_string(),
            }
        })
        .collect()
}

/// `ctr snapshots ls` in the ctr's namespace.
pub fn list(ctr: &TimedCtr) -> anyhow::Result<Vec<Listed>> {
    Ok(listed(&ctr.ok(&["snapshots", "ls"])?))
}

/// Checks that the namespace holds exactly the image's chain of committed snapshots, each named
/// by its chain id on top of the previous one, and that together they use at least `payload`
/// bytes (the generated files' size).
pub fn check_chain(
    ctr: &TimedCtr,
    side: Side,
    image: &ImageInfo,
    payload: u64,
) -> anyhow::Result<()> {
    let chain = chain_ids(&image.diff_ids);
    let mut expected: Vec<Listed> = chain
        .iter()
        .enumerate()
        .map(|(i, key)| Listed {
            key: key.clone(),
            parent: if i == 0 {
                String::new()
            } else {
                chain[i - 1].clone()
            },
            kind: "Committed".to_string(),
        })
        .collect();
    let mut found = list(ctr)?;
    expected.sort_by(|a, b| a.key.cmp(&b.key));
    found.sort_by(|a, b| a.key.cmp(&b.key));
    ensure!(
        found == expected,
        "{}: after the import, snapshots are not the image's chain of {} committed layers:\n  found: {found:?}\n  expected: {expected:?}",
        side.label(),
        chain.len()
    );

    let mut args = vec!["snapshots", "usage", "-b"];
    args.extend(chain.iter().map(String::as_str));
    let out = ctr.ok(&args)?;
    let mut total: u64 = 0;
    for line in out.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let size = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse::<u64>().ok())
            .with_context(|| format!("{}: unexpected usage row {line:?}", side.label()))?;
        total += size;
    }
    ensure!(
        total >= payload,
        "{}: the unpacked chain uses {total} bytes, less than the image's {payload} bytes of files:\n{out}",
        side.label()
    );
    Ok(())
}

/// Waits until the namespace lists no snapshot. containerd removes an image's snapshots in the
/// collection `images rm --sync` waits for; the wait only covers a daemon that lists them a
/// moment longer.
pub fn wait_until_no_snapshots(ctr: &TimedCtr, side: Side) -> anyhow::Result<()> {
    let deadline = Instant::now() + GONE_TIMEOUT;
    loop {
        let left = list(ctr)?;
        if left.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!(
                "{}: snapshots still listed {}s after the image was removed: {left:?}",
                side.label(),
                GONE_TIMEOUT.as_secs()
            );
        }
        super::interrupt::check()?;
        std::thread::sleep(POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ctr_snapshots_ls() {
        let out = "KEY     PARENT  KIND\n\
                   sha256:a         Committed\n\
                   sha256:b sha256:a Committed\n\
                   odd row with spaces here\n";
        let rows = listed(out);
        assert_eq!(rows.len(), 3);
        assert_eq!(
            rows[0],
            Listed {
                key: "sha256:a".into(),
                parent: String::new(),
                kind: "Committed".into()
            }
        );
        assert_eq!(rows[1].parent, "sha256:a");
        assert_eq!(rows[2].kind, "?");
        assert!(listed("KEY PARENT KIND\n").is_empty());
    }
}
