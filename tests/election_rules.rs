//! The election core rule by rule: one test per rule of RFC 5798 §6.4 (with
//! RFC 9568's clarifications), and per documented extension (effective
//! priority, Fault, `preempt_delay`, the answer to a lower-priority master).
//!
//! Timer values are exact. At priority 100 and a 1 s interval:
//! Skew_Time = (156 * 100) / 256 = 60 cs, Master_Down_Interval = 3.6 s.

// A test reports a failure by panicking: unwrap and expect are how it
// says "this must hold" (the library itself denies them).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use rcbsd_failover::election::{Action, Input, Params, Reason, ReceivedAdvert, Router};
use rcbsd_failover::wire::Centis;
use rcbsd_failover::wire::VrrpState;

const OURS: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 10));
const HIGHER_ADDR: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 20));
const LOWER_ADDR: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 5));
const ONE_SECOND: Centis = Centis(100);

fn params(priority: u8) -> Params {
    Params {
        vrid: 51,
        priority,
        advert_interval: ONE_SECOND,
        preempt: true,
        preempt_delay: Duration::ZERO,
        primary_address: OURS,
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn advert(source: IpAddr, priority: u8, interval: Centis) -> Input {
    Input::Advert(ReceivedAdvert {
        source,
        priority,
        max_advert_interval: interval,
    })
}

fn change(from: VrrpState, to: VrrpState, reason: Reason) -> Action {
    Action::StateChange { from, to, reason }
}

fn send(priority: u8) -> Action {
    Action::SendAdvert { priority }
}

/// A router started at `t0` as backup.
fn backup_with(p: Params) -> (Router, Instant) {
    let t0 = Instant::now();
    let mut r = Router::new(p);
    r.handle(Input::Startup, t0);
    assert_eq!(r.state(), VrrpState::Backup);
    (r, t0)
}

fn backup(priority: u8) -> (Router, Instant) {
    backup_with(params(priority))
}

/// A router that became master when its Master_Down_Timer fired; returns the
/// time it did.
fn master(priority: u8) -> (Router, Instant) {
    let (mut r, _) = backup(priority);
    let at = r
        .poll_timeout()
        .expect("a backup runs the Master_Down_Timer");
    r.handle(Input::Timeout, at);
    assert_eq!(r.state(), VrrpState::Master);
    (r, at)
}

// ----- §6.4.1 Initialize ------------------------------------------------------

#[test]
fn address_owner_becomes_master_at_startup() {
    // RFC 5798 §6.4.1: priority 255 → send an ADVERTISEMENT, set the
    // Adver_Timer, transition to Master.
    let t0 = Instant::now();
    let mut r = Router::new(params(255));
    let actions = r.handle(Input::Startup, t0);
    assert_eq!(
        actions,
        vec![
            send(255),
            change(
                VrrpState::Initialize,
                VrrpState::Master,
                Reason::AddressOwner
            )
        ]
    );
    assert_eq!(r.poll_timeout(), Some(t0 + ms(1000)));
    assert_eq!(r.master(), Some(OURS));
}

#[test]
fn non_owner_starts_as_backup_with_master_down_timer() {
    // RFC 5798 §6.4.1: Master_Adver_Interval := Advertisement_Interval,
    // Master_Down_Timer := Master_Down_Interval (3 * 1 s + 0.6 s).
    let t0 = Instant::now();
    let mut r = Router::new(params(100));
    let actions = r.handle(Input::Startup, t0);
    assert_eq!(
        actions,
        vec![change(
            VrrpState::Initialize,
            VrrpState::Backup,
            Reason::Startup
        )]
    );
    assert_eq!(r.master_advert_interval(), ONE_SECOND);
    assert_eq!(r.master_down_interval(), ms(3600));
    assert_eq!(r.poll_timeout(), Some(t0 + ms(3600)));
    assert_eq!(r.master(), None);
}

#[test]
fn twenty_ms_adverts_give_a_seventy_ms_master_down_interval() {
    // RFC 5798 §6.1 with RFC 9568's centiseconds: 3 * 2 cs + (156 * 2) / 256 cs.
    let mut p = params(100);
    p.advert_interval = Centis(2);
    let (r, t0) = backup_with(p);
    assert_eq!(r.poll_timeout(), Some(t0 + ms(70)));
}

#[test]
fn startup_is_ignored_once_running() {
    // RFC 5798 §6.4.1: Startup is an event of the Initialize state only.
    let (mut r, t0) = backup(100);
    assert!(r.handle(Input::Startup, t0 + ms(10)).is_empty());
    assert_eq!(r.poll_timeout(), Some(t0 + ms(3600)));
}

#[test]
fn startup_with_fault_set_enters_fault() {
    // Extension: a node whose fault is known before it starts never runs as
    // an eligible backup.
    let t0 = Instant::now();
    let mut r = Router::new(params(255));
    assert!(r.handle(Input::SetFault(true), t0).is_empty());
    let actions = r.handle(Input::Startup, t0);
    assert_eq!(
        actions,
        vec![change(
            VrrpState::Initialize,
            VrrpState::Fault,
            Reason::Fault
        )]
    );
}

// ----- §6.4.2 Backup ----------------------------------------------------------

#[test]
fn backup_becomes_master_when_master_down_timer_fires() {
    // RFC 5798 §6.4.2: send an ADVERTISEMENT, set the Adver_Timer to
    // Advertisement_Interval, transition to Master.
    let (mut r, t0) = backup(100);
    assert!(r.handle(Input::Timeout, t0 + ms(3599)).is_empty());
    let actions = r.handle(Input::Timeout, t0 + ms(3600));
    assert_eq!(
        actions,
        vec![
            send(100),
            change(VrrpState::Backup, VrrpState::Master, Reason::MasterDown)
        ]
    );
    assert_eq!(r.poll_timeout(), Some(t0 + ms(4600)));
}

#[test]
fn backup_sets_master_down_timer_to_skew_time_on_priority_zero_advert() {
    // RFC 5798 §6.4.2: priority 0 → Master_Down_Timer := Skew_Time (0.6 s).
    let (mut r, t0) = backup(100);
    r.handle(advert(HIGHER_ADDR, 200, ONE_SECOND), t0 + ms(1000));
    assert!(r
        .handle(advert(HIGHER_ADDR, 0, ONE_SECOND), t0 + ms(2000))
        .is_empty());
    assert_eq!(r.poll_timeout(), Some(t0 + ms(2600)));
    assert_eq!(r.master(), None);
    let actions = r.handle(Input::Timeout, t0 + ms(2600));
    assert_eq!(
        actions,
        vec![
            send(100),
            change(VrrpState::Backup, VrrpState::Master, Reason::MasterResigned)
        ]
    );
}

#[test]
fn backup_learns_master_adver_interval_from_higher_priority_advert() {
    // RFC 5798 §6.4.2: Master_Adver_Interval := the advert's interval,
    // recompute Master_Down_Interval (3 * 0.5 s + (156 * 50) / 256 cs = 1.8 s),
    // reset the Master_Down_Timer.
    let (mut r, t0) = backup(100);
    assert!(r
        .handle(advert(HIGHER_ADDR, 200, Centis(50)), t0 + ms(1000))
        .is_empty());
    assert_eq!(r.master_advert_interval(), Centis(50));
    assert_eq!(r.poll_timeout(), Some(t0 + ms(2800)));
    assert_eq!(r.master(), Some(HIGHER_ADDR));
}

#[test]
fn backup_accepts_equal_priority_advert() {
    // RFC 5798 §6.4.2: "greater than or equal to the local Priority" resets
    // the timer, whatever the sender's address.
    let (mut r, t0) = backup(100);
    r.handle(advert(LOWER_ADDR, 100, ONE_SECOND), t0 + ms(1000));
    assert_eq!(r.poll_timeout(), Some(t0 + ms(4600)));
    assert_eq!(r.master(), Some(LOWER_ADDR));
}

#[test]
fn backup_with_preempt_discards_lower_priority_advert() {
    // RFC 5798 §6.4.2: Preempt_Mode true and a lower priority → discard; the
    // Master_Down_Timer runs out and we take over.
    let (mut r, t0) = backup(100);
    r.handle(advert(HIGHER_ADDR, 50, ONE_SECOND), t0 + ms(1000));
    assert_eq!(r.poll_timeout(), Some(t0 + ms(3600)));
    assert_eq!(r.master(), None);
    let actions = r.handle(Input::Timeout, t0 + ms(3600));
    assert_eq!(
        actions,
        vec![
            send(100),
            change(VrrpState::Backup, VrrpState::Master, Reason::MasterDown)
        ]
    );
}

#[test]
fn backup_without_preempt_follows_lower_priority_master() {
    // RFC 5798 §6.4.2: Preempt_Mode false → accept any non-zero priority.
    let mut p = params(200);
    p.preempt = false;
    let (mut r, t0) = backup_with(p);
    r.handle(advert(LOWER_ADDR, 50, ONE_SECOND), t0 + ms(1000));
    // Priority 200: Skew_Time = (56 * 100) / 256 = 21 cs → 3.21 s.
    assert_eq!(r.poll_timeout(), Some(t0 + ms(4210)));
    assert_eq!(r.master(), Some(LOWER_ADDR));
}

#[test]
fn backup_shutdown_cancels_master_down_timer() {
    // RFC 5798 §6.4.2: Shutdown → cancel the Master_Down_Timer, Initialize.
    let (mut r, t0) = backup(100);
    let actions = r.handle(Input::Shutdown, t0 + ms(10));
    assert_eq!(
        actions,
        vec![change(
            VrrpState::Backup,
            VrrpState::Initialize,
            Reason::Shutdown
        )]
    );
    assert_eq!(r.poll_timeout(), None);
    assert!(r.handle(Input::Timeout, t0 + ms(3600)).is_empty());
}

#[test]
fn early_timeout_does_nothing() {
    // RFC 5798 §6.4.2: only the timer firing moves a backup.
    let (mut r, t0) = backup(100);
    assert!(r.handle(Input::Timeout, t0 + ms(100)).is_empty());
    assert_eq!(r.state(), VrrpState::Backup);
}

#[test]
fn ineligible_backup_rearms_instead_of_taking_over() {
    // Extension of RFC 5798 §6.4.2: effective priority 0 never becomes master.
    // Priority 0 at 1 s: Master_Down_Interval = 3 s + (256 * 100) / 256 cs = 4 s.
    let (mut r, t0) = backup(100);
    r.handle(advert(HIGHER_ADDR, 200, ONE_SECOND), t0 + ms(500));
    assert!(r.handle(Input::SetPriority(0), t0 + ms(600)).is_empty());
    let fired = t0 + ms(500 + 3600);
    assert_eq!(r.poll_timeout(), Some(fired));
    assert!(r.handle(Input::Timeout, fired).is_empty());
    assert_eq!(r.state(), VrrpState::Backup);
    assert_eq!(r.master(), None);
    assert_eq!(r.poll_timeout(), Some(fired + ms(4000)));
}

#[test]
fn ineligible_backup_follows_any_master() {
    // RFC 5798 §6.4.2 with local priority 0: every non-zero advert is ">=".
    let (mut r, t0) = backup(100);
    r.handle(Input::SetPriority(0), t0);
    r.handle(advert(LOWER_ADDR, 1, ONE_SECOND), t0 + ms(1000));
    assert_eq!(r.master(), Some(LOWER_ADDR));
    assert_eq!(r.poll_timeout(), Some(t0 + ms(5000)));
}

#[test]
fn preempt_delay_follows_lower_master_until_the_delay_is_over() {
    // keepalived's preempt_delay on RFC 5798 §6.4.2: lower-priority adverts
    // count as accepted for preempt_delay from the first one heard; then they
    // are discarded and the Master_Down_Timer runs out.
    let mut p = params(100);
    p.preempt_delay = Duration::from_secs(5);
    let (mut r, t0) = backup_with(p);
    for s in 1..=5 {
        r.handle(advert(LOWER_ADDR, 50, ONE_SECOND), t0 + ms(s * 1000));
        assert_eq!(r.poll_timeout(), Some(t0 + ms(s * 1000 + 3600)), "at {s} s");
    }
    // 6 s: five seconds since the first lower advert (1 s): discarded.
    r.handle(advert(LOWER_ADDR, 50, ONE_SECOND), t0 + ms(6000));
    assert_eq!(r.poll_timeout(), Some(t0 + ms(8600)));
    let actions = r.handle(Input::Timeout, t0 + ms(8600));
    assert_eq!(
        actions,
        vec![
            send(100),
            change(VrrpState::Backup, VrrpState::Master, Reason::MasterDown)
        ]
    );
}

#[test]
fn preempt_delay_restarts_after_a_higher_priority_master() {
    // keepalived: an advert at least as good as ours ends the preempt hold;
    // the next lower master starts a new one.
    let mut p = params(100);
    p.preempt_delay = Duration::from_secs(2);
    let (mut r, t0) = backup_with(p);
    r.handle(advert(LOWER_ADDR, 50, ONE_SECOND), t0 + ms(1000));
    r.handle(advert(HIGHER_ADDR, 200, ONE_SECOND), t0 + ms(2000));
    r.handle(advert(LOWER_ADDR, 50, ONE_SECOND), t0 + ms(3500));
    // Held since 3.5 s, so 4.5 s is still within the delay.
    r.handle(advert(LOWER_ADDR, 50, ONE_SECOND), t0 + ms(4500));
    assert_eq!(r.poll_timeout(), Some(t0 + ms(8100)));
    assert_eq!(r.master(), Some(LOWER_ADDR));
}

#[test]
fn fault_backup_tracks_master_but_never_takes_over() {
    // Extension: Fault behaves as an ineligible backup (RFC 5798 §6.4.2 with
    // local priority 0, Preempt_Mode not considered).
    let (mut r, t0) = backup(100);
    assert_eq!(
        r.handle(Input::SetFault(true), t0),
        vec![change(VrrpState::Backup, VrrpState::Fault, Reason::Fault)]
    );
    r.handle(advert(LOWER_ADDR, 50, ONE_SECOND), t0 + ms(1000));
    assert_eq!(r.master(), Some(LOWER_ADDR));
    let fired = t0 + ms(1000 + 3600);
    assert_eq!(r.poll_timeout(), Some(fired));
    assert!(r.handle(Input::Timeout, fired).is_empty());
    assert_eq!(r.state(), VrrpState::Fault);
    assert_eq!(r.master(), None);
}

#[test]
fn fault_cleared_returns_to_backup_with_fresh_master_down_timer() {
    // Extension: leaving Fault re-arms Master_Down_Timer := Master_Down_Interval.
    let (mut r, t0) = backup(100);
    r.handle(Input::SetFault(true), t0);
    let actions = r.handle(Input::SetFault(false), t0 + ms(2000));
    assert_eq!(
        actions,
        vec![change(
            VrrpState::Fault,
            VrrpState::Backup,
            Reason::FaultCleared
        )]
    );
    assert_eq!(r.poll_timeout(), Some(t0 + ms(5600)));
}

// ----- §6.4.3 Master ----------------------------------------------------------

#[test]
fn master_advertises_every_advertisement_interval() {
    // RFC 5798 §6.4.3: Adver_Timer fires → send an ADVERTISEMENT, reset it.
    let (mut r, t) = master(100);
    assert_eq!(r.poll_timeout(), Some(t + ms(1000)));
    assert_eq!(r.handle(Input::Timeout, t + ms(1000)), vec![send(100)]);
    assert_eq!(r.poll_timeout(), Some(t + ms(2000)));
}

#[test]
fn master_answers_priority_zero_advert_at_once() {
    // RFC 5798 §6.4.3: priority 0 → send an ADVERTISEMENT, reset the
    // Adver_Timer. Beyond the RFC: only a master resigns, so there were two
    // masters and clients may hold the other's MAC: re-announce the VIP.
    let (mut r, t) = master(100);
    let actions = r.handle(advert(HIGHER_ADDR, 0, ONE_SECOND), t + ms(300));
    assert_eq!(
        actions,
        vec![
            send(100),
            Action::ResendGarp {
                other_master: HIGHER_ADDR
            }
        ]
    );
    assert_eq!(r.poll_timeout(), Some(t + ms(1300)));
    assert_eq!(r.state(), VrrpState::Master);
}

#[test]
fn master_yields_to_higher_priority_advert() {
    // RFC 5798 §6.4.3: cancel the Adver_Timer, Master_Adver_Interval := the
    // advert's (2 s), Master_Down_Timer := 3 * 2 s + (156 * 200) / 256 cs
    // = 7.21 s, transition to Backup.
    let (mut r, t) = master(100);
    let actions = r.handle(advert(LOWER_ADDR, 101, Centis(200)), t + ms(300));
    // Beyond the RFC, one last advert of ours first: the winner may never
    // have heard us (a healed partition) and must re-announce the VIP.
    assert_eq!(
        actions,
        vec![
            send(100),
            change(
                VrrpState::Master,
                VrrpState::Backup,
                Reason::HigherPriorityMaster
            )
        ]
    );
    assert_eq!(r.master_advert_interval(), Centis(200));
    assert_eq!(r.poll_timeout(), Some(t + ms(300 + 7210)));
    assert_eq!(r.master(), Some(LOWER_ADDR));
}

#[test]
fn master_yields_to_equal_priority_from_higher_address() {
    // RFC 5798 §6.4.3: equal priority and a greater primary address (compared
    // as unsigned integers in network byte order) wins.
    let (mut r, t) = master(100);
    let actions = r.handle(advert(HIGHER_ADDR, 100, ONE_SECOND), t + ms(300));
    assert_eq!(
        actions,
        vec![
            send(100),
            change(
                VrrpState::Master,
                VrrpState::Backup,
                Reason::HigherPriorityMaster
            )
        ]
    );
}

#[test]
fn master_keeps_role_against_equal_priority_from_lower_address() {
    // RFC 5798 §6.4.3: equal priority, lower address → we stay master; as for
    // any lower master, we answer at once (see the next test).
    let (mut r, t) = master(100);
    let actions = r.handle(advert(LOWER_ADDR, 100, ONE_SECOND), t + ms(300));
    assert_eq!(r.state(), VrrpState::Master);
    assert_eq!(
        actions,
        vec![
            send(100),
            Action::ResendGarp {
                other_master: LOWER_ADDR
            }
        ]
    );
}

// ----- IPv6 (RFC 5798 §6.4.3 with link-local primary addresses) ---------------

/// Our link-local primary address (§5.1.2.1: an IPv6 advert's source).
const OURS6: IpAddr = IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0x10));
/// Greater than ours as a 128-bit unsigned integer, but only in the last
/// group: the comparison must use every byte, not a prefix.
const HIGHER6: IpAddr = IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0x11));
/// Lower than ours though greater in its low 32 bits: a comparison of the
/// low word alone would pick it.
const LOWER6: IpAddr = IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0x0f));
const LOWER6_HIGH_LOW_WORD: IpAddr =
    IpAddr::V6(Ipv6Addr::new(0xfe7f, 0, 0, 0, 0, 0, 0xffff, 0xffff));

