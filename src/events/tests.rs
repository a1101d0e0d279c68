//! The emitting functions log what the catalog says: every event, with its
//! name, its fields in order and its levels. Checked by capturing what each
//! function logs, so that the catalog `tests/docs.rs` holds the docs to is
//! what the agent really logs (a field added at a call but not in the
//! catalog, or the reverse, fails here).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::{Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

use super::*;

/// What one emitted record looked like: its level and field names.
type Seen = BTreeMap<String, Vec<(Level, Vec<String>)>>;

/// Records every event's name, level and declared fields.
struct Capture(Arc<Mutex<Seen>>);

struct Name(Option<String>);

impl Visit for Name {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "event" {
            self.0 = Some(value.to_owned());
        }
    }
    fn record_debug(&mut self, _: &Field, _: &dyn std::fmt::Debug) {}
}

impl<S: Subscriber> Layer<S> for Capture {
    fn on_event(&self, record: &tracing::Event<'_>, _: Context<'_, S>) {
        let mut name = Name(None);
        record.record(&mut name);
        let fields = record
            .metadata()
            .fields()
            .iter()
            .map(|f| f.name().to_owned())
            .filter(|f| f != "event")
            .collect();
        let name = name.0.unwrap_or_else(|| "(no event field)".to_owned());
        let mut seen = self.0.lock().expect("capture lock");
        seen.entry(name)
            .or_default()
            .push((*record.metadata().level(), fields));
    }
}

/// Calls every emitting function, in its usual and its raised cases.
fn emit_everything() {
    let addr = Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)));
    let (b, m, f) = (VrrpState::Backup, VrrpState::Master, VrrpState::Fault);
    agent_started("n1", "em0", 1, 100, "0.1.0");
    agent_stopping("SIGTERM", m);
    state_change(b, m, Reason::MasterDown, 100, addr);
    state_change(m, f, Reason::Fault, 0, None);
    vip_added("em0", "192.0.2.10/24");
    vip_removed("em0", "192.0.2.10/24", "not_master");
    vip_failed("em0", "192.0.2.10/24", "add", "exit 1");
    garp_sent("em0", 1, 5, "became_master");
    garp_failed("em0", "no buffer");
    na_sent("em0", 2, 5, "became_master");
    na_failed("em0", "no buffer");
    master_conflict(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)), 100);
    packet_dropped(10, 3, "bad_ttl=3");
    send_failed(IpAddr::V4(Ipv4Addr::new(224, 0, 0, 18)), "down", 1);
    fault("promote failed");
    fault_cleared("resume");
    override_changed("none", "demoted", 0);
    stale_vip_removed("em0", "192.0.2.10/24");
    config_reloaded("/etc/x.toml", "priority");
    config_rejected("/etc/x.toml", "bad");
    control_error("eof");
    runbook_started("promote", "n1", 3);
    runbook_step("promote", "mount", "mount /x", 5, "ok", 1, "");
    runbook_step("promote", "mount", "mount /x", 5, "failed", 1, "busy");
    runbook_finished("promote", 10, "");
    runbook_finished("follow", 10, "jail1");
    runbook_failed("promote", "mount", "busy", 10, 2);
    runbook_cancelled("promote", "mount", 10);
    step_killed("promote", "zpool import", "lease");
    nfs_server_gone("/store", 2000);
    command_abandoned("jstop", 42, 5000);
    cbsd_lock_stale("jail1", "/locked", "n2", 31);
    cbsd_lock_taken_over("jail1", "/locked", "n2");
    environment_stop_failed("jail1", 2);
    release_failed(1, "umount");
    follow_ride_through("198.18.0.1", "none", "master changed");
    follow_fallback(
        "198.18.0.1",
        "198.18.0.2",
        "stale_handle",
        "probe mount jails-data: stale",
    );
    follow_remount("none", "198.18.0.2", "first follow since the agent started");
    release_stuck(3, "watchdog");
    found_held("pool");
    found_unknown("hast");
    watchdog_state("armed", 30_000, "held");
    watchdog_state("withheld", 30_000, "no lease");
    watchdog_failed("/dev/fido", "EINVAL");
    agent_failed("no interface");
    override_restored("demoted");
    receive_failed("EIO");
    advert_encode_failed("too long");
    link_down("em0");
    link_up("em0");
    kernel_timer_unavailable("Too many open files");
    link_watch_unavailable("em0", "Address family not supported by protocol");
    shutdown_timeout(10);
    notify_failed("/bin/hook", "exit 1");
    metrics_failed("/x.prom", "ENOENT");
    state_marker_failed("/var/db/x", "EROFS");
    promote_failed_superseded("newer decision");
    quorum_lost("n1", 2);
    quorum_regained("n1,n2", 2);
    quorum_waiting("n1", 2);
    cluster_config_mismatch("n2", 1, 2);
    cluster_config_match("n2");
    auth_failed("advert", "192.0.2.2", "bad tag", 0);
    heartbeat_encode_failed("too large");
    placement_decided("jail1", true, "first choice");
    lease_fencing("master", 500);
    handover_started("n2", 30_000);
    handover_finished("quiesced", 100, "");
    handover_finished("timed_out", 30_000, "n2");
    handover_cancelled(100);
    lease_overrun("master", 100);
    config_warning("no watchdog");
    control_denied(1000, 1000, "promote", "root");
    environment_move("jail1", "n2");
    fence_margin_short(9000, 8000);
    health_check_failed("service nfsd", "nfsd is not running.", "repair");
    health_check_recovered("service nfsd");
    repair_started("service nfsd", "start nfsd");
    repair_succeeded("service nfsd", 120);
    repair_failed("service nfsd", "start nfsd: status 1");
    resigned_unhealthy("service nfsd", 3);
    environment_died("web1", "health.restart_policy is \"never\"");
    environment_held("web1", false);
    environment_released("web1");
    held_not_started("web1", "health");
}

/// The records the emitting functions produce are the catalog's: every
/// event, with its name, its fields in order and its levels.
#[test]
fn every_emitting_function_logs_what_the_catalog_says() {
    let seen = Arc::new(Mutex::new(Seen::new()));
    let subscriber = tracing_subscriber::registry().with(Capture(Arc::clone(&seen)));
    tracing::subscriber::with_default(subscriber, emit_everything);
    let seen = seen.lock().expect("capture lock");

    let names: BTreeSet<&str> = seen.keys().map(String::as_str).collect();
    let catalog: BTreeSet<&str> = Event::ALL.iter().map(|e| e.name()).collect();
    assert_eq!(names, catalog, "emitted names differ from the catalog");

    for &event in Event::ALL {
        let records = &seen[event.name()];
        let mut levels: Vec<Level> = records.iter().map(|(level, _)| *level).collect();
        levels.dedup();
        let mut expected = vec![event.level()];
        expected.extend(event.raised().map(|r| r.level));
        assert_eq!(levels, expected, "{event}: levels");
        for (level, fields) in records {
            let mut want: Vec<&str> = event.fields().to_vec();
            if Some(*level) == event.raised().map(|r| r.level) {
                want.extend(event.extra_fields());
            }
            assert_eq!(fields, &want, "{event} at {level}: fields");
        }
    }
}
