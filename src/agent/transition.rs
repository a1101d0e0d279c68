//! The transition worker: makes the interface match the election's latest
//! decision (VIPs present and announced when master, absent otherwise).
//!
//! It runs beside the election loop and never blocks it. It converges on the
//! *latest* desired state: a decision that is overtaken while commands run is
//! not replayed, the newer one is applied instead. (The CBSD/NFS runbooks
//! will take this worker's place and keep its contract.)

use std::net::Ipv4Addr;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::config::{Config, VirtualIp};
use crate::events;
use crate::net::garp::GarpSender;
use crate::net::vip::{self, VipBackend};

/// What the interface should look like.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Desired {
    pub master: bool,
    pub vips: Vec<VirtualIp>,
    pub garp: GarpSettings,
}

/// keepalived's `garp_master_repeat` / `garp_interval` / `garp_master_delay`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GarpSettings {
    pub repeat: u32,
    pub interval: Duration,
    pub second_burst_delay: Duration,
}

impl GarpSettings {
    pub fn from_config(config: &Config) -> Self {
        GarpSettings {
            repeat: config.vrrp.garp_master_repeat,
            interval: config.vrrp.garp_interval,
            second_burst_delay: config.vrrp.garp_master_delay,
        }
    }
}

/// Reported back to the election loop.
#[derive(Debug)]
pub enum WorkerEvent {
    /// A VIP could not be added: the node must resign (fault).
    Failed(String),
}

pub struct Handles {
    pub task: JoinHandle<()>,
    pub desired: watch::Sender<Desired>,
    pub garp_now: mpsc::UnboundedSender<Ipv4Addr>,
    pub events: mpsc::UnboundedReceiver<WorkerEvent>,
}

/// Opens the link-layer sender (so a missing privilege fails at start, not
/// at the first takeover) and spawns the worker.
pub fn spawn(config: &Config) -> Result<Handles, String> {
    let garp = GarpSender::open(&config.vrrp.interface).map_err(|e| {
        format!(
            "cannot open the link layer of {} for gratuitous ARP: {e}",
            config.vrrp.interface
        )
    })?;
    let initial = Desired {
        master: false,
        vips: config.vrrp.virtual_ips.clone(),
        garp: GarpSettings::from_config(config),
    };
    let (desired_tx, desired_rx) = watch::channel(initial);
    let (garp_tx, garp_rx) = mpsc::unbounded_channel();
    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let worker = Worker {
        interface: config.vrrp.interface.clone(),
        backend: vip::platform_backend(),
        garp,
        held: Vec::new(),
        events: events_tx,
    };
    let task = tokio::spawn(worker.run(desired_rx, garp_rx));
    Ok(Handles {
        task,
        desired: desired_tx,
        garp_now: garp_tx,
        events: events_rx,
    })
}

struct Worker {
    interface: String,
    backend: Box<dyn VipBackend + Send + Sync>,
    garp: GarpSender,
    /// VIPs this worker put on the interface and has not removed yet.
    held: Vec<VirtualIp>,
    events: mpsc::UnboundedSender<WorkerEvent>,
}

impl Worker {
    async fn run(
        mut self,
        mut desired: watch::Receiver<Desired>,
        mut garp_now: mpsc::UnboundedReceiver<Ipv4Addr>,
    ) {
        let mut second_burst: Option<Instant> = None;
        loop {
            let target = desired.borrow_and_update().clone();
            let newly_added = self.converge(&target).await;
            if target.master && newly_added {
                self.burst(&target, &desired, "became_master").await;
                second_burst = (!target.garp.second_burst_delay.is_zero())
                    .then(|| Instant::now() + target.garp.second_burst_delay);
            } else if !target.master {
                second_burst = None;
            }
            loop {
                tokio::select! {
                    changed = desired.changed() => {
                        if changed.is_err() {
                            // The agent is gone: the last value was applied above.
                            return;
                        }
                        break;
                    }
                    Some(_) = garp_now.recv() => {
                        let current = desired.borrow().clone();
                        if current.master {
                            self.burst(&current, &desired, "master_conflict").await;
                        }
                    }
                    () = sleep_until_opt(second_burst) => {
                        second_burst = None;
                        let current = desired.borrow().clone();
                        if current.master {
                            self.burst(&current, &desired, "garp_master_delay").await;
                        }
                    }
                }
            }
        }
    }

    /// Applies `target`; returns whether any VIP was newly added.
    async fn converge(&mut self, target: &Desired) -> bool {
        let keep: &[VirtualIp] = if target.master { &target.vips } else { &[] };
        // Remove first what must go: VIPs we hold that are no longer wanted,
        // and, when not master, every configured VIP (a leftover is never ours
        // to keep).
        let mut to_remove: Vec<VirtualIp> = self
            .held
            .iter()
            .filter(|v| !keep.contains(v))
            .copied()
            .collect();
        if !target.master {
            for v in &target.vips {
                if !to_remove.contains(v) {
                    to_remove.push(*v);
                }
            }
        }
        for vip in to_remove {
            match vip::ensure_absent(&*self.backend, &self.interface, &vip).await {
                Ok(changed) => {
                    self.held.retain(|v| *v != vip);
                    if changed {
                        let why = if target.master {
                            "reconfigured"
                        } else {
                            "not_master"
                        };
                        events::vip_removed(&self.interface, &vip.to_string(), why);
                    }
                }
                Err(e) => {
                    events::vip_failed(&self.interface, &vip.to_string(), "remove", &e.to_string())
                }
            }
        }
        let mut added = false;
        for vip in keep {
            match vip::ensure_present(&*self.backend, &self.interface, vip).await {
                Ok(changed) => {
                    if !self.held.contains(vip) {
                        self.held.push(*vip);
                    }
                    if changed {
                        added = true;
                        events::vip_added(&self.interface, &vip.to_string());
                    }
                }
                Err(e) => {
                    let message = e.to_string();
                    events::vip_failed(&self.interface, &vip.to_string(), "add", &message);
                    let _ = self.events.send(WorkerEvent::Failed(format!(
                        "adding virtual IP {vip} failed: {message}"
                    )));
                    return added;
                }
            }
        }
        added
    }

    /// One burst of gratuitous ARPs for every VIP: `repeat` rounds spaced by
    /// `interval` (async sleeps: the election loop keeps running). Abandoned
    /// as soon as a newer decision arrives.
    async fn burst(&mut self, target: &Desired, desired: &watch::Receiver<Desired>, why: &str) {
        let mut sent = 0;
        for round in 0..target.garp.repeat.max(1) {
            if round > 0 && !target.garp.interval.is_zero() {
                tokio::time::sleep(target.garp.interval).await;
            }
            if desired.has_changed().unwrap_or(true) {
                break;
            }
            for vip in &target.vips {
                if let Err(e) = self.garp.send(vip.address) {
                    events::garp_failed(&self.interface, &e.to_string());
                    return;
                }
            }
            sent += 1;
        }
        events::garp_sent(&self.interface, target.vips.len(), sent, why);
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
