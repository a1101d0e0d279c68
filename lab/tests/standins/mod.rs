//! A node's world of FreeBSD tool stand-ins in a temporary directory:
//! `standin.py` linked under every tool name, its state and call log, a
//! CBSD workdir and the shared store, and a configuration whose `[tools]`
//! point at the stand-ins. See `standin.py` for what each tool answers.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rcbsd_failover::config::{parse_with_hostname, Config};
use rcbsd_failover::runbook::{VipControl, VipError};
use rcbsd_lab::cbsd::{freezer, world};
use serde_json::Value;

/// Every `[tools]` entry: the stand-in answers for all of them.
pub fn tool_names() -> impl Iterator<Item = &'static str> {
    rcbsd_failover::config::TOOL_DEFAULTS
        .iter()
        .map(|(name, _)| *name)
}
pub const SHARED_DIRS: &[&str] = &["jails-data", "jails-system", "jails-rcconf", "jails-fstab"];
pub const DIR_ID: &str = "c0ffee-cluster";

/// True when the stand-ins can model a hang that SIGKILL does not end (root
/// and the cgroup-v1 freezer, see `standin.py`). Otherwise prints a loud
/// SKIP line (the test should then return), or fails under `tools/test`
/// (`RCBSD_TESTS_STRICT=1`), where no test may skip.
pub fn require_freezer() -> bool {
    if nix::unistd::geteuid().is_root() && freezer::available() {
        return true;
    }
    let name = std::thread::current()
        .name()
        .unwrap_or("this test")
        .to_owned();
    assert!(
        std::env::var_os("RCBSD_TESTS_STRICT").is_none_or(|v| v != "1"),
        "{name} needs root and the cgroup-v1 freezer ({}) to model a hang SIGKILL does not end, and RCBSD_TESTS_STRICT=1 is set",
        freezer::FREEZER
    );
    eprintln!("\n*** SKIP {name}: needs root and the cgroup-v1 freezer ***\n");
    false
}

/// One node's stand-in world (the store is shared by every node of a test).
pub struct World {
    pub dir: tempfile::TempDir,
    pub node: String,
    pub tools: PathBuf,
    pub workdir: PathBuf,
    pub store: PathBuf,
    pub exports: PathBuf,
    pub hast_dev: PathBuf,
    pub state: PathBuf,
    pub log: PathBuf,
    pub cluster_log: PathBuf,
    pub rules: PathBuf,
    /// The stand-ins' server (`standin.py serve`): one Python for every
    /// call instead of one per call; None (the tools then run standin.py
    /// themselves) if it did not come up. Stopped when the world goes.
    server: Option<world::StandinServer>,
}

impl World {
    pub fn new(node: &str) -> World {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let tools = root.join("tools");
        std::fs::create_dir_all(&tools).unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("standins/standin.py");
        // The thin client under every tool name; it runs standin.py
        // through this world's server (or, without one, itself).
        let client = Path::new(env!("CARGO_BIN_EXE_rcbsd-standin"));
        for tool in tool_names().chain([world::NFS_ACCESS_TOOL]) {
            std::os::unix::fs::symlink(client, tools.join(tool)).unwrap();
        }
        std::os::unix::fs::symlink(&script, tools.join("standin.py")).unwrap();
        let workdir = root.join("usr/jails");
        let store = root.join("store");
        for d in SHARED_DIRS {
            std::fs::create_dir_all(workdir.join(d)).unwrap();
            std::fs::create_dir_all(store.join(d)).unwrap();
        }
        std::fs::write(store.join("jails-data/dir.id"), format!("{DIR_ID}\n")).unwrap();
        let world = World {
            node: node.to_owned(),
            tools: tools.clone(),
            workdir,
            store,
            exports: root.join("etc/exports"),
            hast_dev: root.join("dev/hast"),
            state: root.join("state.json"),
            log: root.join("calls.jsonl"),
            cluster_log: root.join("cluster.jsonl"),
            rules: root.join("rules.json"),
            server: world::start_server(&script, &tools.join("standin.sock"))
                .map_err(|e| eprintln!("{e}: the tools run standin.py themselves"))
                .ok(),
            dir,
        };
        std::fs::create_dir_all(root.join("etc")).unwrap();
        let standin = serde_json::json!({
            "node": node,
            "state": world.state,
            "log": world.log,
            "cluster_log": world.cluster_log,
            "rules": world.rules,
            "workdir": world.workdir,
            "nfs_server": "/",
            "exports": world.exports,
            "hast_dev_dir": world.hast_dev,
            "freezer_prefix": freezer::prefix(world.dir.path()),
        });
        std::fs::write(tools.join("standin.json"), standin.to_string()).unwrap();
        world.set_rules(serde_json::json!([]));
        world
    }

