//! The `ride-through` runbook (issue 14) through the real executor and the
//! agent's own `fs-probe` child: it only looks (no tool is called, nothing
//! is stopped or unmounted), and each way it can fail maps to the
//! fallback cause the worker logs: a probe that hangs is killed at the
//! deadline (`hung`), `ESTALE` (`stale_handle`), another `dir.id`
//! (`identity_changed`).

// A test reports a failure by panicking: unwrap and expect are how it
// says "this must hold" (the library itself denies them).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "standins/mod.rs"]
mod standins;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Duration;

use rcbsd_failover::node::converge::{FallbackCause, Job, JobKind, JobOutcome};
use rcbsd_failover::runbook::{Context, Runner};
use standins::{FakeVip, World, DIR_ID};
use tokio::sync::watch;

/// A runner whose `fs-probe` is `exe` (the lab binary runs the agent's
/// own probe code), with a 1 s `follow.ride_through_timeout`.
fn runner(world: &World, exe: PathBuf) -> Runner<FakeVip> {
    let mut config = world.config(&world.storage_none(), "", "");
    config.follow.ride_through_timeout = Duration::from_secs(1);
    Runner::new(config, FakeVip::default()).with_probe_exe(exe)
}

fn lab_probe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_rcbsd-lab"))
}

/// A stand-in for the probe child: a shell script with `body`.
fn script(world: &World, name: &str, body: &str) -> PathBuf {
    let path = world.dir.path().join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// The shared dirs as mounted: `dir.id` readable through the workdir.
fn mounted(world: &World, dir_id: &str) {
    std::fs::write(
        world.workdir.join("jails-data/dir.id"),
        format!("{dir_id}\n"),
    )
    .unwrap();
}

/// The ride-through job as the agent's worker runs it (its report, with
/// the executor's own verdict on a step killed at its deadline).
async fn ride(runner: &mut Runner<FakeVip>) -> JobOutcome {
    let ctx = Context::from_config(runner.config());
    let job = Job {
        kind: JobKind::RideThrough {
            master: ctx.vip,
            within: runner.config().follow.ride_through_timeout,
        },
        stop: Vec::new(),
        start: Vec::new(),
    };
    let (_tx, rx) = watch::channel(0u64);
    runner.execute(&job, &ctx, &[], rx).await.outcome
}

fn cause(outcome: &JobOutcome) -> FallbackCause {
    match outcome {
        JobOutcome::Failed {
            step,
            error,
            timed_out,
        } => FallbackCause::of_failure(step, error, *timed_out),
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[tokio::test]
async fn answering_mounts_of_the_same_storage_ride_through_calling_no_tool() {
    let world = World::new("node1");
    mounted(&world, DIR_ID);
    let mut runner = runner(&world, lab_probe());
    assert_eq!(ride(&mut runner).await, JobOutcome::Succeeded);
    assert_eq!(
        world.argvs(),
        Vec::<String>::new(),
        "no tool, nothing touched"
    );
}

#[tokio::test]
async fn a_probe_that_hangs_is_killed_at_the_deadline() {
    let world = World::new("node1");
    mounted(&world, DIR_ID);
    // As a read on a hard mount whose server does not answer.
    let hang = script(&world, "hang", "exec sleep 600");
    let mut runner = runner(&world, hang);
    let outcome = ride(&mut runner).await;
    assert!(
        matches!(&outcome, JobOutcome::Failed { step, .. } if step.starts_with("probe mount ")),
        "{outcome:?}"
    );
    assert_eq!(cause(&outcome), FallbackCause::Hung, "{outcome:?}");
}

#[tokio::test]
async fn a_stale_handle_falls_back() {
    let world = World::new("node1");
    mounted(&world, DIR_ID);
    // What `fs-probe list` prints when readdir(2) gets ESTALE (FreeBSD's
    // strerror for errno 70).
    let stale = script(
        &world,
        "stale",
        "echo \"cannot list $3: Stale NFS file handle (os error 70)\" >&2; exit 1",
    );
    let mut runner = runner(&world, stale);
    let outcome = ride(&mut runner).await;
    assert_eq!(cause(&outcome), FallbackCause::StaleHandle, "{outcome:?}");
}

#[tokio::test]
async fn another_storage_behind_the_mounts_falls_back() {
    let world = World::new("node1");
    mounted(&world, "someone-else");
    let mut runner = runner(&world, lab_probe());
    let outcome = ride(&mut runner).await;
    assert!(
        matches!(&outcome, JobOutcome::Failed { step, .. } if step == "verify dir.id"),
        "{outcome:?}"
    );
    assert_eq!(cause(&outcome), FallbackCause::IdentityChanged);
}