fn master6(priority: u8) -> (Router, Instant) {
    let (mut r, _) = backup_with(Params {
        primary_address: OURS6,
        ..params(priority)
    });
    let at = r
        .poll_timeout()
        .expect("a backup runs the Master_Down_Timer");
    r.handle(Input::Timeout, at);
    assert_eq!(r.state(), VrrpState::Master);
    (r, at)
}

#[test]
fn ipv6_master_yields_to_equal_priority_from_higher_link_local() {
    // RFC 5798 §6.4.3: "the primary IPvX Address of the sender ... is higher
    // than the local primary IPvX Address"; for IPv6, the link-local.
    let (mut r, t) = master6(100);
    let actions = r.handle(advert(HIGHER6, 100, ONE_SECOND), t + ms(300));
    assert_eq!(
        actions,
        vec![
            send(100),
            change(
                VrrpState::Master,
                VrrpState::Backup,
                Reason::HigherPriorityMaster
            )
        ]
    );
    assert_eq!(r.master(), Some(HIGHER6));
}

#[test]
fn ipv6_master_keeps_role_against_equal_priority_from_lower_link_local() {
    for lower in [LOWER6, LOWER6_HIGH_LOW_WORD] {
        let (mut r, t) = master6(100);
        let actions = r.handle(advert(lower, 100, ONE_SECOND), t + ms(300));
        assert_eq!(r.state(), VrrpState::Master, "{lower}");
        assert_eq!(
            actions,
            vec![
                send(100),
                Action::ResendGarp {
                    other_master: lower
                }
            ]
        );
        assert_eq!(r.master(), Some(OURS6));
    }
}

