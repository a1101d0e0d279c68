//! The cluster-wide ledger of who holds what, and the safety invariant.
//!
//! A node holds the master resources (VIP + storage) from the start of a
//! promote to the end of a demote, and an environment from the start of its
//! start to the end of its stop (see `worker`). Holdings change only at
//! those instants, so checking at every acquisition that nobody else holds
//! the resource checks the invariant at every simulated instant.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use rcbsd_failover::wire::heartbeat::Resource;

/// One change of holder, for the trace and the directed scenarios.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub at: Duration,
    pub node: usize,
    pub resource: Resource,
    pub acquired: bool,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = if self.acquired {
            "acquires"
        } else {
            "releases"
        };
        write!(
            f,
            "{:>10.3}s n{} {verb} {}",
            self.at.as_secs_f64(),
            self.node,
            self.resource
        )
    }
}

/// Two nodes held one resource at once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub at: Duration,
    pub resource: Resource,
    pub holders: Vec<usize>,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SAFETY: at {:.6}s {} is held by nodes {:?}",
            self.at.as_secs_f64(),
            self.resource,
            self.holders
        )
    }
}

#[derive(Default)]
pub struct Ledger {
    holders: BTreeMap<Resource, BTreeSet<usize>>,
    pub history: Vec<Change>,
    pub violation: Option<Violation>,
}

impl Ledger {
    /// Records that `node` holds `resource` from `at`; the first double
    /// holder is kept in `violation`.
    pub fn acquire(&mut self, at: Duration, node: usize, resource: Resource) {
        let holders = self.holders.entry(resource.clone()).or_default();
        holders.insert(node);
        if holders.len() > 1 && self.violation.is_none() {
            self.violation = Some(Violation {
                at,
                resource: resource.clone(),
                holders: holders.iter().copied().collect(),
            });
        }
        self.history.push(Change {
            at,
            node,
            resource,
            acquired: true,
        });
    }

    pub fn release(&mut self, at: Duration, node: usize, resource: Resource) {
        if let Some(holders) = self.holders.get_mut(&resource) {
            holders.remove(&node);
        }
        self.history.push(Change {
            at,
            node,
            resource,
            acquired: false,
        });
    }

    pub fn holders(&self, resource: &Resource) -> Vec<usize> {
        self.holders
            .get(resource)
            .map(|h| h.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Every change of `node` or of `resource`, in order.
    pub fn changes_of<'a>(&'a self, resource: &'a Resource) -> impl Iterator<Item = &'a Change> {
        self.history.iter().filter(move |c| c.resource == *resource)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    #[test]
    fn a_planted_double_master_is_caught() {
        let mut ledger = Ledger::default();
        ledger.acquire(s(10), 0, Resource::Master);
        ledger.acquire(s(20), 2, Resource::Master);
        let v = ledger.violation.expect("two masters must be caught");
        assert_eq!((v.at, v.holders), (s(20), vec![0, 2]));
    }

    #[test]
    fn a_planted_environment_running_twice_is_caught() {
        let web = Resource::Environment("web1".to_owned());
        let mut ledger = Ledger::default();
        ledger.acquire(s(1), 1, web.clone());
        ledger.acquire(s(1), 1, Resource::Master);
        ledger.acquire(s(2), 0, web);
        assert!(ledger.violation.is_some());
    }

    #[test]
    fn a_hand_over_after_release_is_not_a_violation() {
        let mut ledger = Ledger::default();
        ledger.acquire(s(1), 0, Resource::Master);
        ledger.release(s(5), 0, Resource::Master);
        ledger.acquire(s(5), 1, Resource::Master);
        assert_eq!(ledger.violation, None);
        assert_eq!(ledger.holders(&Resource::Master), vec![1]);
    }
}
