//! Who held what, and when, across a whole lab cluster; and the check
//! that no two nodes ever held the same resource at once (the safety
//! guarantee of docs/design.md, "Quorum and leases").
//!
//! Three sources, each with its own clock reading (seconds since the
//! epoch, so they compare with the stand-ins' `time.time()`):
//!
//! - **vip**: sampled. [`VipSampler`] keeps one thread in every node
//!   namespace reading the interface addresses about every millisecond and
//!   records `[first seen, last seen]` per holding. A holding shorter than
//!   the sampling gap can be missed, which is why the storage and the
//!   environments are checked from logs the stand-ins write themselves.
//! - **storage** (`hast:<resource>` primary) and **nfsd**: from each node's
//!   stand-in call log (`calls.jsonl`), where every call is logged with its
//!   time just before it takes effect.
//! - **env:NAME**: from the stand-ins' cluster-wide environment log
//!   (`cluster.jsonl`), written under a lock as each start or stop happens.
//!
//! A holding still open when the log is read ends "now".

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::cbsd::state::EnvEvent;
use super::netns::enter_netns;
use super::watch::has_address;
use super::LabError;

/// Seconds since the epoch, the unit of every time in this module.
pub fn epoch_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// One node holding one resource from `from` to `to` (inclusive).
#[derive(Clone, Debug, PartialEq)]
pub struct Holding {
    pub node: String,
    pub from: f64,
    pub to: f64,
}

/// Two nodes holding one resource at the same time.
#[derive(Clone, Debug, PartialEq)]
pub struct Overlap {
    pub resource: String,
    pub first: Holding,
    pub second: Holding,
}

impl std::fmt::Display for Overlap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (a, b) = (&self.first, &self.second);
        write!(
            f,
            "{}: {} [{:.3}, {:.3}] and {} [{:.3}, {:.3}] overlap for {:.3} s",
            self.resource,
            a.node,
            a.from,
            a.to,
            b.node,
            b.from,
            b.to,
            a.to.min(b.to) - a.from.max(b.from)
        )
    }
}

/// Every holding of every resource, by resource name (`vip`,
/// `hast:cbsd`, `nfsd`, `env:web1`...).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HolderLog {
    resources: BTreeMap<String, Vec<Holding>>,
}

impl HolderLog {
    pub fn add(&mut self, resource: &str, node: &str, from: f64, to: f64) {
        self.resources
            .entry(resource.to_owned())
            .or_default()
            .push(Holding {
                node: node.to_owned(),
                from,
                to,
            });
    }

    /// Adds the holdings described by start/stop events of one node, in
    /// time order: a start opens a holding (unless one is open), a stop
    /// closes it; one still open ends at `now`.
    pub fn add_transitions(
        &mut self,
        resource: &str,
        node: &str,
        transitions: impl IntoIterator<Item = (f64, bool)>,
        now: f64,
    ) {
        let mut open: Option<f64> = None;
        for (at, held) in transitions {
            match (open, held) {
                (None, true) => open = Some(at),
                (Some(from), false) => {
                    self.add(resource, node, from, at);
                    open = None;
                }
                _ => {}
            }
        }
        if let Some(from) = open {
            self.add(resource, node, from, now);
        }
    }

    pub fn holdings(&self, resource: &str) -> &[Holding] {
        self.resources.get(resource).map_or(&[], Vec::as_slice)
    }

    /// Every pair of holdings of one resource by different nodes whose
    /// intervals intersect. Empty is the safety guarantee.
    pub fn overlaps(&self) -> Vec<Overlap> {
        let mut found = Vec::new();
        for (resource, holdings) in &self.resources {
            for (i, a) in holdings.iter().enumerate() {
                for b in holdings.iter().skip(i + 1) {
                    if a.node != b.node && a.from <= b.to && b.from <= a.to {
                        let (first, second) = if a.from <= b.from { (a, b) } else { (b, a) };
                        found.push(Overlap {
                            resource: resource.clone(),
                            first: first.clone(),
                            second: second.clone(),
                        });
                    }
                }
            }
        }
        found
    }

