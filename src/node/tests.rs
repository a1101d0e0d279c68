//! The node core rule by rule, with time passed in. The many-node
//! behaviour (leases across partitions, crashes) is in tests/quorum_sim.rs,
//! which drives this same struct.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use super::*;
use crate::election::ReceivedAdvert;
use crate::quorum::Settings as MembershipSettings;
use crate::wire::{Centis, VrrpState};

const ME: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 11));
const OTHER: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 12));

fn settings(priority: u8) -> Settings {
    Settings {
        interface: "em0".into(),
        params: Params {
            vrid: 51,
            priority,
            advert_interval: Centis(100),
            preempt: true,
            preempt_delay: Duration::ZERO,
            primary_address: ME,
        },
        may_be_master: true,
        fault_hold_off: Duration::from_secs(60),
        cluster: None,
        watchdog: None,
        release_attempts: 3,
    }
}

fn clustered(priority: u8) -> Settings {
    Settings {
        cluster: Some(ClusterSettings {
            state: NodeQuorumSettings {
                membership: MembershipSettings {
                    me: "n1".into(),
                    nodes: vec!["n1".into(), "n2".into(), "n3".into()],
                    lease: Duration::from_secs(4),
                    quorum_hash: 1,
                },
                fence_margin: Duration::from_secs(3),
                placement: Vec::new(),
                config_hash: 1,
            },
            placement: true,
            candidates: vec!["web1".into()],
            handover: None,
            ride_through: false,
        }),
        ..settings(priority)
    }
}

/// A node that has started and become master on its own (no peer heard).
fn master(settings: Settings) -> (NodeCore, Instant) {
    let t0 = Instant::now();
    let mut core = NodeCore::new(settings, 1, t0);
    core.handle(Input::Start, t0);
    let later = t0 + Duration::from_secs(4);
    core.handle(Input::Timeout, later);
    assert_eq!(core.state(), VrrpState::Master);
    (core, later)
}

fn published(effects: &[Effect]) -> Option<&Decision> {
    effects.iter().rev().find_map(|e| match e {
        Effect::Publish { decision, .. } => Some(decision),
        _ => None,
    })
}

fn notices(effects: &[Effect]) -> Vec<&Notice> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Notice(n) => Some(n),
            _ => None,
        })
        .collect()
}

/// A report of the worker having served every decision so far.
fn holding(master: bool, release_failures: u32) -> Holding {
    Holding {
        applied: u64::MAX / 2,
        master,
        environments: BTreeSet::new(),
        running: BTreeSet::new(),
        release_failures,
        mounted: false,
        reclaimable: false,
    }
}

#[test]
fn a_lone_node_becomes_master_and_the_worker_is_told() {
    let t0 = Instant::now();
    let mut core = NodeCore::new(settings(100), 1, t0);
    let effects = core.handle(Input::Start, t0);
    assert_eq!(
        published(&effects).map(|d| &d.role),
        Some(&Role::Follower { master: None })
    );
    let deadline = core.poll_timeout(t0).expect("master down timer");
    let effects = core.handle(Input::Timeout, deadline);
    let decision = published(&effects).expect("a new decision");
    assert_eq!(decision.role, Role::Master);
    assert!(
        matches!(effects.last(), Some(Effect::Publish { cancel: true, .. })),
        "a new role cancels what runs"
    );
}

#[test]
fn a_failed_promote_faults_and_the_hold_off_clears_it() {
    let (mut core, now) = master(settings(100));
    let generation = core.generation();
    let effects = core.handle(
        Input::Worker(WorkerReport::PromoteFailed {
            reason: "fsck: exit 8".into(),
            generation,
        }),
        now,
    );
    assert!(core.fault().is_some());
    assert_eq!(core.state(), VrrpState::Fault);
    assert!(notices(&effects)
        .iter()
        .any(|n| matches!(n, Notice::Fault { reason } if reason.contains("fsck"))));
    let until = core.poll_timeout(now).expect("hold-off end");
    assert!(until <= now + Duration::from_secs(60));
    core.handle(Input::Timeout, now + Duration::from_secs(60));
    assert!(core.fault().is_none(), "cleared after the hold-off");
    assert!(
        !core.router().params().preempt,
        "no preemption after a failed promote until master again or resume"
    );
    core.handle(Input::Resume, now + Duration::from_secs(61));
    assert!(core.router().params().preempt);
}

