//! The lab's topology: a "switch" namespace holding a Linux bridge, N node
//! namespaces and one client namespace, each joined to the bridge by a veth
//! pair whose node side is named `eth0`. Addresses come from 198.18.0.0/15
//! (RFC 2544 benchmarking space) only; an IPv6 topology (`--family ipv6`)
//! uses 2001:db8::/32 (RFC 3849, documentation space) and link-local
//! addresses only.
//!
//! Everything is torn down in `Drop` (processes left in the namespaces are
//! killed, the namespaces deleted), which also runs on panic unwind; the lab
//! turns Ctrl-C into a flag (see `cancel`) so its loop returns and `Drop` runs.

use std::collections::BTreeSet;
use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sched::{setns, CloneFlags};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::cmd::{self, argv};
use super::{Family, LabError};

/// Every namespace and run directory the lab makes starts with this, followed
/// by the owning process id: `rcbsdlab-<pid>-<tag>-<role>`.
pub const PREFIX: &str = "rcbsdlab";
/// The client that pings the VIP.
pub const CLIENT_ADDRESS: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
/// The default virtual IP of the lab's clusters.
pub const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);
/// Prefix length of every lab address, the VIP included.
pub const PREFIX_LEN: u8 = 24;
/// At most this many nodes (addresses .11 to .17).
pub const MAX_NODES: usize = 7;

/// The IPv6 client (`--family ipv6`).
pub const CLIENT_ADDRESS6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);
/// The IPv6 VIP the client pings.
pub const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x100);
/// The virtual router's link-local address: an IPv6 `[vrrp]` lists it
/// first, as the advert's first address must be (RFC 5798 §5.2.9).
pub const VIP6_LINK_LOCAL: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0x12);
/// Prefix length of every lab IPv6 address, the VIPs included.
pub const PREFIX_LEN6: u8 = 64;

const BRIDGE: &str = "br0";
const NFT_TABLE: &str = "rcbsdlab";
const VRRP_PROTOCOL: &str = "112";

/// The primary address of node `index` (0-based): 198.18.0.11, .12, ...
pub fn node_address(index: usize) -> Ipv4Addr {
    // Callers are bounded by MAX_NODES; saturate rather than wrap otherwise.
    let last = u8::try_from(11 + index).unwrap_or(u8::MAX);
    Ipv4Addr::new(198, 18, 0, last)
}

/// The primary IPv6 address of node `index` (0-based): 2001:db8::11, ::12, ...
pub fn node_address6(index: usize) -> Ipv6Addr {
    let last = u16::try_from(0x11 + index).unwrap_or(u16::MAX);
    Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, last)
}

/// The VIP a client pings on a `family` topology.
pub fn vip(family: Family) -> IpAddr {
    match family {
        Family::Ipv4 => IpAddr::V4(VIP),
        Family::Ipv6 => IpAddr::V6(VIP6),
    }
}

/// The VIPs of a `family` lab cluster, `"address/len"`, in the order the
/// agents' configurations list them (IPv6: the link-local one first).
pub fn virtual_ips(family: Family) -> Vec<String> {
    match family {
        Family::Ipv4 => vec![format!("{VIP}/{PREFIX_LEN}")],
        Family::Ipv6 => vec![
            format!("{VIP6_LINK_LOCAL}/{PREFIX_LEN6}"),
            format!("{VIP6}/{PREFIX_LEN6}"),
        ],
    }
}

/// The human name of node `index` (0-based): n1, n2, ...
pub fn node_name(index: usize) -> String {
    format!("n{}", index + 1)
}

/// `ip netns exec NS argv...`: runs a command inside namespace `ns`.
pub fn netns_exec_argv(ns: &str, command: &[String]) -> Vec<String> {
    let mut full = argv(&["ip", "netns", "exec", ns]);
    full.extend(command.iter().cloned());
    full
}