    /// The whole log as a table, times relative to `origin`: what a failed
    /// test prints.
    pub fn render(&self, origin: f64) -> String {
        let mut out = String::from("holder log (seconds since the test started):\n");
        for (resource, holdings) in &self.resources {
            let mut sorted = holdings.clone();
            sorted.sort_by(|a, b| a.from.total_cmp(&b.from));
            for h in sorted {
                let _ = writeln!(
                    out,
                    "  {resource:<12} {:<4} {:>9.3} .. {:>9.3}",
                    h.node,
                    h.from - origin,
                    h.to - origin
                );
            }
        }
        out
    }
}

/// The `hast:<resource>` primary and `nfsd` holdings of one node, from its
/// stand-in call log.
pub fn add_storage_from_calls(log: &mut HolderLog, node: &str, calls: &Path, now: f64) {
    #[derive(serde::Deserialize)]
    struct Call {
        argv: Vec<String>,
        t: f64,
    }
    let text = std::fs::read_to_string(calls).unwrap_or_default();
    let calls: Vec<Call> = text
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    let mut hast: BTreeMap<String, Vec<(f64, bool)>> = BTreeMap::new();
    let mut nfsd = Vec::new();
    for call in &calls {
        let argv: Vec<&str> = call.argv.iter().map(String::as_str).collect();
        match argv.as_slice() {
            ["hastctl", "role", role, resource] => hast
                .entry((*resource).to_owned())
                .or_default()
                .push((call.t, *role == "primary")),
            ["service", "nfsd", "onestart"] => nfsd.push((call.t, true)),
            ["service", "nfsd", "onestop"] => nfsd.push((call.t, false)),
            // nfsd died behind the agent's back.
            [tool, "nfsd"] if *tool == super::cbsd::world::KILL_TOOL => {
                nfsd.push((call.t, false));
            }
            // hastd died: its resources went with it.
            [tool, "hastd"] if *tool == super::cbsd::world::KILL_TOOL => {
                for transitions in hast.values_mut() {
                    transitions.push((call.t, false));
                }
            }
            // A reset: HAST back in role init, nfsd gone.
            [tool] if *tool == super::cbsd::world::REBOOT_TOOL => {
                for transitions in hast.values_mut() {
                    transitions.push((call.t, false));
                }
                nfsd.push((call.t, false));
            }
            _ => {}
        }
    }
    for (resource, transitions) in hast {
        log.add_transitions(&format!("hast:{resource}"), node, transitions, now);
    }
    log.add_transitions("nfsd", node, nfsd, now);
}

/// The `env:NAME` holdings of every node, from the cluster-wide log.
pub fn add_environments(log: &mut HolderLog, events: &[EnvEvent], now: f64) {
    let mut by_key: BTreeMap<(&str, &str), Vec<(f64, bool)>> = BTreeMap::new();
    for e in events {
        by_key
            .entry((e.env.as_str(), e.node.as_str()))
            .or_default()
            .push((e.t, e.event == "start"));
    }
    for ((env, node), transitions) in by_key {
        log.add_transitions(&format!("env:{env}"), node, transitions, now);
    }
}

/// How often a sampler thread reads the addresses (the achieved gap on a
/// loaded machine is longer: see [`VipSampler::max_gap`]).
const SAMPLE_PERIOD: Duration = Duration::from_millis(1);

/// What one sampler thread has seen.
#[derive(Debug, Default)]
struct Samples {
    holdings: Vec<(f64, f64)>,
    /// Since when the address is seen, and when it was last seen.
    current: Option<(f64, f64)>,
    last_sample: Option<f64>,
    max_gap: f64,
}

