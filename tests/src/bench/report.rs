//! Figures side by side: one row per metric with both daemons' values, their ratio oriented so
//! that above 1 means Berth is faster (times) and below 1 means Berth is smaller (memory), and
//! the target for that ratio, if it sets one.

use std::fmt::Write as _;
use std::time::Duration;

/// One daemon's figure for a metric.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Measure {
    /// Wall time of one operation (lower is better).
    Time(Duration),
    /// `ops` operations taking `total` together (lower total is better).
    Throughput { total: Duration, ops: usize },
    /// Resident memory (lower is better).
    Memory { kib: u64 },
}

impl Measure {
    /// The quantity the ratio divides, or `None` for a measure of another kind.
    fn comparable(&self, other: &Measure) -> Option<(f64, f64)> {
        match (self, other) {
            (Measure::Time(a), Measure::Time(b)) => Some((a.as_secs_f64(), b.as_secs_f64())),
            (Measure::Throughput { total: a, .. }, Measure::Throughput { total: b, .. }) => {
                Some((a.as_secs_f64(), b.as_secs_f64()))
            }
            (Measure::Memory { kib: a }, Measure::Memory { kib: b }) => {
                Some((*a as f64, *b as f64))
            }
            _ => None,
        }
    }

    fn render(&self) -> String {
        match self {
            Measure::Time(t) => seconds(*t),
            Measure::Throughput { total, ops } => {
                let rate = *ops as f64 / total.as_secs_f64().max(f64::MIN_POSITIVE);
                format!("{} ({rate:.0} ops/s)", seconds(*total))
            }
            Measure::Memory { kib } => format!("{:.1} MiB", *kib as f64 / 1024.0),
        }
    }
}

/// Seconds with a precision that suits the magnitude.
pub fn seconds(t: Duration) -> String {
    let s = t.as_secs_f64();
    if s >= 10.0 {
        format!("{s:.2} s")
    } else if s >= 0.1 {
        format!("{s:.3} s")
    } else {
        format!("{:.2} ms", s * 1000.0)
    }
}

/// A bound on a row's ratio.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    /// Berth at least this many times faster.
    AtLeast(f64),
    /// Berth at most this fraction of containerd.
    AtMost(f64),
}

impl Target {
    pub fn met(&self, ratio: f64) -> bool {
        match self {
            Target::AtLeast(bound) => ratio >= *bound,
            Target::AtMost(bound) => ratio <= *bound,
        }
    }