#[test]
fn the_tie_break_compares_within_one_family_only() {
    use rcbsd_failover::election::address_wins_tie;
    assert!(address_wins_tie(HIGHER6, OURS6));
    assert!(!address_wins_tie(OURS6, OURS6));
    assert!(!address_wins_tie(LOWER6_HIGH_LOW_WORD, OURS6));
    assert!(address_wins_tie(HIGHER_ADDR, OURS));
    // Mixed families never win a tie, whichever way round.
    assert!(!address_wins_tie(HIGHER6, OURS));
    assert!(!address_wins_tie(HIGHER_ADDR, OURS6));
}

#[test]
fn master_answers_lower_priority_master_with_advert_and_garp_at_most_once_a_second() {
    // RFC 5798 §6.4.3 discards a lower-priority advert; we also answer it (a
    // healed partition): an advert now so the other master yields, and the
    // gratuitous ARPs again. At most once per max(interval, 1 s).
    let (mut r, t) = master(100);
    let garp = Action::ResendGarp {
        other_master: HIGHER_ADDR,
    };
    let first = r.handle(advert(HIGHER_ADDR, 50, ONE_SECOND), t + ms(100));
    assert_eq!(first, vec![send(100), garp.clone()]);
    assert_eq!(r.poll_timeout(), Some(t + ms(1100)));
    assert!(r
        .handle(advert(HIGHER_ADDR, 50, ONE_SECOND), t + ms(1099))
        .is_empty());
    let again = r.handle(advert(HIGHER_ADDR, 50, ONE_SECOND), t + ms(1100));
    assert_eq!(again, vec![send(100), garp]);
}

