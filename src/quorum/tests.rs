//! Membership rules on small hand-driven clusters (the randomized version is
//! tests/simulation.rs).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use super::lease::holder_span;
use super::{Ignored, LocalReport, Membership, Settings};
use crate::wire::heartbeat::Resource;

const LEASE: Duration = Duration::from_secs(3);

fn cluster(names: &[&str], now: Instant) -> Vec<Membership> {
    names
        .iter()
        .enumerate()
        .map(|(i, me)| {
            Membership::new(
                Settings {
                    me: (*me).to_owned(),
                    nodes: names.iter().map(|n| (*n).to_owned()).collect(),
                    lease: LEASE,
                    quorum_hash: 7,
                },
                100 + i as u64,
                now,
            )
        })
        .collect()
}

/// Node `from` sends one heartbeat that every node in `to` hears at `now`.
fn send(nodes: &mut [Membership], from: usize, to: &[usize], now: Instant) {
    let hb = nodes[from].heartbeat(now, &LocalReport::default(), false);
    for &i in to {
        nodes[i].receive(hb.clone(), now).unwrap();
    }
}

/// Everyone sends to everyone else `rounds` times, `step` apart; returns the
/// time after the last round.
fn rounds(nodes: &mut [Membership], mut now: Instant, n: usize, step: Duration) -> Instant {
    let all: Vec<usize> = (0..nodes.len()).collect();
    for _ in 0..n {
        for from in 0..nodes.len() {
            let to: Vec<usize> = all.iter().copied().filter(|&i| i != from).collect();
            send(nodes, from, &to, now);
        }
        now += step;
    }
    now
}

fn claim(node: &mut Membership, resource: Resource) {
    node.set_claims(&BTreeSet::from([resource]));
}

const STEP: Duration = Duration::from_millis(200);

#[test]
fn a_claim_is_held_once_a_majority_grants_it_after_the_quiet_start() {
    let t0 = Instant::now();
    let mut nodes = cluster(&["a", "b", "c"], t0);
    claim(&mut nodes[0], Resource::Master);
    // Rule 2: nobody grants during its first lease after start.
    let now = rounds(&mut nodes, t0, 5, STEP);
    assert_eq!(nodes[0].lease_until(&Resource::Master, now), None);
    assert!(
        nodes[0].quorum_until(now).is_some(),
        "quorum needs no grants"
    );
    let now = rounds(&mut nodes, t0 + LEASE, 3, STEP);
    let until = nodes[0].lease_until(&Resource::Master, now).expect("held");
    assert!(until > now && until <= now + holder_span(LEASE));
    assert_eq!(nodes[1].supported_holder(&Resource::Master, now), Some("a"));
}

#[test]
fn a_grant_is_sticky_so_a_second_claimant_never_holds_at_the_same_time() {
    let t0 = Instant::now();
    let mut nodes = cluster(&["a", "b", "c"], t0);
    let now = rounds(&mut nodes, t0, 1, LEASE);
    claim(&mut nodes[0], Resource::Master);
    let now = rounds(&mut nodes, now, 3, STEP);
    assert!(nodes[0].lease_until(&Resource::Master, now).is_some());
    // b claims too while a still claims: b gets no majority.
    claim(&mut nodes[1], Resource::Master);
    let now = rounds(&mut nodes, now, 10, STEP);
    assert!(nodes[0].lease_until(&Resource::Master, now).is_some());
    assert_eq!(nodes[1].lease_until(&Resource::Master, now), None);
}

#[test]
fn a_released_claim_frees_the_grant_at_once() {
    let t0 = Instant::now();
    let mut nodes = cluster(&["a", "b", "c"], t0);
    let now = rounds(&mut nodes, t0, 1, LEASE);
    claim(&mut nodes[0], Resource::Master);
    let now = rounds(&mut nodes, now, 3, STEP);
    claim(&mut nodes[1], Resource::Master);
    nodes[0].set_claims(&BTreeSet::new());
    let now = rounds(&mut nodes, now, 3, STEP);
    assert_eq!(nodes[0].lease_until(&Resource::Master, now), None);
    assert!(nodes[1].lease_until(&Resource::Master, now).is_some());
}

#[test]
fn an_isolated_holder_loses_its_lease_before_the_others_may_grant_again() {
    let t0 = Instant::now();
    let mut nodes = cluster(&["a", "b", "c"], t0);
    let now = rounds(&mut nodes, t0, 1, LEASE);
    claim(&mut nodes[0], Resource::Master);
    let now = rounds(&mut nodes, now, 3, STEP);
    let held_until = nodes[0].lease_until(&Resource::Master, now).unwrap();
    // a is cut off: it hears nobody, nobody hears it. b claims.
    claim(&mut nodes[1], Resource::Master);
    let mut t = now;
    let mut b_holds_from = None;
    while t < now + 2 * LEASE {
        send(&mut nodes, 1, &[2], t);
        send(&mut nodes, 2, &[1], t);
        if b_holds_from.is_none() && nodes[1].lease_until(&Resource::Master, t).is_some() {
            b_holds_from = Some(t);
        }
        if let Some(until) = nodes[0].lease_until(&Resource::Master, t) {
            assert!(
                until <= held_until,
                "an isolated holder's lease never grows"
            );
        }
        t += Duration::from_millis(10);
    }
    let b_from = b_holds_from.expect("the majority side elects a new holder");
    assert!(
        b_from >= held_until,
        "b held from {b_from:?}, a until {held_until:?}"
    );
    assert_eq!(nodes[0].quorum_until(t), None);
}