#[test]
fn a_promote_failure_for_a_superseded_decision_is_no_fault() {
    let (mut core, now) = master(settings(100));
    let stale = core.generation().wrapping_sub(1);
    let effects = core.handle(
        Input::Worker(WorkerReport::PromoteFailed {
            reason: "x".into(),
            generation: stale,
        }),
        now,
    );
    assert!(core.fault().is_none());
    assert!(matches!(
        notices(&effects)[..],
        [Notice::PromoteFailedSuperseded { .. }]
    ));
}

#[test]
fn demote_override_resigns_and_link_loss_faults() {
    let (mut core, now) = master(settings(100));
    core.handle(Input::Override(Override::Demote), now);
    assert_eq!(core.router().effective_priority(), 0);
    assert_ne!(core.state(), VrrpState::Master);
    core.handle(Input::Override(Override::None), now);
    core.handle(Input::Link { up: false }, now);
    assert_eq!(core.state(), VrrpState::Fault);
    assert!(core.fault().is_some_and(|f| f.reason.contains("em0")));
    core.handle(Input::Link { up: true }, now);
    assert!(core.fault().is_none());
}

#[test]
fn a_master_whose_demotes_keep_failing_takes_the_role_back_without_a_watchdog() {
    let (mut core, now) = master(settings(100));
    // Preempted by a higher priority: the core wants it to follow...
    core.handle(
        Input::Advert(ReceivedAdvert {
            source: OTHER,
            priority: 200,
            max_advert_interval: Centis(100),
        }),
        now,
    );
    assert_eq!(core.state(), VrrpState::Backup);
    // ...but every demote fails and the storage stays held.
    let effects = core.handle(Input::Worker(WorkerReport::Holding(holding(true, 3))), now);
    assert!(notices(&effects).iter().any(|n| matches!(
        n,
        Notice::ReleaseStuck {
            action: StuckAction::Retake,
            ..
        }
    )));
    assert!(core.is_retained());
    assert_eq!(core.router().effective_priority(), priority::PROMOTED);
    assert!(core.router().params().preempt);
    core.handle(Input::Resume, now);
    assert!(!core.is_retained(), "the operator takes over");
}

#[test]
fn with_a_watchdog_a_stuck_release_stops_the_pats() {
    let mut s = settings(100);
    s.watchdog = Some(WatchdogRule {
        timeout: Duration::from_secs(2),
        slack: Duration::from_millis(100),
    });
    let (mut core, now) = master(s);
    assert_eq!(core.watchdog(now), Verdict::Keep, "nothing reported yet");
    core.handle(Input::Worker(WorkerReport::Holding(holding(true, 0))), now);
    assert_eq!(
        core.watchdog(now),
        Verdict::Pat,
        "no leases without [cluster]"
    );
    core.handle(Input::Worker(WorkerReport::Holding(holding(true, 3))), now);
    assert!(matches!(core.watchdog(now), Verdict::Withhold { .. }));
    assert!(!core.is_retained(), "the reset releases, no retake");
    core.handle(Input::Worker(WorkerReport::Holding(holding(false, 0))), now);
    assert_eq!(core.watchdog(now), Verdict::Disarm);
}

#[test]
fn before_the_worker_looked_everything_it_could_hold_is_claimed() {
    let t0 = Instant::now();
    let mut core = NodeCore::new(clustered(100), 1, t0);
    core.handle(Input::Start, t0);
    let claims: Vec<String> = core
        .cluster()
        .expect("cluster")
        .membership()
        .claims()
        .map(ToString::to_string)
        .collect();
    assert_eq!(claims, ["master", "env:web1"]);
    // The worker found nothing, and has served the first decision (which
    // allowed none of them): the claims go.
    let nothing = Holding {
        applied: 1,
        ..Holding::default()
    };
    core.handle(Input::Worker(WorkerReport::Holding(nothing)), t0);
    let claims = core
        .cluster()
        .expect("cluster")
        .membership()
        .claims()
        .count();
    assert_eq!(claims, 0);
}

