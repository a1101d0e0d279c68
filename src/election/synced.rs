//! A `[vrrp6]` router synchronised to the node's `[vrrp]` role: a sync
//! group in keepalived's sense (`vrrp_sync_group`), docs/election.md "Dual
//! stack".
//!
//! The IPv6 virtual router is a VRRP router of its own (RFC 5798 §6 per
//! instance): its own [`Router`], priority, Advertisement_Interval,
//! Preempt_Mode, Master_Down and Adver timers, driven by its own adverts.
//! The one deviation from two fully independent elections is a gate: it may
//! be Master only while this node is the `[vrrp]` master, because the
//! storage behind both families' VIPs has one owner, and two independent
//! elections could pick different masters (the §6.4.3 tie-breakers are
//! per-family addresses).
//!
//! - The node becomes master: `[vrrp6]` becomes Master at once (advert,
//!   then the edges' Neighbor Advertisement burst), without waiting for its
//!   Master_Down timer.
//! - The node stops being master: `[vrrp6]` resigns (priority-0 advert,
//!   §6.4.3) and goes Backup.
//! - On a node that is not master, `[vrrp6]` runs with effective priority 0:
//!   it tracks the `[vrrp6]` master (for status) and its Master_Down timer
//!   never makes it Master (the ineligible path of [`Router`]).
//! - While the node is master, the RFC applies unchanged: a third-party
//!   router with a higher priority takes `[vrrp6]` over (§6.4.3), and its
//!   silence gives it back (§6.4.2). The storage stays with the `[vrrp]`
//!   master whatever `[vrrp6]` does.

use std::time::Instant;

use super::{Action, Input, Params, Reason, Router};
use crate::wire::VrrpState;

/// A [`Router`] gated by the node's role. See the module documentation.
#[derive(Debug, Clone)]
pub struct SyncedRouter {
    router: Router,
    /// Whether the node is the `[vrrp]` master, as last told.
    node_master: bool,
}

impl SyncedRouter {
    /// A gated router in Initialize; the node is not master yet.
    pub fn new(params: Params, now: Instant) -> Self {
        let mut router = Router::new(params);
        // Ineligible until the node is master: the Startup that follows
        // enters Backup (never the §6.4.1 owner takeover). In Initialize
        // this yields no action.
        let _ = router.handle(Input::SetPriority(0), now);
        SyncedRouter {
            router,
            node_master: false,
        }
    }

    /// §6.4.1 Startup, then follow the node's role.
    pub fn startup(&mut self, node_master: bool, now: Instant) -> Vec<Action> {
        let mut out = self.router.handle(Input::Startup, now);
        out.extend(self.follow_node(node_master, now));
        out
    }

    /// §6.4.2/§6.4.3 Shutdown: a master sends its priority-0 advert.
    pub fn shutdown(&mut self, now: Instant) -> Vec<Action> {
        self.router.handle(Input::Shutdown, now)
    }

    /// The node's role changed (or may have): become Master at once when it
    /// became master, resign when it stopped being master.
    pub fn follow_node(&mut self, node_master: bool, now: Instant) -> Vec<Action> {
        if node_master == self.node_master {
            return Vec::new();
        }
        self.node_master = node_master;
        if node_master {
            let priority = self.router.params().priority;
            let mut out = self.router.handle(Input::SetPriority(priority), now);
            out.extend(self.router.take_over(Reason::SyncGroup, now));
            out
        } else {
            // A master resigns with a priority-0 advert (§6.4.3); a backup
            // only becomes ineligible.
            self.router.handle(Input::SetPriority(0), now)
        }
    }

    /// An admitted `[vrrp6]` advert, or the timer returned by
    /// [`SyncedRouter::poll_timeout`]; the RFC 5798 §6.4 rules apply, the
    /// gate through the effective priority.
    pub fn handle(&mut self, input: Input, now: Instant) -> Vec<Action> {
        match input {
            // The gate owns the priority and the role; the edges only feed
            // adverts and timeouts.
            Input::SetPriority(_) | Input::Startup | Input::Shutdown => Vec::new(),
            other => self.router.handle(other, now),
        }
    }

