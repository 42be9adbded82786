//! The stats that runc reports beyond cpu, memory and pids: block I/O and hugetlb, read from the v1
//! controller files or the v2 interface files, in the shape of runc's `events --stats` data.

use std::path::Path;

use serde_json::{json, Value};

use super::read_u64;

/// One `major:minor op value` entry of runc's blkio lists.
fn entry(dev: &str, op: &str, value: u64) -> Option<Value> {
    let (major, minor) = dev.split_once(':')?;
    Some(json!({
        "major": major.parse::<u64>().ok()?,
        "minor": minor.parse::<u64>().ok()?,
        "op": op,
        "value": value,
    }))
}

/// A v1 blkio list file (`8:0 Read 4096` lines and a `Total` line, which runc drops).
fn v1_entries(dir: &Path, file: &str) -> Vec<Value> {
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (dev, op, value) = (f.next()?, f.next()?, f.next()?);
            entry(dev, op, value.parse().ok()?)
        })
        .collect()
}

/// Block I/O of a v1 blkio cgroup. Like runc, the scheduler's recursive counters (CFQ, then BFQ) when
/// they have entries, else the throttling layer's, which count every request.
pub fn v1_blkio(dir: &Path) -> Value {
    let sources = [
        (
            "blkio.io_service_bytes_recursive",
            "blkio.io_serviced_recursive",
        ),
        (
            "blkio.bfq.io_service_bytes_recursive",
            "blkio.bfq.io_serviced_recursive",
        ),
        (
            "blkio.throttle.io_service_bytes_recursive",
            "blkio.throttle.io_serviced_recursive",
        ),
    ];
    let (bytes, ios) = sources
        .iter()
        .map(|(b, s)| (v1_entries(dir, b), v1_entries(dir, s)))
        .find(|(b, s)| !b.is_empty() || !s.is_empty())
        .unwrap_or_default();
    json!({"ioServiceBytesRecursive": bytes, "ioServicedRecursive": ios})
}

/// Block I/O of a v2 cgroup from `io.stat` (`8:0 rbytes=.. wbytes=.. rios=.. wios=..`).
pub fn v2_io(dir: &Path) -> Value {
    let mut bytes = Vec::new();
    let mut ios = Vec::new();
    for line in std::fs::read_to_string(dir.join("io.stat"))
        .unwrap_or_default()
        .lines()
    {
        let mut fields = line.split_whitespace();
        let Some(dev) = fields.next() else { continue };
        for kv in fields {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            let Ok(v) = v.parse::<u64>() else { continue };
            let (list, op) = match k {
                "rbytes" => (&mut bytes, "Read"),
                "wbytes" => (&mut bytes, "Write"),
                "rios" => (&mut ios, "Read"),
                "wios" => (&mut ios, "Write"),
                _ => continue,
            };
            list.extend(entry(dev, op, v));
        }
    }
    json!({"ioServiceBytesRecursive": bytes, "ioServicedRecursive": ios})
}

/// The host's huge page sizes as the cgroup files name them (`hugepages-2048kB` is `2MB`).
pub fn huge_page_sizes() -> Vec<String> {
    let mut sizes: Vec<(u64, String)> = std::fs::read_dir("/sys/kernel/mm/hugepages")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let kb: u64 = name
                .strip_prefix("hugepages-")?
                .strip_suffix("kB")?
                .parse()
                .ok()?;
            Some((kb, page_size_name(kb)))
        })
        .collect();
    sizes.sort();
    sizes.into_iter().map(|(_, n)| n).collect()
}

/// `2048` kB is `2MB`, `1048576` kB is `1GB`, `64` kB is `64KB`: the largest unit that divides evenly.
pub fn page_size_name(kb: u64) -> String {
    let units = ["KB", "MB", "GB", "TB"];
    let mut n = kb;
    let mut unit = 0;
    while n >= 1024 && n % 1024 == 0 && unit + 1 < units.len() {
        n /= 1024;
        unit += 1;
    }
    format!("{n}{}", units[unit])
}

