//! The VIP and ARP operations of the runbooks, behind a small trait so the
//! executor runs without root in tests ([`VipControl`]); [`SystemVip`] is
//! the real one (the platform's `ifconfig`/`ip` and the link-layer ARP
//! sender of `crate::net`).
//!
//! Both families: the IPv4 VIPs (`[vrrp]`) first, then the IPv6 ones
//! (`[vrrp]` when it is IPv6, else `[vrrp6]`, on that section's interface),
//! each family in file order, when adding and when removing. IPv6 VIPs are
//! added without Duplicate Address Detection (`net::vip`) and announced by
//! unsolicited Neighbor Advertisements (`net::na`) instead of ARP, with the
//! same `garp_*` knobs.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::watch;

use crate::config::{Config, VirtualIp, VirtualIp6};
use crate::events;
use crate::net::error::NetError;
use crate::net::garp::GarpSender;
use crate::net::na::NaSender;
use crate::net::vip::{self, VipAddress, VipBackend};

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
    /// The ICMPv6 sender of Neighbor Advertisements could not be opened
    /// (at start): no privilege, or no link-local address on the
    /// interface.
    #[error("cannot open {interface} for IPv6 Neighbor Advertisements: {source}")]
    OpenNa {
        /// The interface of the IPv6 VIPs.
        interface: String,
        /// Why opening failed.
        #[source]
        source: NetError,
    },
    /// A gratuitous ARP or Neighbor Advertisement could not be sent.
    #[error(transparent)]
    Announce(NetError),
    /// A thread panicked while holding the ARP or NA sender.
    #[error("the ARP or NA sender is poisoned")]
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
    /// One burst of unsolicited Neighbor Advertisements for the IPv6 VIPs
    /// (RFC 5798 §6.4.2, RFC 4861 §7.2.6), with the ARP burst's knobs; a
    /// node without IPv6 VIPs sends nothing (the default).
    fn announce6(&self, why: &'static str) -> impl Future<Output = Result<(), VipError>> + Send {
        let _ = why;
        async { Ok(()) }
    }
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
    /// The interface of the IPv6 VIPs and the VIPs (empty: none).
    interface6: String,
    vips6: Vec<VirtualIp6>,
    /// `None` without IPv6 VIPs.
    na: Option<Mutex<NaSender>>,
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
        let (interface6, vips6) = config
            .virtual_ips6()
            .map(|(i, v)| (i.to_owned(), v.to_vec()))
            .unwrap_or_default();
        // Opened at start as the ARP sender is: a missing privilege or a
        // missing link-local address (the source, RFC 4861 §7.2.6) fails
        // now, not at the first takeover.
        let na = if vips6.is_empty() {
            None
        } else {
            let addresses: Vec<_> = vips6.iter().map(|v| v.address).collect();
            let sender =
                NaSender::open(&interface6, &addresses).map_err(|source| VipError::OpenNa {
                    interface: interface6.clone(),
                    source,
                })?;
            Some(Mutex::new(sender))
        };
        Ok(SystemVip {
            interface,
            vips: config.vrrp.virtual_ips.clone(),
            interface6,
            vips6,
            na,
            backend: backend(config),
            garp: Mutex::new(garp),
            repeat: config.vrrp.garp_master_repeat,
            interval: config.vrrp.garp_interval,
            decision,
        })
    }
}

impl SystemVip {
    /// Every VIP with its interface: IPv4 first, then IPv6.
    fn all(&self) -> impl Iterator<Item = (&str, &dyn VipAddress)> {
        let v4 = self
            .vips
            .iter()
            .map(|v| (self.interface.as_str(), v as &dyn VipAddress));
        let v6 = self
            .vips6
            .iter()
            .map(|v| (self.interface6.as_str(), v as &dyn VipAddress));
        v4.chain(v6)
    }

    /// One burst of `garp_master_repeat` rounds `garp_interval` apart
    /// (the ARP and the NA bursts alike), stopped as soon as the decision
    /// changes; `round` sends one round. The rounds sent.
    async fn burst(
        &self,
        mut round: impl FnMut() -> Result<(), VipError> + Send,
    ) -> Result<u32, VipError> {
        let generation = *self.decision.borrow();
        let mut sent = 0;
        for index in 0..self.repeat.max(1) {
            if index > 0 && !self.interval.is_zero() {
                tokio::time::sleep(self.interval).await;
            }
            if *self.decision.borrow() != generation {
                break;
            }
            sent += 1;
            round()?;
        }
        Ok(sent)
    }
}

impl VipControl for SystemVip {
    async fn add(&self) -> Result<(), VipError> {
        for (interface, v) in self.all() {
            match vip::ensure_present(&*self.backend, interface, v).await {
                Ok(true) => events::vip_added(interface, &v.to_string()),
                Ok(false) => {}
                Err(e) => {
                    events::vip_failed(interface, &v.to_string(), "add", &e.to_string());
                    return Err(VipError::Add(e));
                }
            }
        }
        Ok(())
    }

    async fn remove(&self) -> Result<(), VipError> {
        let mut errors = Vec::new();
        // Every VIP is tried even when one fails: none may be left behind.
        for (interface, v) in self.all() {
            match vip::ensure_absent(&*self.backend, interface, v).await {
                Ok(true) => events::vip_removed(interface, &v.to_string(), "not_master"),
                Ok(false) => {}
                Err(e) => {
                    events::vip_failed(interface, &v.to_string(), "remove", &e.to_string());
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
        let sent = self
            .burst(|| {
                let mut garp = self.garp.lock().map_err(|_| VipError::SenderPoisoned)?;
                for v in &self.vips {
                    if let Err(e) = garp.send(v.address) {
                        events::garp_failed(&self.interface, &e.to_string());
                        return Err(VipError::Announce(e));
                    }
                }
                Ok(())
            })
            .await?;
        events::garp_sent(&self.interface, self.vips.len(), sent, why);
        Ok(())
    }

    /// The same burst as [`Self::announce`], one advertisement per IPv6
    /// VIP per round.
    async fn announce6(&self, why: &'static str) -> Result<(), VipError> {
        let Some(na) = &self.na else {
            return Ok(());
        };
        let sent = self
            .burst(|| {
                let mut na = na.lock().map_err(|_| VipError::SenderPoisoned)?;
                for v in &self.vips6 {
                    if let Err(e) = na.send(v.address) {
                        events::na_failed(&self.interface6, &e.to_string());
                        return Err(VipError::Announce(e));
                    }
                }
                Ok(())
            })
            .await?;
        events::na_sent(&self.interface6, self.vips6.len(), sent, why);
        Ok(())
    }
}