    fn render(&self) -> String {
        match self {
            Target::AtLeast(bound) => format!(">= {bound}x"),
            Target::AtMost(bound) if (*bound - 1.0 / 3.0).abs() < 1e-9 => "<= 1/3".to_string(),
            Target::AtMost(bound) => format!("<= {bound}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub metric: String,
    pub berth: Measure,
    pub containerd: Measure,
    pub target: Option<Target>,
}

impl Row {
    /// containerd/berthd for times, berthd/containerd for memory; `None` when a figure is zero
    /// or the two measures differ in kind.
    pub fn ratio(&self) -> Option<f64> {
        let (berth, containerd) = self.berth.comparable(&self.containerd)?;
        let (num, den) = match self.berth {
            Measure::Memory { .. } => (berth, containerd),
            _ => (containerd, berth),
        };
        (den > 0.0).then(|| num / den)
    }

    fn ratio_text(&self) -> String {
        match (self.ratio(), self.berth) {
            (None, _) => "-".to_string(),
            (Some(r), Measure::Memory { .. }) => format!("{r:.2}"),
            (Some(r), _) => format!("{r:.2}x"),
        }
    }

    fn target_text(&self) -> String {
        match (self.target, self.ratio()) {
            (None, _) => "-".to_string(),
            (Some(t), None) => format!("{}: unknown", t.render()),
            (Some(t), Some(r)) if t.met(r) => format!("{}: met", t.render()),
            (Some(t), Some(_)) => format!("{}: NOT met", t.render()),
        }
    }
}

/// The rows as a padded pipe table (valid markdown, readable as plain text).
pub fn table(rows: &[Row]) -> String {
    let header = ["metric", "berthd", "containerd", "ratio", "target"].map(String::from);
    let cells: Vec<[String; 5]> = rows
        .iter()
        .map(|r| {
            [
                r.metric.clone(),
                r.berth.render(),
                r.containerd.render(),
                r.ratio_text(),
                r.target_text(),
            ]
        })
        .collect();
    let mut widths = header.clone().map(|h| h.chars().count());
    for row in &cells {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |row: &[String; 5]| {
        let mut out = String::from("|");
        for (cell, w) in row.iter().zip(widths) {
            let pad = w - cell.chars().count();
            let _ = write!(out, " {cell}{} |", " ".repeat(pad));
        }
        out.push('\n');
        out
    };
    let mut out = line(&header);
    out.push('|');
    for w in widths {
        out.push_str(&"-".repeat(w + 2));
        out.push('|');
    }
    out.push('\n');
    for row in &cells {
        out.push_str(&line(row));
    }
    out
}

/// Median of `values`; the mean of the middle two for an even count.
pub fn median(values: &[Duration]) -> Option<Duration> {
    let mut sorted = values.to_vec();
    sorted.sort();
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2),
    }
}

/// The `p`-th percentile of `values` by nearest rank: the smallest value that at least `p`% of
/// them do not exceed (p90 of 1..=100 is 90).
pub fn percentile(values: &[Duration], p: f64) -> Option<Duration> {
    let mut sorted = values.to_vec();
    sorted.sort();
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let rank = (p / 100.0 * n as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, n) - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn ratios_point_the_right_way() {
        let time = Row {
            metric: "t".into(),
            berth: Measure::Time(ms(100)),
            containerd: Measure::Time(ms(250)),
            target: Some(Target::AtLeast(2.0)),
        };
        assert_eq!(time.ratio(), Some(2.5));
        assert_eq!(time.target_text(), ">= 2x: met");
        let rss = Row {
            metric: "m".into(),
            berth: Measure::Memory { kib: 20_000 },
            containerd: Measure::Memory { kib: 40_000 },
            target: Some(Target::AtMost(1.0 / 3.0)),
        };
        assert_eq!(rss.ratio(), Some(0.5));
        assert_eq!(rss.target_text(), "<= 1/3: NOT met");
        let broken = Row {
            berth: Measure::Time(ms(0)),
            ..time.clone()
        };
        assert_eq!(broken.ratio(), None);
        assert_eq!(broken.target_text(), ">= 2x: unknown");
    }

    #[test]
    fn table_aligns_columns() {
        let rows = [Row {
            metric: "ops".into(),
            berth: Measure::Throughput {
                total: Duration::from_secs(2),
                ops: 1000,
            },
            containerd: Measure::Throughput {
                total: Duration::from_secs(5),
                ops: 1000,
            },
            target: None,
        }];
        let text = table(&rows);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines.iter().all(|l| l.len() == lines[0].len()), "{text}");
        assert!(lines[2].contains("2.000 s (500 ops/s)"), "{text}");
        assert!(lines[2].contains("2.50x"), "{text}");
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[ms(3), ms(1), ms(2)]), Some(ms(2)));
        assert_eq!(
            median(&[ms(4), ms(1), ms(2), ms(3)]),
            Some(Duration::from_micros(2500))
        );
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let hundred: Vec<Duration> = (1..=100).rev().map(ms).collect();
        assert_eq!(percentile(&hundred, 90.0), Some(ms(90)));
        assert_eq!(percentile(&hundred, 50.0), Some(ms(50)));
        assert_eq!(percentile(&hundred, 100.0), Some(ms(100)));
        assert_eq!(percentile(&[ms(7)], 90.0), Some(ms(7)));
        assert_eq!(percentile(&[ms(1), ms(2), ms(3)], 90.0), Some(ms(3)));
        assert_eq!(percentile(&[], 90.0), None);
    }
}