/// Hugetlb usage per page size of a v1 hugetlb cgroup.
pub fn v1_hugetlb(dir: &Path, sizes: &[String]) -> Value {
    sizes
        .iter()
        .map(|s| {
            let f = |suffix: &str| read_u64(dir, &format!("hugetlb.{s}.{suffix}"));
            (
                s.clone(),
                json!({"usage": f("usage_in_bytes"), "max": f("max_usage_in_bytes"), "failcnt": f("failcnt")}),
            )
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// Hugetlb usage per page size of a v2 cgroup: `.current`, and the `max` count of `.events` (the
/// allocations refused at the limit) as the failure count.
pub fn v2_hugetlb(dir: &Path, sizes: &[String]) -> Value {
    sizes
        .iter()
        .filter(|s| dir.join(format!("hugetlb.{s}.current")).exists())
        .map(|s| {
            let events = super::read_flat_keyed(dir, &format!("hugetlb.{s}.events"));
            (
                s.clone(),
                json!({
                    "usage": read_u64(dir, &format!("hugetlb.{s}.current")),
                    "failcnt": events.get("max").and_then(Value::as_u64).unwrap_or(0),
                }),
            )
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_sizes_are_named_like_the_cgroup_files() {
        assert_eq!(page_size_name(2048), "2MB");
        assert_eq!(page_size_name(1_048_576), "1GB");
        assert_eq!(page_size_name(64), "64KB");
        assert_eq!(page_size_name(1536), "1536KB");
    }

    #[test]
    fn block_io_reads_v1_and_v2_files() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let d = tmp.path();
        std::fs::write(
            d.join("blkio.throttle.io_service_bytes_recursive"),
            "8:0 Read 4096\n8:0 Write 512\n8:0 Sync 0\nTotal 4608\n",
        )
        .expect("fixture");
        std::fs::write(
            d.join("blkio.throttle.io_serviced_recursive"),
            "8:0 Read 2\nTotal 2\n",
        )
        .expect("fixture");
        std::fs::write(d.join("blkio.io_service_bytes_recursive"), "Total 0\n").expect("fixture");
        let v1 = v1_blkio(d);
        assert_eq!(
            v1["ioServiceBytesRecursive"]
                .as_array()
                .expect("list")
                .len(),
            3
        );
        assert_eq!(
            v1["ioServiceBytesRecursive"][0],
            json!({"major": 8, "minor": 0, "op": "Read", "value": 4096})
        );
        assert_eq!(v1["ioServicedRecursive"][0]["value"], 2);

        std::fs::write(
            d.join("io.stat"),
            "259:0 rbytes=1024 wbytes=2048 rios=1 wios=2 dbytes=0 dios=0\n",
        )
        .expect("fixture");
        let v2 = v2_io(d);
        assert_eq!(
            v2["ioServiceBytesRecursive"],
            json!([{"major": 259, "minor": 0, "op": "Read", "value": 1024},
                   {"major": 259, "minor": 0, "op": "Write", "value": 2048}])
        );
        assert_eq!(v2["ioServicedRecursive"][1]["value"], 2);
    }

    #[test]
    fn hugetlb_reads_v1_and_v2_files() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let d = tmp.path();
        for (f, v) in [
            ("hugetlb.2MB.usage_in_bytes", "4194304"),
            ("hugetlb.2MB.max_usage_in_bytes", "8388608"),
            ("hugetlb.2MB.failcnt", "1"),
            ("hugetlb.2MB.current", "2097152"),
            ("hugetlb.2MB.events", "max 3\n"),
        ] {
            std::fs::write(d.join(f), v).expect("fixture");
        }
        let sizes = vec!["2MB".to_string(), "1GB".to_string()];
        let v1 = v1_hugetlb(d, &sizes);
        assert_eq!(
            v1["2MB"],
            json!({"usage": 4194304, "max": 8388608, "failcnt": 1})
        );
        let v2 = v2_hugetlb(d, &sizes);
        assert_eq!(v2, json!({"2MB": {"usage": 2097152, "failcnt": 3}}));
    }
}