#[test]
fn a_new_second_master_episode_is_answered_at_once_even_within_the_second() {
    // Beyond the RFC: the once-a-second limit is for one ongoing episode (a
    // peer that keeps advertising because it cannot hear us). After three
    // advert intervals without another master, a new one (the next healed
    // partition) is answered at once, or its clients would keep its MAC.
    let mut p = params(100);
    p.advert_interval = Centis(2); // 20 ms
    let (mut r, _) = backup_with(p);
    let Some(down) = r.poll_timeout() else {
        panic!("no Master_Down_Timer");
    };
    r.handle(Input::Timeout, down);
    assert_eq!(r.state(), VrrpState::Master);
    let garp = Action::ResendGarp {
        other_master: HIGHER_ADDR,
    };
    let at = |n: u64| down + ms(n);
    assert!(r
        .handle(advert(HIGHER_ADDR, 50, Centis(2)), at(100))
        .contains(&garp));
    // The same episode, 20 ms later: not answered again.
    assert!(!r
        .handle(advert(HIGHER_ADDR, 50, Centis(2)), at(120))
        .contains(&garp));
    // 200 ms of silence (> 3 x 20 ms), then another master: answered.
    assert!(r
        .handle(advert(HIGHER_ADDR, 50, Centis(2)), at(320))
        .contains(&garp));
}

