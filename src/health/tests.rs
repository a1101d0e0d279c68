use super::*;
use std::collections::BTreeSet;

const S: Duration = Duration::from_secs(1);

fn limits() -> Limits {
    Limits {
        max_repairs: 2,
        repair_window: 600 * S,
        hold_off: 30 * S,
        mount_hang_limit: 60 * S,
        max_restarts: Some(2),
        restart_window: 600 * S,
    }
}

fn judged(response: Response) -> Judgement {
    Judgement {
        rise: 2,
        fall: 3,
        response,
    }
}

fn monitor_with(id: &CheckId, response: Response) -> Monitor {
    let mut monitor = Monitor::new(limits());
    monitor.set_checks([(id.clone(), judged(response))]);
    monitor
}

fn fail(monitor: &mut Monitor, id: &CheckId, at: Instant) -> Vec<Action> {
    monitor.observe(id, Err("not running".to_owned()), at)
}

#[test]
fn a_check_fails_after_fall_failures_in_a_row_and_recovers_after_rise() {
    let t0 = Instant::now();
    let id = CheckId::Service("nfsd".into());
    let mut monitor = monitor_with(&id, Response::Alert);
    assert!(fail(&mut monitor, &id, t0).is_empty());
    assert!(fail(&mut monitor, &id, t0 + S).is_empty());
    // A success in between starts the count again.
    assert!(monitor.observe(&id, Ok(()), t0 + 2 * S).is_empty());
    assert!(fail(&mut monitor, &id, t0 + 3 * S).is_empty());
    assert!(fail(&mut monitor, &id, t0 + 4 * S).is_empty());
    assert_eq!(
        fail(&mut monitor, &id, t0 + 5 * S),
        [Action::Failed {
            check: id.clone(),
            detail: "not running".into()
        }]
    );
    assert!(monitor.observe(&id, Ok(()), t0 + 6 * S).is_empty());
    assert_eq!(
        monitor.observe(&id, Ok(()), t0 + 7 * S),
        [Action::Recovered { check: id.clone() }]
    );
}

#[test]
fn a_new_check_starts_good_and_a_dropped_one_is_forgotten() {
    let t0 = Instant::now();
    let id = CheckId::Track("db".into());
    let mut monitor = monitor_with(&id, Response::Resign);
    assert_eq!(monitor.verdict(t0), Verdict::default());
    for i in 0..3 {
        fail(&mut monitor, &id, t0 + i * S);
    }
    assert!(monitor.verdict(t0).resign.is_some());
    monitor.set_checks([]);
    assert_eq!(monitor.verdict(t0), Verdict::default());
    assert!(
        fail(&mut monitor, &id, t0).is_empty(),
        "a result of a dropped check"
    );
}

#[test]
fn a_failed_repairable_check_asks_for_one_repair_at_a_time() {
    let t0 = Instant::now();
    let id = CheckId::Vip;
    let mut monitor = monitor_with(&id, Response::Repair);
    fail(&mut monitor, &id, t0);
    fail(&mut monitor, &id, t0 + S);
    let actions = fail(&mut monitor, &id, t0 + 2 * S);
    assert_eq!(actions[1], Action::Repair { check: id.clone() });
    // Still failing while the repair runs: no second one.
    assert!(fail(&mut monitor, &id, t0 + 3 * S).is_empty());
    monitor.repair_finished(&id);
    assert_eq!(
        fail(&mut monitor, &id, t0 + 4 * S),
        [Action::Repair { check: id.clone() }]
    );
}

