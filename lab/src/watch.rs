//! Watching addresses appear: "which namespace holds the VIP" is the
//! implementation-neutral way to tell who is master, and "when did it
//! appear" is the time to VIP-added of a failover.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::ifaddrs::getifaddrs;

use super::netns::{enter_netns, in_netns};
use super::LabError;

/// How often a watcher re-reads the interface addresses.
const POLL: Duration = Duration::from_millis(1);

/// Whether any interface of the calling thread's namespace has `address`
/// (IPv4 or IPv6).
pub fn has_address(address: impl Into<IpAddr>) -> bool {
    let address = address.into();
    let Ok(addresses) = getifaddrs() else {
        return false;
    };
    addresses
        .filter_map(|ifa| ifa.address)
        .filter_map(|a| {
            a.as_sockaddr_in()
                .map(|sin| IpAddr::V4(sin.ip()))
                .or_else(|| a.as_sockaddr_in6().map(|sin6| IpAddr::V6(sin6.ip())))
        })
        .any(|ip| ip == address)
}

/// Indices of the namespaces in `namespaces` that hold `address` now.
pub fn holders(namespaces: &[String], address: impl Into<IpAddr>) -> Result<Vec<usize>, LabError> {
    let address = address.into();
    let mut found = Vec::new();
    for (index, ns) in namespaces.iter().enumerate() {
        if in_netns(ns, move || has_address(address))? {
            found.push(index);
        }
    }
    Ok(found)
}

/// One polling thread per namespace, each reporting the instant `address`
/// first appeared there. Threads stop on drop.
#[derive(Debug)]
pub struct AddressWatch {
    stop: Arc<AtomicBool>,
    events: mpsc::Receiver<(usize, Instant)>,
    threads: Vec<JoinHandle<()>>,
}

impl AddressWatch {
    /// Starts watching `namespaces` (by index in `candidates`) and returns
    /// once every thread has entered its namespace, so an address added
    /// after this returns is seen within about a millisecond.
    pub fn start(
        namespaces: &[String],
        candidates: &[usize],
        address: impl Into<IpAddr>,
    ) -> Result<AddressWatch, LabError> {
        let address = address.into();
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, events) = mpsc::channel();
        let (ready_tx, ready_rx) = mpsc::channel();
        let mut watch = AddressWatch {
            stop: Arc::clone(&stop),
            events,
            threads: Vec::new(),
        };
        for &index in candidates {
            let ns = namespaces
                .get(index)
                .cloned()
                .ok_or(LabError::NoSuchNode(index))?;
            let (tx, ready_tx, stop) = (tx.clone(), ready_tx.clone(), Arc::clone(&stop));
            let thread = std::thread::Builder::new()
                .name("lab-watch".into())
                .spawn(move || {
                    let entered = enter_netns(&ns);
                    let ok = entered.is_ok();
                    let _ = ready_tx.send(entered);
                    if !ok {
                        return;
                    }
                    while !stop.load(Ordering::Relaxed) {
                        if has_address(address) {
                            let _ = tx.send((index, Instant::now()));
                            return;
                        }
                        std::thread::sleep(POLL);
                    }
                })
                .map_err(|source| LabError::Io {
                    what: "spawning an address watcher".into(),
                    source,
                })?;
            watch.threads.push(thread);
        }
        for _ in candidates {
            ready_rx
                .recv()
                .map_err(|_| LabError::ThreadPanicked("address watcher"))??;
        }
        Ok(watch)
    }

    /// The first namespace where the address appeared and when, waiting up
    /// to `timeout`.
    pub fn first(&self, timeout: Duration) -> Option<(usize, Instant)> {
        self.events.recv_timeout(timeout).ok()
    }
}

impl Drop for AddressWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}