#[test]
fn a_cold_start_waits_for_quorum_without_calling_it_lost() {
    let t0 = Instant::now();
    let mut core = NodeCore::new(clustered(100), 1, t0);
    let effects = core.handle(Input::Start, t0);
    assert!(notices(&effects)
        .iter()
        .any(|n| matches!(n, Notice::QuorumWaiting { .. })));
    assert!(!notices(&effects)
        .iter()
        .any(|n| matches!(n, Notice::QuorumLost { .. })));
    assert_eq!(
        core.router().effective_priority(),
        0,
        "no quorum, no master"
    );
}

#[test]
fn with_a_watchdog_held_resources_without_a_lease_withhold() {
    let mut s = clustered(100);
    s.watchdog = Some(WatchdogRule {
        timeout: Duration::from_secs(2),
        slack: Duration::from_millis(100),
    });
    let t0 = Instant::now();
    let mut core = NodeCore::new(s, 1, t0);
    core.handle(Input::Start, t0);
    core.handle(Input::Worker(WorkerReport::Holding(holding(true, 0))), t0);
    assert!(
        matches!(core.watchdog(t0), Verdict::Withhold { why } if why.contains("master")),
        "the storage is held and no majority grants it"
    );
}

fn peer_heartbeat(seq: u64, serving: bool) -> Heartbeat {
    reclaimable_heartbeat(seq, serving, false)
}

fn reclaimable_heartbeat(seq: u64, serving: bool, reclaimable: bool) -> Heartbeat {
    Heartbeat {
        node: "n2".into(),
        incarnation: 1,
        seq,
        state: VrrpState::Master,
        priority: 200,
        quorum: true,
        handing_over: false,
        quiesced: false,
        serving,
        reclaimable,
        following: Some(OTHER),
        config_hash: 1,
        quorum_hash: 1,
        acks: Vec::new(),
        claims: Vec::new(),
        grants: Vec::new(),
        running: Vec::new(),
        handoffs: Vec::new(),
    }
}

/// Issue 14: a follower riding through learns from the new master's
/// heartbeat (status bit 3) that it serves; the decision carries it
/// without cancelling anything. In remount mode it is never set.
#[test]
fn the_decision_says_when_the_followed_master_serves() {
    for ride_through in [true, false] {
        let mut settings = clustered(100);
        if let Some(c) = settings.cluster.as_mut() {
            c.ride_through = ride_through;
        }
        let t0 = Instant::now();
        let mut core = NodeCore::new(settings, 1, t0);
        core.handle(Input::Start, t0);
        core.handle(
            Input::Advert(ReceivedAdvert {
                source: OTHER,
                priority: 200,
                max_advert_interval: Centis(100),
            }),
            t0,
        );
        assert_eq!(
            core.published().map(|d| &d.role),
            Some(&Role::Follower {
                master: Some(OTHER)
            })
        );
        core.handle(Input::Heartbeat(peer_heartbeat(1, false)), t0);
        assert_eq!(core.published().map(|d| d.master_serving), Some(false));
        let effects = core.handle(Input::Heartbeat(peer_heartbeat(2, true)), t0);
        assert_eq!(
            core.published().map(|d| d.master_serving),
            Some(ride_through)
        );
        if ride_through {
            assert!(matches!(
                effects.last(),
                Some(Effect::Publish { cancel: false, decision }) if decision.target().master_serving
            ));
        }
        // Serving but not reclaimable so far; then reclaimable (bit 4):
        // a new decision, nothing cancelled.
        assert_eq!(core.published().map(|d| d.master_reclaimable), Some(false));
        let effects = core.handle(Input::Heartbeat(reclaimable_heartbeat(3, true, true)), t0);
        assert_eq!(
            core.published()
                .map(|d| (d.master_serving, d.master_reclaimable)),
            Some((ride_through, ride_through))
        );
        if ride_through {
            assert!(matches!(
                effects.last(),
                Some(Effect::Publish { cancel: false, decision })
                    if decision.target().master_reclaimable
            ));
        }
    }
}

/// The master serves once the worker has served its master decision
/// (the promote finished) and while it holds the master resources.
#[test]
fn a_master_serves_once_its_promote_is_reported_done() {
    let (mut core, now) = master(settings(100));
    assert!(!core.is_serving(), "the promote has not been reported yet");
    core.handle(Input::Worker(WorkerReport::Holding(holding(true, 0))), now);
    assert!(core.is_serving());
    core.handle(Input::Override(Override::Demote), now);
    assert!(!core.is_serving(), "no longer the master decision");
}