#[test]
fn past_the_repair_budget_the_node_resigns_for_the_hold_off() {
    let t0 = Instant::now();
    let id = CheckId::Service("mountd".into());
    let mut monitor = monitor_with(&id, Response::Repair);
    for i in 0..3 {
        fail(&mut monitor, &id, t0 + i * S);
    }
    monitor.repair_finished(&id);
    fail(&mut monitor, &id, t0 + 10 * S);
    monitor.repair_finished(&id);
    // max_repairs 2 are spent: the next failure resigns.
    assert_eq!(
        fail(&mut monitor, &id, t0 + 20 * S),
        [Action::Resign {
            check: id.clone(),
            repairs: 2
        }]
    );
    let verdict = monitor.verdict(t0 + 21 * S);
    assert_eq!(
        verdict.resign.as_deref(),
        Some("service mountd failed and its repairs did not hold")
    );
    // Said once, not on every failed run.
    assert!(fail(&mut monitor, &id, t0 + 22 * S).is_empty());
    assert_eq!(monitor.poll_timeout(), Some(t0 + 50 * S));
    assert_eq!(monitor.verdict(t0 + 50 * S).resign, None);
}

#[test]
fn repairs_older_than_the_window_do_not_count() {
    let t0 = Instant::now();
    let id = CheckId::Exports;
    let mut monitor = monitor_with(&id, Response::Repair);
    for i in 0..3 {
        fail(&mut monitor, &id, t0 + i * S);
    }
    monitor.repair_finished(&id);
    fail(&mut monitor, &id, t0 + 10 * S);
    monitor.repair_finished(&id);
    // The first repair (at 2 s) has left the 600 s window at 603 s.
    assert_eq!(
        fail(&mut monitor, &id, t0 + 603 * S),
        [Action::Repair { check: id.clone() }]
    );
}

#[test]
fn storage_degradation_alerts_and_never_resigns() {
    let t0 = Instant::now();
    let id = CheckId::Storage;
    let mut monitor = monitor_with(&id, Response::Alert);
    for i in 0..30 {
        let actions = fail(&mut monitor, &id, t0 + i * S);
        assert!(actions.iter().all(|a| matches!(a, Action::Failed { .. })));
    }
    assert_eq!(monitor.verdict(t0 + 30 * S), Verdict::default());
}

#[test]
fn a_hung_mount_is_remounted_only_after_the_hang_limit() {
    let t0 = Instant::now();
    let id = CheckId::NfsMount("jails-data".into());
    let mut monitor = monitor_with(&id, Response::Remount);
    for i in 0..3 {
        fail(&mut monitor, &id, t0 + i * 10 * S);
    }
    assert!(fail(&mut monitor, &id, t0 + 50 * S).is_empty());
    assert_eq!(
        fail(&mut monitor, &id, t0 + 60 * S),
        [Action::Remount { check: id.clone() }]
    );
    assert!(
        fail(&mut monitor, &id, t0 + 70 * S).is_empty(),
        "one at a time"
    );
}

#[test]
fn a_dead_environment_is_restarted_within_the_budget_then_only_reported() {
    let t0 = Instant::now();
    let id = CheckId::Environment("web1".into());
    let mut monitor = monitor_with(&id, Response::Restart);
    let restart = Action::Restart {
        environment: "web1".into(),
    };
    for i in 0..2 {
        fail(&mut monitor, &id, t0 + i * S);
    }
    assert_eq!(fail(&mut monitor, &id, t0 + 2 * S)[1], restart);
    monitor.repair_finished(&id);
    assert_eq!(fail(&mut monitor, &id, t0 + 3 * S), [restart]);
    monitor.repair_finished(&id);
    let died = fail(&mut monitor, &id, t0 + 4 * S);
    assert!(
        matches!(&died[..], [Action::EnvironmentDied { environment, why }] if environment == "web1" && why.contains("restarted 2 times")),
        "{died:?}"
    );
    assert!(
        fail(&mut monitor, &id, t0 + 5 * S).is_empty(),
        "reported once"
    );
}