#[test]
fn master_keeps_its_own_interval() {
    // RFC 5798 §6.4.2/§6.4.3: the interval is learned only when yielding; a
    // master always advertises its own Advertisement_Interval.
    let (mut r, t) = master(100);
    r.handle(advert(HIGHER_ADDR, 50, Centis(300)), t + ms(100));
    assert_eq!(r.master_advert_interval(), ONE_SECOND);
    assert_eq!(r.poll_timeout(), Some(t + ms(1100)));
}

#[test]
fn master_shutdown_sends_priority_zero_advert() {
    // RFC 5798 §6.4.3: Shutdown → cancel the Adver_Timer, send an
    // ADVERTISEMENT with priority 0, transition to Initialize.
    let (mut r, t) = master(100);
    let actions = r.handle(Input::Shutdown, t + ms(10));
    assert_eq!(
        actions,
        vec![
            send(0),
            change(VrrpState::Master, VrrpState::Initialize, Reason::Shutdown)
        ]
    );
    assert_eq!(r.poll_timeout(), None);
    assert_eq!(r.master(), None);
}

#[test]
fn master_resigns_when_effective_priority_drops_to_zero() {
    // Extension (operator demote, quorum loss): priority-0 advert first, so
    // the next node takes over after Skew_Time (RFC 5798 §6.4.2); then Backup
    // with Master_Down_Timer := Master_Down_Interval at priority 0 (4 s).
    let (mut r, t) = master(100);
    let actions = r.handle(Input::SetPriority(0), t + ms(10));
    assert_eq!(
        actions,
        vec![
            send(0),
            change(VrrpState::Master, VrrpState::Backup, Reason::Resigned)
        ]
    );
    assert_eq!(r.poll_timeout(), Some(t + ms(4010)));
    assert_eq!(r.effective_priority(), 0);
}

