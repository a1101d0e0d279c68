//! A one-line description of a configuration, printed by `check-config`.

use super::{duration, Config, Health, RestartPolicy};

impl Config {
    /// e.g. `node node1: em0 vrid 51 priority 100, advert 1s, VIPs
    /// 192.168.10.200/24, multicast, preempt (delay 0s)`.
    pub fn summary(&self) -> String {
        let vrrp = &self.vrrp;
        let vips: Vec<String> = vrrp
            .virtual_ips
            .iter()
            .map(ToString::to_string)
            .chain(vrrp.virtual_ips6.iter().map(ToString::to_string))
            .collect();
        // The dual-stack IPv6 router, after [vrrp]'s (same format).
        let vrrp6 = match &self.vrrp6 {
            Some(v6) => {
                let vips: Vec<String> = v6.virtual_ips.iter().map(ToString::to_string).collect();
                format!(
                    "; [vrrp6] {} vrid {} priority {}, advert {}, VIPs {}",
                    v6.interface,
                    v6.vrid,
                    v6.priority,
                    duration::format(v6.advert_interval.to_duration()),
                    vips.join(" ")
                )
            }
            None => String::new(),
        };
        let transport = if vrrp.unicast_peers.is_empty() {
            "multicast".to_string()
        } else {
            format!("unicast to {} peer(s)", vrrp.unicast_peers.len())
        };
        let preempt = if vrrp.preempt {
            format!("preempt (delay {})", duration::format(vrrp.preempt_delay))
        } else {
            "no preempt".to_string()
        };
        // With [cluster], placement replaces the per-node patterns (always
        // empty then), so only the placed environments are counted.
        let patterns = if self.cluster.is_some() {
            String::new()
        } else {
            format!(
                ", {} environment pattern(s)",
                self.environments.patterns.len()
            )
        };
        let role = match (&self.cbsd, &self.storage) {
            (None, _) => "plain VRRP (no [cbsd])".to_string(),
            (Some(_), None) => format!("CBSD follower only{patterns}"),
            (Some(_), Some(storage)) => format!(
                "CBSD master candidate ({} storage){patterns}",
                storage.kind.as_str()
            ),
        };
        let quorum = match &self.cluster {
            None => String::new(),
            Some(cluster) => format!(
                "; cluster of {} nodes (majority {}), {} placed environment(s){}{}",
                cluster.nodes.len(),
                cluster.majority(),
                self.placement.len(),
                if self.auth.is_some() {
                    ", authenticated"
                } else {
                    ""
                },
                match (&self.cbsd, cluster.handover_timeout.is_zero()) {
                    (None, _) => String::new(),
                    (Some(_), _) if self.follow.ride_through().is_some() => format!(
                        ", followers ride through a master change (up to {}; no planned hand-over)",
                        duration::format(self.follow.ride_through_timeout)
                    ),
                    (Some(_), true) => ", no planned hand-over (VIP first)".to_owned(),
                    (Some(_), false) => format!(
                        ", planned hand-over waits up to {}",
                        duration::format(cluster.handover_timeout)
                    ),
                }
            ),
        };
        let fence = match &self.fence.watchdog {
            Some(w) => format!(
                "; watchdog {} ({}), lease {}",
                w.device.display(),
                duration::format(w.timeout),
                self.cluster
                    .as_ref()
                    .map_or_else(|| "none".to_owned(), |c| duration::format(c.lease))
            ),
            None => String::new(),
        };
        let health = self.health_summary();
        format!(
            "node {}: {} vrid {} priority {}, advert {}, VIPs {}, {}, {}{vrrp6}; {role}{quorum}{fence}{health}",
            self.node.name,
            vrrp.interface,
            vrrp.vrid,
            vrrp.priority,
            duration::format(vrrp.advert_interval.to_duration()),
            vips.join(" "),
            transport,
            preempt
        )
    }
}

impl Config {
    /// `; health every 5s (rise 2, fall 3), 2 track(s)` when `[health]` or
    /// `[[track]]` changes anything, else empty.
    fn health_summary(&self) -> String {
        let health = &self.health;
        if *health == Health::default() {
            return String::new();
        }
        let mut parts = vec![if health.enabled {
            format!(
                "health every {} (rise {}, fall {})",
                duration::format(health.interval),
                health.rise,
                health.fall
            )
        } else {
            "built-in health checks off".to_owned()
        }];
        if let RestartPolicy::OnFailure { max_restarts, .. } = health.restart_policy {
            parts.push(format!("restarts up to {max_restarts}"));
        }
        if !health.track_interfaces.is_empty() {
            parts.push(format!("tracking {}", health.track_interfaces.join(" ")));
        }
        if health.track_file.is_some() {
            parts.push("a track file".to_owned());
        }
        if !health.tracks.is_empty() {
            parts.push(format!("{} track(s)", health.tracks.len()));
        }
        format!("; {}", parts.join(", "))
    }
}

