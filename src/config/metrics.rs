//! `[metrics]`: a Prometheus textfile for node_exporter (read and checked
//! in `load/metrics.rs`).

use std::path::PathBuf;
use std::time::Duration;

/// `[metrics]`: Prometheus text exposition written to a file for
/// node_exporter's textfile collector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Metrics {
    /// `metrics.textfile`: the `.prom` file rewritten atomically, in a directory
    /// node_exporter's textfile collector reads.
    pub textfile: PathBuf,
    /// `metrics.interval`: how often the file is rewritten (1 s..=1 h; default 5 s).
    pub interval: Duration,
}

pub const DEFAULT_METRICS_INTERVAL: Duration = Duration::from_secs(5);