    /// A follower of `master`: it mounts `master`'s store (its
    /// `nfs.remote_root`), served by `master`'s nfsd and mountd as the
    /// stand-in models them, as the NFS client `address`.
    pub fn follower_of(node: &str, master: &World, address: &str) -> World {
        let mut world = World::new(node);
        world.store = master.store.clone();
        world.set_standin(
            "server",
            serde_json::json!({"node": master.node, "state": master.state}),
        );
        world.set_standin("address", serde_json::json!(address));
        world
    }

    /// Sets `key` of this node's `standin.json` (see `standin.py`).
    pub fn set_standin(&self, key: &str, value: Value) {
        let path = self.tools.join("standin.json");
        let mut config: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        config[key] = value;
        std::fs::write(&path, config.to_string()).unwrap();
    }

    /// Runs one stand-in tool as the agent would: (exit code, stderr).
    pub fn run_tool(&self, tool: &str, args: &[&str]) -> (Option<i32>, String) {
        let output = std::process::Command::new(self.tools.join(tool))
            .args(args)
            .current_dir("/")
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    /// What this node's stand-in daemons logged (mountd's complaints).
    pub fn syslog(&self) -> Vec<String> {
        self.state()["syslog"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|m| m["message"].as_str().unwrap_or_default().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// An environment CBSD knows in the shared dirs, unregistered (its
    /// rc.conf waits in jails-rcconf for `jregister`).
    pub fn add_environment(&self, name: &str, bhyve: bool) {
        std::fs::create_dir_all(self.store.join("jails-system").join(name)).unwrap();
        let mut rc = format!("jname=\"{name}\"\n");
        if bhyve {
            rc.push_str("emulator=\"bhyve\"\n");
            // A VM's settings (subr/rcconf.subr init_bhyve_rcconf).
            std::fs::write(
                self.store
                    .join("jails-system")
                    .join(name)
                    .join("local.sqlite"),
                "",
            )
            .unwrap();
        }
        std::fs::write(
            self.store
                .join("jails-rcconf")
                .join(format!("rc.conf_{name}")),
            rc,
        )
        .unwrap();
    }

    /// The NFS server at `host` stops answering: every process touching a
    /// mount of it hangs, a kill does not end it, until `umount -N`.
    pub fn server_gone(&self, host: &str) {
        let mut state = match self.state() {
            Value::Object(map) => Value::Object(map),
            _ => serde_json::json!({}),
        };
        state["gone_servers"] = serde_json::json!([host]);
        std::fs::write(&self.state, state.to_string()).unwrap();
    }

    /// The calls the stand-ins logged as hanging without the freezer (a
    /// hang a kill ends: more lenient than the real one).
    pub fn lenient_hangs(&self) -> usize {
        let mut path = self.state.clone().into_os_string();
        path.push(".lenient");
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .count()
    }

    pub fn set_rules(&self, rules: Value) {
        std::fs::write(&self.rules, rules.to_string()).unwrap();
    }

    /// The configuration of this node: `extra` is appended (e.g. a
    /// `[storage]` table) after the common sections.
    pub fn config(&self, storage: &str, extra_nfs: &str, environments: &str) -> Config {
        let text = format!(
            r#"
[node]
name = "{node}"
state_dir = "{state_dir}"
[vrrp]
interface = "eth0"
vrid = 51
virtual_ips = ["198.18.0.100/24"]
[cbsd]
workdir = "{workdir}"
dir_id = "{DIR_ID}"
{storage}
[nfs]
export_network = "198.18.0.0/24"
exports_file = "{exports}"
remote_root = "{store}"
{extra_nfs}
[environments]
{environments}
stop_timeout = "5s"
start_timeout = "5s"
[runbook]
command_timeout = "5s"
umount_timeout = "5s"
nfs_answer_timeout = "1s"
storage_timeout = "5s"
device_wait = "2s"
mount_timeout = "5s"
mount_attempts = 3
retry_backoff = "0.1s"
retry_backoff_max = "0.2s"
[tools]
{tools}
"#,
            node = self.node,
            state_dir = self.dir.path().join("db").display(),
            workdir = self.workdir.display(),
            exports = self.exports.display(),
            store = self.store.display(),
            tools = tool_names()
                .map(|t| format!("{t} = \"{}\"", self.tools.join(t).display()))
                .collect::<Vec<_>>()
                .join("\n"),
        );
        parse_with_hostname(&text, &self.dir.path().join("node.toml"), Some(&self.node))
            .unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    /// `[storage]` of kind none on this world's store.
    pub fn storage_none(&self) -> String {
        format!(
            "[storage]\nkind = \"none\"\nroot = \"{}\"\n",
            self.store.display()
        )
    }

    pub fn storage_hast(&self) -> String {
        format!(
            "[storage]\nkind = \"hast\"\nresource = \"cbsd\"\ndevice = \"{}\"\nroot = \"{}\"\n",
            self.hast_dev.join("cbsd").display(),
            self.store.display()
        )
    }

    /// `[storage]` of kind zfs: `pool`, its datasets mounted on this
    /// world's store.
    pub fn storage_zfs(&self, pool: &str) -> String {
        format!(
            "[storage]\nkind = \"zfs\"\npool = \"{pool}\"\nroot = \"{}\"\n",
            self.store.display()
        )
    }

    /// Puts a pool on the shared disks: `record` is a pool record of
    /// standin.py's zpool (`multihost`, `state`, `hostid`, `hostname`,
    /// `writing`, `mountpoint`: this world's store unless given), merged
    /// into this node's state.
    pub fn add_pool(&self, name: &str, mut record: Value) {
        let mut state = match self.state() {
            Value::Object(map) => Value::Object(map),
            _ => serde_json::json!({}),
        };
        if record.get("mountpoint").is_none() {
            record["mountpoint"] = serde_json::json!(self.store);
        }
        state["pools"][name] = record;
        std::fs::write(&self.state, state.to_string()).unwrap();
    }

    /// Sets `key` of this node's state (e.g. `rc_conf`, `sysctl`,
    /// `pkg_config`, `hostid`: what the read-only tools answer), the rest
    /// of the state unchanged.
    pub fn set_state(&self, key: &str, value: Value) {
        let mut state = match self.state() {
            Value::Object(map) => Value::Object(map),
            _ => serde_json::json!({}),
        };
        state[key] = value;
        std::fs::write(&self.state, state.to_string()).unwrap();
    }

    /// A pool's record as the stand-in left it.
    pub fn pool(&self, name: &str) -> Value {
        self.state()["pools"][name].clone()
    }

    /// Every recorded call, in order.
    pub fn calls(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Every recorded argv, without the tool's directory, joined by spaces.
    pub fn argvs(&self) -> Vec<String> {
        self.calls()
            .iter()
            .map(|c| {
                c["argv"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| a.as_str().unwrap().to_owned())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect()
    }

    /// The calls that change something (no status probes).
    pub fn actions(&self) -> Vec<String> {
        self.argvs()
            .into_iter()
            .filter(|a| {
                !(a.starts_with("mount -p")
                    || a.ends_with("onestatus")
                    || a.starts_with("cbsd jstatus")
                    || a.starts_with("sockstat")
                    || a.starts_with("zpool list")
                    || a.starts_with("zpool get"))
            })
            .collect()
    }

    pub fn state(&self) -> Value {
        std::fs::read_to_string(&self.state)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(Value::Null)
    }

    pub fn services(&self) -> Vec<String> {
        strings(&self.state()["services"])
    }

    pub fn mounts(&self) -> Vec<String> {
        self.state()["mounts"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|m| {
                        format!(
                            "{} {}",
                            m["type"].as_str().unwrap(),
                            m["target"].as_str().unwrap()
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The cluster log: (node, env, event).
    pub fn cluster_events(&self) -> Vec<(String, String, String)> {
        std::fs::read_to_string(&self.cluster_log)
            .unwrap_or_default()
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                (
                    v["node"].as_str().unwrap().to_owned(),
                    v["env"].as_str().unwrap().to_owned(),
                    v["event"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }
}

impl Drop for World {
    /// Stand-ins frozen in a hang survive SIGKILL until thawed: release
    /// them, also when the test failed.
    fn drop(&mut self) {
        freezer::release(&freezer::prefix(self.dir.path()));
    }
}

pub fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// A VIP that lives in memory: records what was asked, can be told to fail.
#[derive(Clone, Default)]
pub struct FakeVip {
    pub calls: Arc<Mutex<Vec<&'static str>>>,
    pub fail_add: bool,
}

impl FakeVip {
    pub fn calls(&self) -> Vec<&'static str> {
        self.calls.lock().unwrap().clone()
    }

    fn record(&self, what: &'static str) {
        self.calls.lock().unwrap().push(what);
    }
}

impl VipControl for FakeVip {
    async fn add(&self) -> Result<(), VipError> {
        self.record("add");
        if self.fail_add {
            use std::os::unix::process::ExitStatusExt;
            Err(VipError::Add(rcbsd_failover::net::vip::VipError::Failed {
                argv: vec!["injected".into()],
                status: std::process::ExitStatus::from_raw(1 << 8),
                stderr: "cannot add".into(),
            }))
        } else {
            Ok(())
        }
    }

    async fn remove(&self) -> Result<(), VipError> {
        self.record("remove");
        Ok(())
    }

    async fn announce(&self, _why: &'static str) -> Result<(), VipError> {
        self.record("announce");
        Ok(())
    }

    async fn announce6(&self, _why: &'static str) -> Result<(), VipError> {
        self.record("announce6");
        Ok(())
    }
}
