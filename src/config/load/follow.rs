//! Reading `[follow]`: the follower's choice on a master change and its
//! deadline. Ride-through is refused where it cannot work: without
//! `[cbsd]` (nothing is mounted), without `[cluster]` (the follower learns
//! from the new master's heartbeat that it serves), without
//! `nfs.stable_restart_dir` (the new server would refuse every reclaim with
//! `NFSERR_NOGRACE`), and with NFSv3 served (`nfs.v4_only = false`: rpc.lockd
//! and rpc.statd keep their state in `/var/db/statd.status` on the old
//! master, which the agent does not move; NFSv4-only is the supported
//! scope).

use std::time::Duration;

use toml::de::DeTable;

use super::Reader;
use crate::config::follow::{Follow, OnMasterChange, DEFAULT_RIDE_THROUGH_TIMEOUT};

const FOLLOW_KEYS: &[&str] = &["on_master_change", "ride_through_timeout"];

impl Reader<'_> {
    /// `[follow]`; its defaults when absent, `None` when invalid.
    pub(super) fn follow_section(&mut self, root: &DeTable<'_>) -> Option<Follow> {
        let Some(value) = root.get("follow") else {
            return Some(Follow::default());
        };
        let table = self.table(value, "follow")?;
        self.unknown_keys(table, "follow", FOLLOW_KEYS);
        let on_master_change = match table.get("on_master_change") {
            None => Some(OnMasterChange::Remount),
            Some(v) => match self.string(v, "follow.on_master_change")?.as_str() {
                "remount" => Some(OnMasterChange::Remount),
                "ride-through" => Some(OnMasterChange::RideThrough),
                other => {
                    self.error(
                        v.span(),
                        "follow.on_master_change",
                        format!("{other:?} is not one of \"remount\", \"ride-through\""),
                    );
                    None
                }
            },
        };
        let ride_through_timeout = self.duration_in(
            table.get("ride_through_timeout"),
            "follow.ride_through_timeout",
            DEFAULT_RIDE_THROUGH_TIMEOUT,
            Duration::from_secs(10)..=Duration::from_secs(3600),
        );
        let on_master_change = on_master_change?;
        if on_master_change == OnMasterChange::RideThrough {
            let span = table
                .get("on_master_change")
                .map_or_else(|| value.span(), |v| v.span());
            self.ride_through_prerequisites(root, span);
        }
        Some(Follow {
            on_master_change,
            ride_through_timeout: ride_through_timeout?,
        })
    }

    /// What ride-through needs of the other sections (see the module docs).
    fn ride_through_prerequisites(&mut self, root: &DeTable<'_>, span: std::ops::Range<usize>) {
        let key = "follow.on_master_change";
        if root.get("cbsd").is_none() {
            self.error(
                span.clone(),
                key,
                "\"ride-through\" needs a [cbsd] table: a plain VRRP node mounts nothing to keep",
            );
            return;
        }
        if root.get("cluster").is_none() {
            self.error(
                span.clone(),
                key,
                "\"ride-through\" needs [cluster]: a follower learns from the new master's heartbeat that its promote finished and it serves",
            );
        }
        let nfs = root.get("nfs").and_then(|v| v.get_ref().as_table());
        let stable = nfs.and_then(|t| t.get("stable_restart_dir"));
        if stable.is_none() {
            self.error(
                span.clone(),
                key,
                "\"ride-through\" needs nfs.stable_restart_dir: without the NFSv4 stable restart records on the storage the new master refuses every reclaim (NFSERR_NOGRACE) and the followers' opens and locks are lost",
            );
        }
        let v4_only = nfs
            .and_then(|t| t.get("v4_only"))
            .and_then(|v| v.get_ref().as_bool());
        if v4_only != Some(true) {
            self.error(
                span,
                key,
                "\"ride-through\" needs nfs.v4_only = true: with NFSv3 served, rpc.lockd and rpc.statd keep their state on the old master (/var/db/statd.status), which does not move; NFSv4-only is the supported ride-through",
            );
        }
    }
}