impl Config {
    /// What `check-config` warns about: valid, but short of what an
    /// operator trusting the agent with the storage should run.
    pub fn warnings(&self) -> Vec<String> {
        // (Pure: what is checked on the node itself, such as the device,
        // is the agent's start and `doctor`.)
        let mut warnings = Vec::new();
        warnings.extend(self.missing_watchdog_warning());
        if self.cluster.is_none() && self.cbsd.is_some() && self.storage.is_some() {
            warnings.push(
                "no [cluster]: plain VRRP has no quorum, so a partitioned master keeps the storage while another node promotes; add [cluster] with three or more voters"
                    .to_owned(),
            );
        }
        if self.cbsd.is_some() {
            let retrycnt = super::mount_options::retrycnt(&self.nfs.mount_options);
            if let Some(count) = retrycnt.filter(|c| *c >= 2) {
                let sleeps = super::mount_options::SLEEP_BETWEEN_TRIES * (count - 1);
                if sleeps >= self.runbook.mount_timeout {
                    warnings.push(format!(
                        "nfs.mount_options has retrycnt={count}: mount_nfs sleeps 60 s between its own tries (mount_nfs.c), {} in all, not less than runbook.mount_timeout {}, so every failing mount is killed instead of saying why; use retrycnt=1 and let the agent retry (runbook.mount_attempts)",
                        duration::format(sleeps),
                        duration::format(self.runbook.mount_timeout)
                    ));
                }
            }
        }
        warnings
    }

    /// The warning of [`Config::warnings`] about a node that moves a disk
    /// (HAST or ZFS storage) without a watchdog; `doctor` prints the same.
    pub fn missing_watchdog_warning(&self) -> Option<String> {
        let moves_storage = self.storage.as_ref().is_some_and(|s| {
            matches!(
                s.kind,
                super::StorageKind::Hast { .. } | super::StorageKind::Zfs { .. }
            )
        });
        (moves_storage && self.fence.watchdog.is_none()).then(|| {
            "[storage] moves a disk between nodes but [fence] has no watchdog: a frozen or crashed agent, a hung step or a demote longer than cluster.fence_margin can leave this node holding the storage after the majority gave it to another; set [fence] watchdog = \"/dev/fido\" (FreeBSD, watchdog(4)) — see rcbsd-failover.toml(5), [fence]"
                .to_owned()
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::parse_with_hostname;

    const BASE: &str = r#"
[vrrp]
interface = "em0"
vrid = 51
virtual_ips = ["192.168.10.200/24"]

[cbsd]
workdir = "/usr/jails"

[storage]
kind = "hast"
resource = "cbsd"
root = "/store"

[nfs]
export_network = "192.168.10.0/24"

[cluster]
nodes = [
  { name = "node1", address = "192.168.10.201" },
  { name = "node2", address = "192.168.10.202" },
  { name = "node3", address = "192.168.10.203" },
]
"#;

    #[test]
    fn the_summary_shows_both_families() {
        let text = "[vrrp]\ninterface = \"em0\"\nvrid = 51\nvirtual_ips = [\"192.0.2.1/24\"]\n\
                    [vrrp6]\ninterface = \"em1\"\nvrid = 52\npriority = 90\nvirtual_ips = [\"fe80::52/64\", \"2001:db8::52/64\"]\n";
        let dual = parse_with_hostname(text, Path::new("x.toml"), Some("node1")).unwrap();
        assert!(
            dual.summary().contains(
                "VIPs 192.0.2.1/24, multicast, preempt (delay 0s); [vrrp6] em1 vrid 52 priority 90, advert 1s, VIPs fe80::52/64 2001:db8::52/64; plain VRRP"
            ),
            "{}",
            dual.summary()
        );
        let v6 = parse_with_hostname(
            "[vrrp]\ninterface = \"em0\"\nvrid = 51\nvirtual_ips = [\"fe80::51/64\"]\n",
            Path::new("x.toml"),
            Some("node1"),
        )
        .unwrap();
        assert!(
            v6.summary().contains("VIPs fe80::51/64, multicast"),
            "{}",
            v6.summary()
        );
    }

    #[test]
    fn hast_without_a_watchdog_is_warned_about_and_with_one_it_is_not() {
        let bare = parse_with_hostname(BASE, Path::new("x.toml"), Some("node1")).unwrap();
        let warnings = bare.warnings();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("[fence] watchdog"), "{warnings:?}");
        let text = format!("{BASE}\n[fence]\nwatchdog = \"/dev/fido\"\n");
        let fenced = parse_with_hostname(&text, Path::new("x.toml"), Some("node1")).unwrap();
        assert!(fenced.warnings().is_empty());
        assert!(
            fenced
                .summary()
                .contains("watchdog /dev/fido (2s), lease 4s"),
            "{}",
            fenced.summary()
        );
    }
}