impl Samples {
    fn record(&mut self, at: f64, held: bool) {
        if let Some(last) = self.last_sample {
            self.max_gap = self.max_gap.max(at - last);
        }
        self.last_sample = Some(at);
        match (self.current, held) {
            (None, true) => self.current = Some((at, at)),
            (Some((from, _)), true) => self.current = Some((from, at)),
            (Some(interval), false) => {
                self.holdings.push(interval);
                self.current = None;
            }
            (None, false) => {}
        }
    }

    fn all(&self) -> impl Iterator<Item = (f64, f64)> + '_ {
        self.holdings.iter().copied().chain(self.current)
    }
}

/// One thread per node namespace sampling whether it holds an address;
/// the threads stop on drop.
pub struct VipSampler {
    names: Vec<String>,
    samples: Vec<Arc<Mutex<Samples>>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl VipSampler {
    /// Starts sampling `namespaces[i]` as node `names[i]`; returns once
    /// every thread has entered its namespace and taken a first sample.
    pub fn start(
        namespaces: &[String],
        names: &[String],
        address: Ipv4Addr,
    ) -> Result<VipSampler, LabError> {
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = mpsc::channel();
        let mut sampler = VipSampler {
            names: names.to_vec(),
            samples: Vec::new(),
            stop: Arc::clone(&stop),
            threads: Vec::new(),
        };
        for ns in namespaces {
            let samples = Arc::new(Mutex::new(Samples::default()));
            sampler.samples.push(Arc::clone(&samples));
            let (ns, stop, ready) = (ns.clone(), Arc::clone(&stop), ready_tx.clone());
            let spawned = std::thread::Builder::new()
                .name("vip-sampler".into())
                .spawn(move || {
                    if let Err(e) = enter_netns(&ns) {
                        let _ = ready.send(Err(e.to_string()));
                        return;
                    }
                    let mut first = true;
                    while !stop.load(Ordering::Relaxed) {
                        let held = has_address(address);
                        if let Ok(mut s) = samples.lock() {
                            s.record(epoch_now(), held);
                        }
                        if std::mem::take(&mut first) {
                            let _ = ready.send(Ok(()));
                        }
                        std::thread::sleep(SAMPLE_PERIOD);
                    }
                })
                .map_err(|source| LabError::Io {
                    what: "spawning a VIP sampler thread".into(),
                    source,
                })?;
            sampler.threads.push(spawned);
        }
        for _ in namespaces {
            match ready_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(LabError::Misbehaved(format!("VIP sampler: {e}"))),
                Err(_) => return Err(LabError::ThreadPanicked("VIP sampler")),
            }
        }
        Ok(sampler)
    }

    /// Adds the `vip` holdings seen so far.
    pub fn add_to(&self, log: &mut HolderLog) {
        for (name, samples) in self.names.iter().zip(&self.samples) {
            if let Ok(s) = samples.lock() {
                for (from, to) in s.all() {
                    log.add("vip", name, from, to);
                }
            }
        }
    }

    /// The longest time between two samples of one namespace, in seconds:
    /// overlaps shorter than this may go unseen.
    pub fn max_gap(&self) -> f64 {
        self.samples
            .iter()
            .filter_map(|s| s.lock().ok().map(|s| s.max_gap))
            .fold(0.0, f64::max)
    }
}

impl Drop for VipSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// A cluster's holder log in the making: the VIP sampler runs from
/// [`Recorder::start`] until drop; the stand-ins' logs are read on demand.
pub struct Recorder {
    sampler: VipSampler,
    /// When recording started: the zero of [`HolderLog::render`].
    pub origin: f64,
}

impl Recorder {
    /// Starts sampling `vip` in every node namespace (node `i` is
    /// `names[i]`).
    pub fn start(
        namespaces: &[String],
        names: &[String],
        vip: Ipv4Addr,
    ) -> Result<Recorder, LabError> {
        Ok(Recorder {
            sampler: VipSampler::start(namespaces, names, vip)?,
            origin: epoch_now(),
        })
    }