/// Moves the *calling thread* into namespace `ns` (sockets it opens from now
/// on live there). Only ever call this on a thread the lab spawned.
pub fn enter_netns(ns: &str) -> Result<(), LabError> {
    let path = Path::new("/run/netns").join(ns);
    let file = File::open(&path).map_err(|source| LabError::Netns {
        ns: ns.to_owned(),
        source,
    })?;
    setns(&file, CloneFlags::CLONE_NEWNET).map_err(|errno| LabError::Netns {
        ns: ns.to_owned(),
        source: errno.into(),
    })
}

/// Runs `f` on a fresh thread inside namespace `ns` and returns its result.
pub fn in_netns<T, F>(ns: &str, f: F) -> Result<T, LabError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let ns_owned = ns.to_owned();
    std::thread::spawn(move || enter_netns(&ns_owned).map(|()| f()))
        .join()
        .map_err(|_| LabError::ThreadPanicked("in_netns"))?
}

/// A throwaway topology; see the module documentation.
#[derive(Debug)]
pub struct Topology {
    run_id: String,
    switch: String,
    nodes: Vec<String>,
    client: String,
    run_dir: PathBuf,
    family: Family,
    /// Namespaces that exist and must be deleted, in creation order.
    created: Vec<String>,
    /// Nodes holding our nft table (for `heal`).
    filtered: Mutex<BTreeSet<usize>>,
}

impl Topology {
    /// Builds the switch, `nodes` node namespaces and the client. On any
    /// error, whatever was built is torn down before returning.
    pub fn new(nodes: usize) -> Result<Self, LabError> {
        Self::with_family(nodes, Family::Ipv4)
    }

    /// [`Topology::new`] with `family` addresses: IPv6 nodes get
    /// 2001:db8::(11+index)/64, the client 2001:db8::2/64, no IPv4.
    pub fn with_family(nodes: usize, family: Family) -> Result<Self, LabError> {
        if !(1..=MAX_NODES).contains(&nodes) {
            return Err(LabError::NodeCount(nodes));
        }
        let run_id = unique_run_id();
        let name = |role: &str| format!("{PREFIX}-{run_id}-{role}");
        let run_dir = std::env::temp_dir().join(format!("{PREFIX}-{run_id}"));
        let mut topology = Topology {
            switch: name("sw"),
            nodes: (0..nodes).map(|i| name(&node_name(i))).collect(),
            client: name("c"),
            run_dir,
            family,
            run_id,
            created: Vec::new(),
            filtered: Mutex::new(BTreeSet::new()),
        };
        std::fs::create_dir_all(&topology.run_dir).map_err(|source| LabError::Io {
            what: format!("creating {}", topology.run_dir.display()),
            source,
        })?;
        topology.build_switch()?;
        for index in 0..nodes {
            let ns = topology.nodes.get(index).cloned().unwrap_or_default();
            let address = match family {
                Family::Ipv4 => format!("{}/{PREFIX_LEN}", node_address(index)),
                Family::Ipv6 => format!("{}/{PREFIX_LEN6}", node_address6(index)),
            };
            topology.attach(&ns, &format!("p{}", index + 1), &address)?;
        }
        let client = topology.client.clone();
        let address = match family {
            Family::Ipv4 => format!("{CLIENT_ADDRESS}/{PREFIX_LEN}"),
            Family::Ipv6 => format!("{CLIENT_ADDRESS6}/{PREFIX_LEN6}"),
        };
        topology.attach(&client, "pc", &address)?;
        Ok(topology)
    }

    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// A directory for this run's configs and logs, removed on drop.
    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    pub fn switch_ns(&self) -> &str {
        &self.switch
    }

    pub fn client_ns(&self) -> &str {
        &self.client
    }

    /// Node namespaces, index 0 first.
    pub fn node_namespaces(&self) -> &[String] {
        &self.nodes
    }

    pub fn node_ns(&self, index: usize) -> Result<&str, LabError> {
        self.nodes
            .get(index)
            .map(String::as_str)
            .ok_or(LabError::NoSuchNode(index))
    }

    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Cuts node `index` off the bridge by setting the switch side of its
    /// veth down: the node sees its `eth0` lose carrier, as when a cable is
    /// pulled.
    pub fn cut_link(&self, index: usize) -> Result<(), LabError> {
        self.set_port(index, "down")
    }