#[test]
fn quorum_needs_a_strict_majority_of_acknowledgements() {
    let t0 = Instant::now();
    let mut nodes = cluster(&["a", "b", "c", "d"], t0);
    // a and b hear each other only: 2 of 4 is no majority.
    send(&mut nodes, 0, &[1], t0);
    send(&mut nodes, 1, &[0], t0);
    send(&mut nodes, 0, &[1], t0 + STEP);
    send(&mut nodes, 1, &[0], t0 + STEP);
    assert_eq!(nodes[0].quorum_until(t0 + STEP), None);
    send(&mut nodes, 2, &[0], t0 + STEP);
    send(&mut nodes, 0, &[2], t0 + 2 * STEP);
    send(&mut nodes, 2, &[0], t0 + 2 * STEP);
    assert!(nodes[0].quorum_until(t0 + 2 * STEP).is_some());
}

#[test]
fn stale_unknown_and_own_name_heartbeats_are_ignored() {
    let t0 = Instant::now();
    let mut nodes = cluster(&["a", "b"], t0);
    let first = nodes[1].heartbeat(t0, &LocalReport::default(), false);
    let second = nodes[1].heartbeat(t0, &LocalReport::default(), false);
    nodes[0].receive(second, t0).unwrap();
    assert_eq!(nodes[0].receive(first.clone(), t0), Err(Ignored::Stale));
    let mut stranger = first.clone();
    stranger.node = "z".to_owned();
    assert_eq!(nodes[0].receive(stranger, t0), Err(Ignored::UnknownNode));
    let mut own = first;
    own.node = "a".to_owned();
    assert_eq!(nodes[0].receive(own, t0), Err(Ignored::OwnName));
}

#[test]
fn a_restarted_node_grants_nothing_during_its_quiet_start() {
    let t0 = Instant::now();
    let mut nodes = cluster(&["a", "b", "c"], t0);
    let now = rounds(&mut nodes, t0, 1, LEASE);
    claim(&mut nodes[0], Resource::Master);
    let now = rounds(&mut nodes, now, 3, STEP);
    // c restarts: a new incarnation forgets its grant to a.
    nodes[2] = Membership::new(nodes[2].settings().clone(), 999, now);
    claim(&mut nodes[1], Resource::Master);
    nodes[0].set_claims(&BTreeSet::new());
    // a released; b claims; only b itself and the restarted c could grant.
    let later = rounds(&mut nodes, now, 5, STEP);
    assert_eq!(nodes[2].supported_holder(&Resource::Master, later), None);
    assert!(nodes[1].lease_until(&Resource::Master, later).is_some());
}

#[test]
fn a_peer_with_other_lease_timings_is_no_voter() {
    let now = Instant::now();
    let mut nodes = cluster(&["a", "b", "c"], now);
    let mut odd = nodes[1].heartbeat(now, &LocalReport::default(), false);
    odd.quorum_hash = 8;
    assert_eq!(nodes[0].receive(odd, now), Err(Ignored::ConfigMismatch));
    assert!(nodes[0].peer("b").is_none(), "nothing of it is taken");
}

#[test]
fn a_restarted_peer_with_a_lower_incarnation_is_taken_after_a_silent_lease() {
    let now = Instant::now();
    let mut nodes = cluster(&["a", "b", "c"], now);
    send(&mut nodes, 1, &[0], now);
    // b restarts with its state_dir lost and its clock behind.
    let mut reborn = Membership::new(
        Settings {
            me: "b".to_owned(),
            nodes: vec!["a".into(), "b".into(), "c".into()],
            lease: LEASE,
            quorum_hash: 7,
        },
        50,
        now,
    );
    let early = reborn.heartbeat(now + Duration::from_secs(1), &LocalReport::default(), false);
    assert_eq!(
        nodes[0].receive(early, now + Duration::from_secs(1)),
        Err(Ignored::Stale),
        "the old incarnation is still live"
    );
    let later = now + LEASE + Duration::from_millis(100);
    let hb = reborn.heartbeat(later, &LocalReport::default(), false);
    assert_eq!(nodes[0].receive(hb, later), Ok(()));
    assert_eq!(
        nodes[0].peer("b").map(|p| p.heartbeat.incarnation),
        Some(50)
    );
    // A recording of the old incarnation is never taken again.
    let old = Membership::new(
        Settings {
            me: "b".to_owned(),
            nodes: vec!["a".into(), "b".into(), "c".into()],
            lease: LEASE,
            quorum_hash: 7,
        },
        101,
        now,
    )
    .heartbeat(now, &LocalReport::default(), false);
    let much_later = later + LEASE * 3;
    assert_eq!(nodes[0].receive(old, much_later), Err(Ignored::Stale));
}