    /// Everything known so far: the VIP samples, and the storage, nfsd and
    /// environment holdings from the stand-ins' logs of `worlds` (node
    /// `i` is `names[i]`).
    pub fn log(&self, names: &[String], worlds: &[&super::cbsd::WorldPaths]) -> HolderLog {
        let now = epoch_now();
        let mut log = HolderLog::default();
        self.sampler.add_to(&mut log);
        for (name, world) in names.iter().zip(worlds) {
            add_storage_from_calls(&mut log, name, &world.calls, now);
        }
        if let Some(world) = worlds.first() {
            add_environments(
                &mut log,
                &super::cbsd::state::env_log(&world.cluster_log),
                now,
            );
        }
        log
    }

    /// The longest sampling gap so far (seconds).
    pub fn max_sampling_gap(&self) -> f64 {
        self.sampler.max_gap()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn planted_overlap_is_found_and_a_clean_handover_is_not() {
        let mut log = HolderLog::default();
        log.add("vip", "n1", 1.0, 2.0);
        log.add("vip", "n2", 2.5, 4.0);
        log.add("vip", "n1", 5.0, 6.0);
        assert!(log.overlaps().is_empty(), "{:?}", log.overlaps());
        log.add("vip", "n3", 3.9, 4.5);
        let found = log.overlaps();
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            (found[0].first.node.as_str(), found[0].second.node.as_str()),
            ("n2", "n3")
        );
    }

    #[test]
    fn the_same_node_twice_is_no_overlap() {
        let mut log = HolderLog::default();
        log.add("env:web1", "n1", 1.0, 3.0);
        log.add("env:web1", "n1", 2.0, 4.0);
        assert!(log.overlaps().is_empty());
    }

    #[test]
    fn transitions_open_and_close_holdings_and_an_open_one_ends_now() {
        let mut log = HolderLog::default();
        let events = [
            (1.0, true),
            (1.5, true),
            (2.0, false),
            (3.0, false),
            (4.0, true),
        ];
        log.add_transitions("nfsd", "n1", events, 9.0);
        let spans: Vec<(f64, f64)> = log
            .holdings("nfsd")
            .iter()
            .map(|h| (h.from, h.to))
            .collect();
        assert_eq!(spans, [(1.0, 2.0), (4.0, 9.0)]);
    }

    #[test]
    fn an_environment_started_elsewhere_before_its_stop_overlaps() {
        let event = |node: &str, what: &str, t: f64| EnvEvent {
            node: node.into(),
            env: "web3".into(),
            event: what.into(),
            t,
        };
        let mut log = HolderLog::default();
        let moved = [
            event("n3", "start", 1.0),
            event("n3", "stop", 2.0),
            event("n1", "start", 3.0),
        ];
        add_environments(&mut log, &moved, 10.0);
        assert!(log.overlaps().is_empty());
        let twice = [
            event("n3", "start", 1.0),
            event("n1", "start", 3.0),
            event("n3", "stop", 4.0),
        ];
        let mut log = HolderLog::default();
        add_environments(&mut log, &twice, 10.0);
        assert_eq!(log.overlaps().len(), 1);
    }

    #[test]
    fn storage_holdings_come_from_the_call_log() {
        let dir = tempfile::tempdir().expect("tempdir");
        let calls = dir.path().join("calls.jsonl");
        let line = |argv: &[&str], t: f64| serde_json::json!({"argv": argv, "t": t}).to_string();
        let text = [
            line(&["hastctl", "role", "primary", "cbsd"], 1.0),
            line(&["service", "nfsd", "onestart"], 1.2),
            line(&["service", "nfsd", "onestop"], 5.0),
            line(&["hastctl", "role", "secondary", "cbsd"], 5.1),
        ]
        .join("\n");
        std::fs::write(&calls, text).expect("write");
        let mut log = HolderLog::default();
        add_storage_from_calls(&mut log, "n1", &calls, 9.0);
        assert_eq!(log.holdings("hast:cbsd")[0].to, 5.1);
        assert_eq!(log.holdings("nfsd")[0].from, 1.2);
    }
}