#[test]
fn master_advertises_a_new_priority_at_once() {
    // Extension: a master whose effective priority changes keeps its role and
    // tells the backups now (RFC 5798 §6.4.3 adverts carry the priority).
    let (mut r, t) = master(100);
    assert_eq!(
        r.handle(Input::SetPriority(150), t + ms(10)),
        vec![send(150)]
    );
    assert_eq!(r.poll_timeout(), Some(t + ms(1010)));
    assert!(r.handle(Input::SetPriority(150), t + ms(20)).is_empty());
}

#[test]
fn master_in_fault_resigns_into_fault() {
    // Extension: a failed runbook resigns with priority 0 (RFC 5798 §6.4.2's
    // Skew_Time takeover) and the node waits in Fault.
    let (mut r, t) = master(100);
    let actions = r.handle(Input::SetFault(true), t + ms(10));
    assert_eq!(
        actions,
        vec![
            send(0),
            change(VrrpState::Master, VrrpState::Fault, Reason::Fault)
        ]
    );
    assert!(r.poll_timeout().is_some());
}

#[test]
fn own_adverts_are_ignored() {
    // RFC 5798 §6.4.3: a router's own looped-back advert is no other master.
    let (mut r, t) = master(100);
    assert!(r
        .handle(advert(OURS, 200, ONE_SECOND), t + ms(10))
        .is_empty());
    assert_eq!(r.state(), VrrpState::Master);
}