#[test]
fn with_restart_policy_never_a_dead_environment_is_reported_once_per_failure() {
    let t0 = Instant::now();
    let id = CheckId::Environment("db1".into());
    let mut monitor = Monitor::new(Limits {
        max_restarts: None,
        ..limits()
    });
    monitor.set_checks([(id.clone(), judged(Response::Restart))]);
    for i in 0..2 {
        fail(&mut monitor, &id, t0 + i * S);
    }
    let actions = fail(&mut monitor, &id, t0 + 2 * S);
    assert!(
        matches!(&actions[1], Action::EnvironmentDied { why, .. } if why.contains("never")),
        "{actions:?}"
    );
    assert!(fail(&mut monitor, &id, t0 + 3 * S).is_empty());
    // Back up (started by hand), then down again: reported again.
    monitor.observe(&id, Ok(()), t0 + 4 * S);
    monitor.observe(&id, Ok(()), t0 + 5 * S);
    for i in 6..8 {
        fail(&mut monitor, &id, t0 + i * S);
    }
    assert!(matches!(
        &fail(&mut monitor, &id, t0 + 8 * S)[1],
        Action::EnvironmentDied { .. }
    ));
}

#[test]
fn weights_and_the_track_file_add_up_while_failed() {
    let t0 = Instant::now();
    let db = CheckId::Track("db".into());
    let web = CheckId::Track("web".into());
    let mut monitor = Monitor::new(limits());
    monitor.set_checks([
        (db.clone(), judged(Response::Weight(-50))),
        (web.clone(), judged(Response::Weight(-20))),
    ]);
    monitor.set_track_file(5);
    assert_eq!(monitor.verdict(t0).priority_delta, 5);
    for i in 0..3 {
        fail(&mut monitor, &db, t0 + i * S);
        fail(&mut monitor, &web, t0 + i * S);
    }
    assert_eq!(monitor.verdict(t0 + 3 * S).priority_delta, -65);
    monitor.observe(&web, Ok(()), t0 + 4 * S);
    monitor.observe(&web, Ok(()), t0 + 5 * S);
    assert_eq!(monitor.verdict(t0 + 5 * S).priority_delta, -45);
}

#[test]
fn a_resign_track_holds_the_fault_only_while_failed() {
    let t0 = Instant::now();
    let id = CheckId::Interface("em1".into());
    let mut monitor = monitor_with(&id, Response::Resign);
    for i in 0..3 {
        fail(&mut monitor, &id, t0 + i * S);
    }
    assert_eq!(
        monitor.verdict(t0 + 3 * S).resign.as_deref(),
        Some("interface em1 failed")
    );
    monitor.observe(&id, Ok(()), t0 + 4 * S);
    monitor.observe(&id, Ok(()), t0 + 5 * S);
    assert_eq!(monitor.verdict(t0 + 5 * S).resign, None);
}

#[test]
fn each_check_counts_its_runs_failures_repairs_and_restarts() {
    let t0 = Instant::now();
    let vip = CheckId::Vip;
    let web = CheckId::Environment("web1".into());
    let mut monitor = Monitor::new(limits());
    monitor.set_checks([
        (vip.clone(), judged(Response::Repair)),
        (web.clone(), judged(Response::Restart)),
    ]);
    let state = |monitor: &Monitor, id: &CheckId| {
        monitor
            .checks()
            .find(|(i, _)| *i == id)
            .map(|(_, s)| s.clone())
            .unwrap()
    };
    let fresh = state(&monitor, &vip);
    assert_eq!(
        (fresh.runs, fresh.failures, fresh.repairs, fresh.last_change),
        (0, 0, 0, None)
    );
    monitor.observe(&vip, Ok(()), t0);
    // The first run makes the state known: its change.
    assert_eq!(state(&monitor, &vip).last_change, Some(t0));
    for i in 1..=3 {
        fail(&mut monitor, &vip, t0 + i * S);
        fail(&mut monitor, &web, t0 + i * S);
    }
    let vip_state = state(&monitor, &vip);
    assert_eq!(
        (
            vip_state.good,
            vip_state.runs,
            vip_state.failures,
            vip_state.repairs,
            vip_state.restarts
        ),
        (false, 4, 3, 1, 0)
    );
    assert_eq!(vip_state.last_change, Some(t0 + 3 * S), "when it failed");
    assert_eq!(vip_state.detail, "not running");
    let web_state = state(&monitor, &web);
    assert_eq!(
        (
            web_state.runs,
            web_state.failures,
            web_state.repairs,
            web_state.restarts
        ),
        (3, 3, 0, 1)
    );
    monitor.repair_finished(&vip);
    monitor.observe(&vip, Ok(()), t0 + 4 * S);
    assert_eq!(
        state(&monitor, &vip).last_change,
        Some(t0 + 3 * S),
        "not yet risen"
    );
    monitor.observe(&vip, Ok(()), t0 + 5 * S);
    let vip_state = state(&monitor, &vip);
    assert!(vip_state.good);
    assert_eq!(vip_state.last_change, Some(t0 + 5 * S), "when it recovered");
    assert_eq!((vip_state.runs, vip_state.failures), (6, 3));
    // A remount counts as a repair.
    let mount = CheckId::NfsMount("jails-data".into());
    let mut monitor = monitor_with(&mount, Response::Remount);
    for i in 0..=6 {
        fail(&mut monitor, &mount, t0 + i * 10 * S);
    }
    assert_eq!(state(&monitor, &mount).repairs, 1);
}