    /// Undoes [`Topology::cut_link`].
    pub fn restore_link(&self, index: usize) -> Result<(), LabError> {
        self.set_port(index, "up")
    }

    /// Makes node `at` drop every VRRP packet (IP protocol 112) from node
    /// `from`'s address. One direction only.
    pub fn block_from(&self, at: usize, from: usize) -> Result<(), LabError> {
        self.ensure_filter(at)?;
        let source = node_address(from).to_string();
        self.nft(
            at,
            &[
                "add",
                "rule",
                "inet",
                NFT_TABLE,
                "input",
                "ip",
                "saddr",
                &source,
                "ip",
                "protocol",
                VRRP_PROTOCOL,
                "drop",
            ],
        )
    }

    /// Nodes `a` and `b` no longer hear each other's adverts.
    pub fn block_between(&self, a: usize, b: usize) -> Result<(), LabError> {
        self.block_from(a, b)?;
        self.block_from(b, a)
    }

    /// Splits the nodes into groups that hear only adverts from their own
    /// group; nodes in no group keep hearing everyone.
    pub fn partition(&self, groups: &[&[usize]]) -> Result<(), LabError> {
        for (i, group) in groups.iter().enumerate() {
            for other in groups.iter().skip(i + 1) {
                for &a in group.iter() {
                    for &b in other.iter() {
                        self.block_between(a, b)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Node `at` drops every IPv4 packet from node `from`'s address (adverts
    /// and heartbeats alike). One direction only.
    pub fn silence_from(&self, at: usize, from: usize) -> Result<(), LabError> {
        self.ensure_filter(at)?;
        let source = node_address(from).to_string();
        self.nft(
            at,
            &[
                "add", "rule", "inet", NFT_TABLE, "input", "ip", "saddr", &source, "drop",
            ],
        )
    }

    /// Splits the nodes into groups that hear only their own group, over
    /// every protocol (VRRP and the quorum heartbeats); nodes in no group
    /// keep hearing everyone.
    pub fn split(&self, groups: &[&[usize]]) -> Result<(), LabError> {
        for (i, group) in groups.iter().enumerate() {
            for other in groups.iter().skip(i + 1) {
                for &a in group.iter() {
                    for &b in other.iter() {
                        self.silence_from(a, b)?;
                        self.silence_from(b, a)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Node `at` drops every NFS reply (TCP from port 2049) from `server`:
    /// its NFS mounts of `server` hang (the stand-ins probe the server with
    /// a connect to port 2049) while everything else, VRRP and the
    /// heartbeats, still gets through.
    pub fn silence_nfs_from(&self, at: usize, server: Ipv4Addr) -> Result<(), LabError> {
        self.ensure_filter(at)?;
        let source = server.to_string();
        self.nft(
            at,
            &[
                "add", "rule", "inet", NFT_TABLE, "input", "ip", "saddr", &source, "tcp", "sport",
                "2049", "drop",
            ],
        )
    }

    /// Node `at` drops `percent`% of every IPv4 packet from the other nodes
    /// at random (VRRP and heartbeats).
    pub fn drop_all_randomly(&self, at: usize, percent: u8) -> Result<(), LabError> {
        self.ensure_filter(at)?;
        let below = percent.min(100).to_string();
        let mask = u32::MAX
            .checked_shl(32 - u32::from(PREFIX_LEN))
            .unwrap_or(0);
        let network = Ipv4Addr::from(u32::from(node_address(0)) & mask);
        let prefix = format!("{network}/{PREFIX_LEN}");
        self.nft(
            at,
            &[
                "add", "rule", "inet", NFT_TABLE, "input", "ip", "saddr", &prefix, "numgen",
                "random", "mod", "100", "<", &below, "drop",
            ],
        )
    }

    /// Node `at` drops `percent`% of all received VRRP packets at random.
    pub fn drop_vrrp_randomly(&self, at: usize, percent: u8) -> Result<(), LabError> {
        self.ensure_filter(at)?;
        let below = percent.min(100).to_string();
        self.nft(
            at,
            &[
                "add",
                "rule",
                "inet",
                NFT_TABLE,
                "input",
                "ip",
                "protocol",
                VRRP_PROTOCOL,
                "numgen",
                "random",
                "mod",
                "100",
                "<",
                &below,
                "drop",
            ],
        )
    }

    /// Removes every nft rule the lab added (partitions and loss).
    pub fn heal(&self) -> Result<(), LabError> {
        let nodes: Vec<usize> = match self.filtered.lock() {
            Ok(mut set) => std::mem::take(&mut *set).into_iter().collect(),
            Err(_) => return Err(LabError::ThreadPanicked("nft bookkeeping")),
        };
        for node in nodes {
            self.nft(node, &["delete", "table", "inet", NFT_TABLE])?;
        }
        Ok(())
    }

    fn build_switch(&mut self) -> Result<(), LabError> {
        let sw = self.switch.clone();
        self.add_namespace(&sw)?;
        cmd::run(&argv(&[
            "ip", "-n", &sw, "link", "add", BRIDGE, "type", "bridge",
        ]))?;
        // 224.0.0.18 is link-local and always flooded, but snooping would only
        // add state; STP is off by default so ports forward at once.
        cmd::run(&argv(&[
            "ip",
            "-n",
            &sw,
            "link",
            "set",
            BRIDGE,
            "type",
            "bridge",
            "mcast_snooping",
            "0",
        ]))?;
        cmd::run(&argv(&["ip", "-n", &sw, "link", "set", BRIDGE, "up"]))?;
        Ok(())
    }

    fn attach(&mut self, ns: &str, port: &str, cidr: &str) -> Result<(), LabError> {
        self.add_namespace(ns)?;
        if self.family == Family::Ipv6 {
            // Before eth0 exists, so it inherits `default`: with DAD the
            // VIPs and the link-local advert source would stay tentative
            // (unusable) for a second after every add and link-up
            // (RFC 4862 §5.4), which would be measured as outage.
            for key in [
                "net.ipv6.conf.all.accept_dad=0",
                "net.ipv6.conf.default.accept_dad=0",
            ] {
                cmd::run(&netns_exec_argv(ns, &argv(&["sysctl", "-q", "-w", key])))?;
            }
        }
        let sw = self.switch.clone();
        let steps: [&[&str]; 5] = [
            &[
                "ip", "-n", &sw, "link", "add", port, "type", "veth", "peer", "name", "eth0",
                "netns", ns,
            ],
            &["ip", "-n", &sw, "link", "set", port, "master", BRIDGE],
            &["ip", "-n", &sw, "link", "set", port, "up"],
            &["ip", "-n", ns, "addr", "add", cidr, "dev", "eth0"],
            &["ip", "-n", ns, "link", "set", "eth0", "up"],
        ];
        for step in steps {
            cmd::run(&argv(step))?;
        }
        if self.family == Family::Ipv6 {
            wait_link_local(ns)?;
        }
        Ok(())
    }

    fn add_namespace(&mut self, ns: &str) -> Result<(), LabError> {
        cmd::run(&argv(&["ip", "netns", "add", ns]))?;
        self.created.push(ns.to_owned());
        cmd::run(&argv(&["ip", "-n", ns, "link", "set", "lo", "up"]))?;
        Ok(())
    }

    fn set_port(&self, index: usize, updown: &str) -> Result<(), LabError> {
        self.node_ns(index)?;
        let port = format!("p{}", index + 1);
        cmd::run(&argv(&[
            "ip",
            "-n",
            &self.switch,
            "link",
            "set",
            &port,
            updown,
        ]))?;
        Ok(())
    }

    fn ensure_filter(&self, node: usize) -> Result<(), LabError> {
        self.node_ns(node)?;
        let fresh = match self.filtered.lock() {
            Ok(mut set) => set.insert(node),
            Err(_) => return Err(LabError::ThreadPanicked("nft bookkeeping")),
        };
        if fresh {
            self.nft(node, &["add", "table", "inet", NFT_TABLE])?;
            self.nft(
                node,
                &[
                    "add", "chain", "inet", NFT_TABLE, "input", "{", "type", "filter", "hook",
                    "input", "priority", "0", ";", "policy", "accept", ";", "}",
                ],
            )?;
        }
        Ok(())
    }

    fn nft(&self, node: usize, args: &[&str]) -> Result<(), LabError> {
        let ns = self.node_ns(node)?;
        let mut command = argv(&["nft"]);
        command.extend(args.iter().map(|a| (*a).to_owned()));
        cmd::run(&netns_exec_argv(ns, &command)).map(drop)
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        // Stand-ins frozen in a hang on a gone NFS server survive SIGKILL
        // until thawed: thaw and kill them before the namespaces go.
        crate::cbsd::freezer::release(&crate::cbsd::freezer::prefix(&self.run_dir));
        for ns in self.created.iter().rev() {
            destroy_namespace(ns);
        }
        // Best effort: a failure here must not mask the error being reported.
        let _ = std::fs::remove_dir_all(&self.run_dir);
    }
}

/// Waits until `ns`'s eth0 has its kernel link-local address (made when the
/// link comes up): an IPv6 agent sends its adverts from it (RFC 5798 §5.1.2.1).
fn wait_link_local(ns: &str) -> Result<(), LabError> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let show = argv(&[
        "ip", "-n", ns, "-6", "addr", "show", "dev", "eth0", "scope", "link",
    ]);
    loop {
        let out = cmd::run(&show)?;
        if out.contains("fe80::") && !out.contains("tentative") {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(LabError::Timeout(format!(
                "a link-local address on {ns}'s eth0"
            )));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Kills every process in `ns` (SIGTERM, then SIGKILL after 2 s) and deletes
/// the namespace. Best effort: teardown never fails loudly.
fn destroy_namespace(ns: &str) {
    let pids = || -> Vec<Pid> {
        cmd::run(&argv(&["ip", "netns", "pids", ns]))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
            // Never ourselves: a lab thread may have entered the namespace.
            .filter(|&p| u32::try_from(p).ok() != Some(std::process::id()))
            .map(Pid::from_raw)
            .collect()
    };
    let alive = pids();
    if !alive.is_empty() {
        for &pid in &alive {
            let _ = kill(pid, Signal::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline && !pids().is_empty() {
            std::thread::sleep(Duration::from_millis(20));
        }
        for pid in pids() {
            let _ = kill(pid, Signal::SIGKILL);
        }
    }
    let _ = cmd::run(&argv(&["ip", "netns", "del", ns]));
}

/// Removes namespaces and run directories left by earlier lab runs whose
/// owning process is gone (a crash or SIGKILL skipped `Drop`). Returns the
/// namespaces removed. Live runs, including parallel test binaries, are
/// never touched.
pub fn cleanup_leftovers() -> Vec<String> {
    let mut removed = Vec::new();
    let dead_owner = |name: &str| -> bool {
        let Some(rest) = name.strip_prefix(PREFIX).and_then(|r| r.strip_prefix('-')) else {
            return false;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            return false;
        };
        !Path::new("/proc").join(pid.to_string()).exists()
    };
    if let Ok(entries) = std::fs::read_dir("/run/netns") {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if dead_owner(&name) {
                destroy_namespace(&name);
                removed.push(name);
            }
        }
    }
    if let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if dead_owner(&name) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    crate::cbsd::freezer::release_leftovers();
    removed
}

/// `<pid>-<counter><4 hex digits of clock noise>`: unique among the threads
/// of one process (the counter) and across pid reuse (the clock).
fn unique_run_id() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let counter = COUNTER.fetch_add(1, Ordering::Relaxed);
    let noise = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos() ^ (d.as_secs() as u32))
        .unwrap_or(0)
        & 0xffff;
    format!("{}-{counter}{noise:04x}", std::process::id())
}
