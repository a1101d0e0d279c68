//! What a reload (SIGHUP) may change in place, and what needs a restart:
//! one list, [`RESTART_ONLY`], which the agent applies and from which the
//! tables of docs/configuration.md and the man pages are checked
//! (tests/docs.rs). Everything not listed is applied by a reload.

use super::Config;

/// A setting a reload refuses to change: the running configuration is
/// kept and `config_rejected` says which one and that a restart applies it.
pub struct RestartOnly {
    /// The setting as the docs spell it: `vrrp.interface`, `[cbsd]`.
    pub setting: &'static str,
    /// Why a running agent cannot take it, in words for the docs.
    pub why: &'static str,
    /// Whether the setting differs between the old and the new file.
    changed: fn(&Config, &Config) -> bool,
}

impl RestartOnly {
    /// Whether a reload from `old` to `new` changes this setting.
    pub fn changed(&self, old: &Config, new: &Config) -> bool {
        (self.changed)(old, new)
    }
}

/// Every setting a reload refuses to change, in the order checked.
pub const RESTART_ONLY: &[RestartOnly] = &[
    RestartOnly {
        setting: "node.name",
        why: "the name in heartbeats and CBSD locks; peers would see another node",
        changed: |a, b| a.node.name != b.node.name,
    },
    RestartOnly {
        setting: "vrrp.interface",
        why: "the VRRP socket, the carrier probe and the link watch are bound to it",
        changed: |a, b| a.vrrp.interface != b.vrrp.interface,
    },
    RestartOnly {
        setting: "vrrp.vrid",
        why: "the router's identity: peers would see a new router appear and the old one vanish",
        changed: |a, b| a.vrrp.vrid != b.vrrp.vrid,
    },
    RestartOnly {
        setting: "vrrp.virtual_ips",
        why: "a master removes the VIPs it added: it must not lose track of one it holds",
        changed: |a, b| {
            a.vrrp.virtual_ips != b.vrrp.virtual_ips || a.vrrp.virtual_ips6 != b.vrrp.virtual_ips6
        },
    },
    RestartOnly {
        setting: "[vrrp6]",
        why: "a second virtual router with its own socket and VIPs: adding, removing or changing it (or the family of [vrrp]) starts or stops an instance",
        changed: |a, b| a.vrrp6 != b.vrrp6,
    },
    RestartOnly {
        setting: "node.control_socket",
        why: "the socket is bound once, at start",
        changed: |a, b| a.node.control_socket != b.node.control_socket,
    },
    RestartOnly {
        setting: "node.status_group",
        why: "resolved once, when the control socket is made",
        changed: |a, b| a.node.status_group != b.node.status_group,
    },
    RestartOnly {
        setting: "node.state_dir",
        why: "the override, the holds and the incarnation are kept there",
        changed: |a, b| a.node.state_dir != b.node.state_dir,
    },
    RestartOnly {
        setting: "[cbsd]",
        why: "demote releases what promote took with the same settings; a restart demotes with the old ones first",
        changed: |a, b| a.cbsd != b.cbsd,
    },
    RestartOnly {
        setting: "[storage]",
        why: "as [cbsd]: a master must never lose track of the storage it holds",
        changed: |a, b| a.storage != b.storage,
    },
    RestartOnly {
        setting: "[nfs]",
        why: "as [cbsd]: a master must never lose track of the NFS server and exports it runs",
        changed: |a, b| a.nfs != b.nfs,
    },
    RestartOnly {
        setting: "[tools]",
        why: "as [cbsd]: what was started with one tool is stopped with the same",
        changed: |a, b| a.tools != b.tools,
    },
    RestartOnly {
        setting: "[cluster]",
        why: "membership and lease timings are what a majority is computed from; a node with other ones is not counted",
        changed: |a, b| a.cluster != b.cluster,
    },
    RestartOnly {
        setting: "[[environment]]",
        why: "adding, changing or removing one: only the start-up probe finds an environment that already runs here (started by hand, or by an earlier run), and without it another node could start it a second time",
        changed: |a, b| a.placement != b.placement,
    },
    RestartOnly {
        setting: "[auth]",
        why: "adding or removing it: peers would drop every advert and heartbeat at once (the keys themselves rotate by reload)",
        changed: |a, b| a.auth.is_some() != b.auth.is_some(),
    },
    RestartOnly {
        setting: "[fence]",
        why: "the watchdog device is opened and armed at start",
        changed: |a, b| a.fence != b.fence,
    },
];

/// The first setting of [`RESTART_ONLY`] that differs, if any.
pub fn needs_restart(old: &Config, new: &Config) -> Option<&'static RestartOnly> {
    RESTART_ONLY.iter().find(|rule| rule.changed(old, new))
}

/// The table of docs/configuration.md: `| setting | why |` rows.
pub fn markdown_table() -> String {
    let mut text = String::from("| setting | why a reload cannot change it |\n|---|---|\n");
    for rule in RESTART_ONLY {
        text.push_str(&format!("| `{}` | {} |\n", rule.setting, rule.why));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_with_hostname;

    const BASE: &str = r#"
[node]
name = "node1"
[vrrp]
interface = "em0"
vrid = 51
virtual_ips = ["192.168.10.200/24"]
[cluster]
nodes = [
  { name = "node1", address = "192.168.10.1" },
  { name = "node2", address = "192.168.10.2" },
  { name = "node3", address = "192.168.10.3" },
]
[cbsd]
workdir = "/usr/jails"
[[environment]]
name = "web1"
nodes = ["node1", "node2"]
"#;

    fn config(extra: &str) -> Config {
        parse_with_hostname(&format!("{BASE}{extra}"), "/x.toml".as_ref(), Some("node1"))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn adding_changing_or_removing_an_environment_needs_a_restart() {
        let old = config("[[environment]]\nname = \"db1\"\nnodes = [\"node2\"]\n");
        let added = config(
            "[[environment]]\nname = \"db1\"\nnodes = [\"node2\"]\n[[environment]]\nname = \"app1\"\nnodes = [\"node3\"]\n",
        );
        let changed = config("[[environment]]\nname = \"db1\"\nnodes = [\"node3\"]\n");
        let removed = config("");
        for new in [added, changed, removed] {
            let rule = needs_restart(&old, &new).map(|r| r.setting);
            assert_eq!(rule, Some("[[environment]]"));
        }
    }

    #[test]
    fn priority_is_applied_and_the_vrid_is_not() {
        let old = config("");
        let text = BASE.replace("vrid = 51", "vrid = 51\npriority = 200");
        let new = parse_with_hostname(&text, "/x.toml".as_ref(), Some("node1"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(needs_restart(&old, &new).is_none());
        let text = BASE.replace("vrid = 51", "vrid = 52");
        let new = parse_with_hostname(&text, "/x.toml".as_ref(), Some("node1"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            needs_restart(&old, &new).map(|r| r.setting),
            Some("vrrp.vrid")
        );
    }
}
