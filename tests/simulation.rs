//! The election core on many nodes: random scenarios over a fake clock and a
//! fake network (loss, delay, partitions, crashes, restarts), and directed
//! scenarios with exact timings.
//!
//! `SIM_SEEDS=N` runs N random seeds (default 3000); `SIM_SEED=N` replays one
//! and prints its scenario.

// A test reports a failure by panicking: unwrap and expect are how it
// says "this must hold" (the library itself denies them).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sim;

use std::net::Ipv4Addr;
use std::time::Duration;

use rcbsd_failover::election::{Params, Reason};
use rcbsd_failover::wire::{Centis, VrrpState};

use sim::scenario::Scenario;
use sim::world::{Network, Transition, World};

const DEFAULT_SEEDS: u64 = 3000;

fn env_u64(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    match value.parse() {
        Ok(n) => Some(n),
        Err(_) => panic!("{name}={value:?} is not a number"),
    }
}

#[test]
fn random_scenarios_settle_on_one_master_and_stay_there() {
    let replay = env_u64("SIM_SEED");
    let seeds = match replay {
        Some(seed) => seed..seed + 1,
        None => 0..env_u64("SIM_SEEDS").unwrap_or(DEFAULT_SEEDS),
    };
    let mut failures = Vec::new();
    for seed in seeds {
        let scenario = Scenario::generate(seed);
        if replay.is_some() {
            eprintln!("seed {seed}:\n{scenario}");
        }
        if let Err(failure) = scenario.run() {
            failures.push(format!(
                "seed {seed} failed: {}\nscenario: {scenario}last transitions:\n{}\
                 replay: SIM_SEED={seed} cargo test --test simulation -- --nocapture\n",
                failure.reason, failure.recent
            ));
            if failures.len() >= 5 {
                break;
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

// ----- Directed scenarios -----------------------------------------------------

const ONE_SECOND: Centis = Centis(100);

fn node(last_octet: u8, priority: u8) -> Params {
    Params {
        vrid: 51,
        priority,
        advert_interval: ONE_SECOND,
        preempt: true,
        preempt_delay: Duration::ZERO,
        primary_address: Ipv4Addr::new(198, 18, 0, last_octet).into(),
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A perfect segment, so that timings are exact.
fn perfect_world(nodes: Vec<Params>) -> World {
    World::new(
        nodes,
        Network {
            loss_percent: 0,
            max_delay: Duration::ZERO,
        },
        0,
    )
}

fn run(world: &mut World, until: Duration) {
    if let Err(e) = world.run_until(until) {
        panic!("{e}\n{}", world.recent_transitions(20));
    }
}

fn start(world: &mut World, node: usize) {
    if let Err(e) = world.start(node) {
        panic!("{e}");
    }
}

/// The first transition of `node` into `to` at or after `since`.
fn entered(world: &World, node: usize, to: VrrpState, since: Duration) -> Option<&Transition> {
    world
        .transitions
        .iter()
        .find(|t| t.node == node && t.to == to && t.at >= since)
}

#[test]
fn address_owner_takes_over_at_startup() {
    // RFC 5798 §6.4.1: priority 255 becomes master at once; the running
    // master yields on its first advert (§6.4.3).
    let mut w = perfect_world(vec![node(1, 100), node(2, 255)]);
    start(&mut w, 0);
    run(&mut w, ms(5000));
    assert_eq!(w.masters(), vec![0]);
    start(&mut w, 1);
    let owner = entered(&w, 1, VrrpState::Master, ms(5000)).expect("owner became master");
    assert_eq!((owner.at, owner.reason), (ms(5000), Reason::AddressOwner));
    run(&mut w, ms(20_000));
    let yielded = entered(&w, 0, VrrpState::Backup, ms(5000)).expect("old master yielded");
    assert_eq!(
        (yielded.at, yielded.reason),
        (ms(5000), Reason::HigherPriorityMaster)
    );
    assert_eq!(w.masters(), vec![1]);
}

#[test]
fn clean_stop_hands_over_after_skew_time() {
    // RFC 5798 §6.4.2: a priority-0 advert sets the Master_Down_Timer to
    // Skew_Time: (156 * 100) / 256 cs = 0.6 s for priority 100, not 3.6 s.
    let mut w = perfect_world(vec![node(1, 200), node(2, 100)]);
    start(&mut w, 0);
    start(&mut w, 1);
    run(&mut w, ms(10_000));
    assert_eq!(w.masters(), vec![0]);
    w.stop(0).expect("clean stop");
    run(&mut w, ms(20_000));
    let took_over = entered(&w, 1, VrrpState::Master, ms(10_000)).expect("backup took over");
    assert_eq!(
        (took_over.at, took_over.reason),
        (ms(10_600), Reason::MasterResigned)
    );
}

#[test]
fn crash_hands_over_after_master_down_interval() {
    // RFC 5798 §6.4.2: no advert for Master_Down_Interval (3.6 s at priority
    // 100) after the last one. Priority 200 became master at 3.21 s, so its
    // last advert before a crash at 10 s left at 9.21 s.
    let mut w = perfect_world(vec![node(1, 200), node(2, 100)]);
    start(&mut w, 0);
    start(&mut w, 1);
    run(&mut w, ms(10_000));
    w.crash(0);
    run(&mut w, ms(20_000));
    let took_over = entered(&w, 1, VrrpState::Master, ms(10_000)).expect("backup took over");
    assert_eq!(
        (took_over.at, took_over.reason),
        (ms(9210 + 3600), Reason::MasterDown)
    );
}

#[test]
fn preempt_off_keeps_a_lower_priority_master() {
    // RFC 5798 §6.4.2: Preempt_Mode false accepts the lower-priority master.
    let mut higher = node(2, 200);
    higher.preempt = false;
    let mut w = perfect_world(vec![node(1, 100), higher]);
    start(&mut w, 0);
    run(&mut w, ms(5000));
    start(&mut w, 1);
    run(&mut w, ms(60_000));
    assert_eq!(w.masters(), vec![0]);
    assert_eq!(w.state(1), VrrpState::Backup);
    assert_eq!(
        w.router(1).and_then(|r| r.master()),
        Some(node(1, 100).primary_address)
    );
}

#[test]
fn preempt_delay_postpones_preemption() {
    // keepalived's preempt_delay on RFC 5798 §6.4.2. n0 (100) is master from
    // 3.6 s, advertising at 3.6 + k s. n1 (200, delay 5 s) starts at 5 s; it
    // first hears n0 at 5.6 s and follows it until 10.6 s, the last advert
    // accepted at 9.6 s; it takes over Master_Down_Interval (3.21 s) later.
    // Without the delay it would have taken over at 5 + 3.21 s.
    let mut delayed = node(2, 200);
    delayed.preempt_delay = Duration::from_secs(5);
    let mut w = perfect_world(vec![node(1, 100), delayed]);
    start(&mut w, 0);
    run(&mut w, ms(5000));
    start(&mut w, 1);
    run(&mut w, ms(30_000));
    let took_over = entered(&w, 1, VrrpState::Master, ms(5000)).expect("n1 preempted");
    assert_eq!(
        (took_over.at, took_over.reason),
        (ms(9600 + 3210), Reason::MasterDown)
    );
    assert_eq!(w.masters(), vec![1]);
}

#[test]
fn two_masters_after_a_partition_heal_converge_at_once() {
    // RFC 5798 §6.4.3: the lower master yields on hearing the higher one; the
    // higher answers the lower one's advert at once (advert + ARPs), so the
    // yield happens at the lower one's first advert after the heal.
    let mut w = perfect_world(vec![node(1, 150), node(2, 100)]);
    w.partition(vec![0, 1]);
    start(&mut w, 1); // master at 3.6 s, adverts at x.6 s
    run(&mut w, ms(500));
    start(&mut w, 0); // master at 0.5 + 3.41 s, adverts at x.91 s
    run(&mut w, ms(10_000));
    assert_eq!(w.masters(), vec![0, 1]);
    w.heal();
    run(&mut w, ms(30_000));
    let yielded = entered(&w, 1, VrrpState::Backup, ms(10_000)).expect("lower master yielded");
    assert_eq!(
        (yielded.at, yielded.reason),
        (ms(10_600), Reason::HigherPriorityMaster)
    );
    assert_eq!(w.garps, vec![(ms(10_600), 0, node(2, 100).primary_address)]);
    assert_eq!(w.masters(), vec![0]);
}

#[test]
fn equal_priority_masters_keep_the_higher_address() {
    // RFC 5798 §6.4.3: equal priority, the greater primary address wins.
    let mut w = perfect_world(vec![node(1, 100), node(2, 100)]);
    w.partition(vec![0, 1]);
    start(&mut w, 0);
    start(&mut w, 1);
    run(&mut w, ms(10_000));
    assert_eq!(w.masters(), vec![0, 1]);
    w.heal();
    run(&mut w, ms(20_000));
    assert_eq!(w.masters(), vec![1]);
}