#[test]
fn zero_interval_in_an_advert_is_treated_as_one_centisecond() {
    // RFC 5798 §5.2.7: a 0 interval is meaningless; it must not make a timer
    // that fires at once forever. 1 cs: 3 cs + (156 * 1) / 256 cs = 30 ms.
    let (mut r, t0) = backup(100);
    r.handle(advert(HIGHER_ADDR, 200, Centis(0)), t0 + ms(1000));
    assert_eq!(r.poll_timeout(), Some(t0 + ms(1030)));
}

// ----- Configuration reload ---------------------------------------------------

#[test]
fn reload_keeps_master_and_advertises_new_interval() {
    let (mut r, t) = master(100);
    let mut p = params(100);
    p.advert_interval = Centis(50);
    assert_eq!(r.set_params(p, t + ms(10)), vec![send(100)]);
    assert_eq!(r.state(), VrrpState::Master);
    assert_eq!(r.poll_timeout(), Some(t + ms(510)));
}

#[test]
fn reload_without_advertised_change_does_nothing() {
    let (mut r, t) = master(100);
    let mut p = params(100);
    p.preempt = false;
    assert!(r.set_params(p, t + ms(10)).is_empty());
    assert_eq!(r.poll_timeout(), Some(t + ms(1000)));
}

#[test]
fn reload_keeps_the_priority_the_caller_set() {
    let (mut r, t) = master(100);
    r.handle(Input::SetPriority(254), t);
    assert!(r.set_params(params(120), t + ms(10)).is_empty());
    assert_eq!(r.effective_priority(), 254);
}

#[test]
fn reload_follows_configured_priority_until_one_is_set() {
    let (mut r, t) = master(100);
    assert_eq!(r.set_params(params(120), t + ms(10)), vec![send(120)]);
    assert_eq!(r.effective_priority(), 120);
}

#[test]
fn reload_with_a_new_vrid_restarts_the_router() {
    let (mut r, t) = master(100);
    let mut p = params(100);
    p.vrid = 52;
    assert_eq!(
        r.set_params(p, t + ms(10)),
        vec![
            send(0),
            change(VrrpState::Master, VrrpState::Initialize, Reason::Shutdown),
            change(VrrpState::Initialize, VrrpState::Backup, Reason::Startup)
        ]
    );
}
