//! The VIP and ARP operations of the runbooks, behind a small trait so the
//! executor runs without root in tests ([`VipControl`]); [`SystemVip`] is
//! the real one (the platform's `ifconfig`/`ip` and the link-layer ARP
//! sender of `crate::net`).

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::watch;

use crate::config::{Config, VirtualIp};
use crate::events;
use crate::net::error::NetError;
use crate::net::garp::GarpSender;
use crate::net::vip::{self, VipBackend};

/// Why adding, removing or announcing the virtual IPs failed. The message
/// ends up in `runbook_step` / `runbook_failed`.
#[derive(Debug, thiserror::Error)]
pub enum VipError {
    /// The link-layer sender of gratuitous ARPs could not be opened (at
    /// start).
    #[error("cannot open the link layer of {interface} for gratuitous ARP: {source}")]
    Open {
        /// `vrrp.interface`.
        interface: String,
        /// Why opening failed (typically a missing privilege).
        #[source]
        source: NetError,
    },
    /// Adding a virtual IP failed (the first that did; the others were not
    /// tried).
    #[error(transparent)]
    Add(vip::VipError),
    /// Removing one or more virtual IPs failed (every one was tried).
    #[error("{}", RemoveFailures(.0))]
    Remove(Vec<vip::VipError>),
    /// A gratuitous ARP could not be sent.
    #[error(transparent)]
    Announce(NetError),
    /// A thread panicked while holding the ARP sender.
    #[error("the ARP sender is poisoned")]
    SenderPoisoned,
    /// The health checker's runner was asked to move a VIP: it only looks.
    #[error("the health checker adds, removes and announces no virtual IP")]
    ChecksOnly,
}

/// The failures of a removal, `; `-separated.
struct RemoveFailures<'a>(&'a [vip::VipError]);

impl std::fmt::Display for RemoveFailures<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (index, error) in self.0.iter().enumerate() {
            if index > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

/// Adds, removes and announces every configured virtual IP.
pub trait VipControl: Send + Sync {
    /// Adds each virtual IP that is not on the interface yet, stopping at
    /// the first failure.
    fn add(&self) -> impl Future<Output = Result<(), VipError>> + Send;
    /// Removes each virtual IP still on the interface, trying them all
    /// even when one fails.
    fn remove(&self) -> impl Future<Output = Result<(), VipError>> + Send;
    /// One burst of gratuitous ARPs (RFC 5798 §6.4.2); `why` is logged
    /// (`became_master`, `master_conflict`, ...).
    fn announce(&self, why: &'static str) -> impl Future<Output = Result<(), VipError>> + Send;
}

/// The backend a node uses: FreeBSD's `ifconfig` from `[tools]`, or
/// iproute2 on Linux (tests and the lab).
pub fn backend(config: &Config) -> Box<dyn VipBackend + Send + Sync> {
    vip::platform_backend(&config.tools.ifconfig)
}

/// The real interface.
pub struct SystemVip {
    interface: String,
    vips: Vec<VirtualIp>,
    backend: Box<dyn VipBackend + Send + Sync>,
    garp: Mutex<GarpSender>,
    repeat: u32,
    interval: Duration,
    /// The agent's decision generation: a burst stops as soon as it
    /// changes, so a node that just lost mastership never announces the VIP
    /// after the winner did (clients would follow the late frame).
    decision: watch::Receiver<u64>,
}

impl SystemVip {
    /// Opens the link-layer sender now, so a missing privilege fails at
    /// start and not at the first takeover.
    pub fn open(config: &Config, decision: watch::Receiver<u64>) -> Result<Self, VipError> {
        let interface = config.vrrp.interface.clone();
        let garp = GarpSender::open(&interface).map_err(|source| VipError::Open {
            interface: interface.clone(),
            source,
        })?;
        Ok(SystemVip {
            interface,
            vips: config.vrrp.virtual_ips.clone(),
            backend: backend(config),
            garp: Mutex::new(garp),
            repeat: config.vrrp.garp_master_repeat,
            interval: config.vrrp.garp_interval,
            decision,
        })
    }
}

impl VipControl for SystemVip {
    async fn add(&self) -> Result<(), VipError> {
        for v in &self.vips {
            match vip::ensure_present(&*self.backend, &self.interface, v).await {
                Ok(true) => events::vip_added(&self.interface, &v.to_string()),
                Ok(false) => {}
                Err(e) => {
                    events::vip_failed(&self.interface, &v.to_string(), "add", &e.to_string());
                    return Err(VipError::Add(e));
                }
            }
        }
        Ok(())
    }

    async fn remove(&self) -> Result<(), VipError> {
        let mut errors = Vec::new();
        // Every VIP is tried even when one fails: none may be left behind.
        for v in &self.vips {
            match vip::ensure_absent(&*self.backend, &self.interface, v).await {
                Ok(true) => events::vip_removed(&self.interface, &v.to_string(), "not_master"),
                Ok(false) => {}
                Err(e) => {
                    events::vip_failed(&self.interface, &v.to_string(), "remove", &e.to_string());
                    errors.push(e);
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(VipError::Remove(errors))
        }
    }

    async fn announce(&self, why: &'static str) -> Result<(), VipError> {
        let generation = *self.decision.borrow();
        let mut sent = 0;
        for round in 0..self.repeat.max(1) {
            if round > 0 && !self.interval.is_zero() {
                tokio::time::sleep(self.interval).await;
            }
            if *self.decision.borrow() != generation {
                break;
            }
            sent += 1;
            let mut garp = self.garp.lock().map_err(|_| VipError::SenderPoisoned)?;
            for v in &self.vips {
                if let Err(e) = garp.send(v.address) {
                    events::garp_failed(&self.interface, &e.to_string());
                    return Err(VipError::Announce(e));
                }
            }
        }
        events::garp_sent(&self.interface, self.vips.len(), sent, why);
        Ok(())
    }
}