    /// When to deliver [`Input::Timeout`].
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.router.poll_timeout()
    }

    /// The router inside: state, master, intervals.
    pub fn router(&self) -> &Router {
        &self.router
    }

    /// The state of `[vrrp6]`.
    pub fn state(&self) -> VrrpState {
        self.router.state()
    }

    /// Whether the node is the `[vrrp]` master, as last told.
    pub fn node_master(&self) -> bool {
        self.node_master
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv6Addr};
    use std::time::Duration;

    use super::*;
    use crate::election::ReceivedAdvert;
    use crate::wire::Centis;

    fn ll(last: u16) -> IpAddr {
        IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, last))
    }

    fn params(priority: u8) -> Params {
        Params {
            vrid: 60,
            priority,
            advert_interval: Centis(50),
            preempt: true,
            preempt_delay: Duration::ZERO,
            primary_address: ll(1),
        }
    }

    fn advert(from: u16, priority: u8) -> Input {
        Input::Advert(ReceivedAdvert {
            source: ll(from),
            priority,
            max_advert_interval: Centis(50),
        })
    }

    fn sent(actions: &[Action]) -> Vec<u8> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::SendAdvert { priority } => Some(*priority),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn becomes_master_only_with_the_node_and_at_once() {
        let t0 = Instant::now();
        let mut r = SyncedRouter::new(params(200), t0);
        let out = r.startup(false, t0);
        assert_eq!(r.state(), VrrpState::Backup);
        assert!(sent(&out).is_empty());
        // The node becomes master: no Master_Down wait.
        let out = r.follow_node(true, t0 + Duration::from_millis(10));
        assert_eq!(r.state(), VrrpState::Master);
        assert_eq!(sent(&out), vec![200]);
        assert!(out.contains(&Action::StateChange {
            from: VrrpState::Backup,
            to: VrrpState::Master,
            reason: Reason::SyncGroup,
        }));
        // Its own timer, at its own interval.
        assert_eq!(
            r.poll_timeout(),
            Some(t0 + Duration::from_millis(10) + Duration::from_millis(500))
        );
    }

    #[test]
    fn an_address_owner_waits_for_the_node() {
        let t0 = Instant::now();
        let mut r = SyncedRouter::new(params(255), t0);
        let _ = r.startup(false, t0);
        assert_eq!(r.state(), VrrpState::Backup);
    }

    #[test]
    fn resigns_when_the_node_stops_being_master() {
        let t0 = Instant::now();
        let mut r = SyncedRouter::new(params(200), t0);
        let _ = r.startup(true, t0);
        assert_eq!(r.state(), VrrpState::Master);
        let out = r.follow_node(false, t0 + Duration::from_secs(1));
        assert_eq!(sent(&out), vec![0]);
        assert_eq!(r.state(), VrrpState::Backup);
        assert_eq!(r.router().effective_priority(), 0);
    }

    #[test]
    fn master_down_timer_is_ignored_on_a_backup_node() {
        let t0 = Instant::now();
        let mut r = SyncedRouter::new(params(200), t0);
        let _ = r.startup(false, t0);
        let _ = r.handle(advert(9, 100), t0);
        assert_eq!(r.router().master(), Some(ll(9)));
        // The other master goes silent; the timer fires again and again.
        let mut now = t0;
        for _ in 0..5 {
            now = r.poll_timeout().unwrap_or(now) + Duration::from_millis(1);
            let out = r.handle(Input::Timeout, now);
            assert!(sent(&out).is_empty());
            assert_eq!(r.state(), VrrpState::Backup);
        }
        assert_eq!(r.router().master(), None);
    }

    #[test]
    fn a_higher_priority_third_party_takes_over_and_gives_back() {
        let t0 = Instant::now();
        let mut r = SyncedRouter::new(params(100), t0);
        let _ = r.startup(true, t0);
        let out = r.handle(advert(9, 150), t0 + Duration::from_millis(100));
        assert_eq!(r.state(), VrrpState::Backup);
        assert!(out.contains(&Action::StateChange {
            from: VrrpState::Master,
            to: VrrpState::Backup,
            reason: Reason::HigherPriorityMaster,
        }));
        assert_eq!(r.router().master(), Some(ll(9)));
        // The third party goes silent: the node is still master, so the
        // RFC's Master_Down takeover applies (§6.4.2).
        let at = r.poll_timeout().unwrap_or(t0);
        let _ = r.handle(Input::Timeout, at);
        assert_eq!(r.state(), VrrpState::Master);
    }

    #[test]
    fn a_lower_priority_third_party_does_not_take_over() {
        let t0 = Instant::now();
        let mut r = SyncedRouter::new(params(200), t0);
        let _ = r.startup(true, t0);
        let _ = r.handle(advert(9, 100), t0 + Duration::from_millis(100));
        assert_eq!(r.state(), VrrpState::Master);
    }

    #[test]
    fn the_edges_cannot_bypass_the_gate() {
        let t0 = Instant::now();
        let mut r = SyncedRouter::new(params(200), t0);
        let _ = r.startup(false, t0);
        assert!(r.handle(Input::SetPriority(200), t0).is_empty());
        assert_eq!(r.router().effective_priority(), 0);
    }
}