#[test]
fn a_held_environment_is_neither_restarted_nor_alerted_and_said_once() {
    let t0 = Instant::now();
    let id = CheckId::Environment("web1".into());
    let mut monitor = monitor_with(&id, Response::Restart);
    monitor.set_held(["web1".to_owned()].into());
    assert!(monitor.is_held(&id));
    fail(&mut monitor, &id, t0);
    fail(&mut monitor, &id, t0 + S);
    assert_eq!(
        fail(&mut monitor, &id, t0 + 2 * S),
        [Action::Held {
            environment: "web1".into()
        }]
    );
    for i in 3..20 {
        assert!(fail(&mut monitor, &id, t0 + i * S).is_empty(), "run {i}");
    }
    let (_, state) = monitor.checks().next().unwrap();
    assert!(!state.good, "status still shows it stopped");
    assert_eq!(state.restarts, 0);
    // Started again by hand: no recovery announced for a failure that was
    // never announced.
    assert!(monitor.observe(&id, Ok(()), t0 + 20 * S).is_empty());
    assert!(monitor.observe(&id, Ok(()), t0 + 21 * S).is_empty());
    // Down again, released: restarted on the next failed run, per policy.
    for i in 22..25 {
        fail(&mut monitor, &id, t0 + i * S);
    }
    monitor.set_held(BTreeSet::new());
    assert_eq!(
        fail(&mut monitor, &id, t0 + 25 * S),
        [Action::Restart {
            environment: "web1".into()
        }]
    );
}

#[test]
fn a_hold_does_not_touch_other_checks_and_a_release_reports_again() {
    let t0 = Instant::now();
    let id = CheckId::Environment("db1".into());
    let vip = CheckId::Vip;
    let mut monitor = Monitor::new(Limits {
        max_restarts: None,
        ..limits()
    });
    monitor.set_checks([
        (id.clone(), judged(Response::Restart)),
        (vip.clone(), judged(Response::Repair)),
    ]);
    // Held by name: a check of another kind with the same text is not.
    monitor.set_held(["db1".to_owned(), "vip".to_owned()].into());
    assert!(!monitor.is_held(&vip));
    for i in 0..3 {
        fail(&mut monitor, &id, t0 + i * S);
    }
    assert!(matches!(&fail(&mut monitor, &vip, t0)[..], []));
    fail(&mut monitor, &vip, t0 + S);
    assert!(matches!(
        &fail(&mut monitor, &vip, t0 + 2 * S)[..],
        [Action::Failed { .. }, Action::Repair { .. }]
    ));
    // Released while still stopped, policy never: reported now, once.
    monitor.set_held(BTreeSet::new());
    let actions = fail(&mut monitor, &id, t0 + 3 * S);
    assert!(
        matches!(&actions[..], [Action::EnvironmentDied { environment, .. }] if environment == "db1"),
        "{actions:?}"
    );
    assert!(fail(&mut monitor, &id, t0 + 4 * S).is_empty());
}
