//! The virtual IP on the interface: add and remove it with the platform's
//! own tool, idempotently, for both families ([`VipAddress`]).
//!
//! An IPv6 VIP must be usable the moment it is added: Duplicate Address
//! Detection (RFC 4862 §5.4) would keep it "tentative" for about a second
//! (no traffic to or from it, no answer to Neighbor Solicitations), and,
//! worse, would find the old master still holding it after a split and
//! mark it "duplicated" for good. A VRRP address moves between routers by
//! design, and the election, not DAD, decides who holds it, so both
//! backends add it without DAD (keepalived does the same, `IFA_F_NODAD`):
//! see [`LinuxIp`] and [`FreeBsdIfconfig`].
//!
//! A backend only says *which argv* adds or removes an address; running it
//! (with a timeout), checking the interface before and after, and turning
//! failures into errors that carry argv, exit status and stderr is common
//! to both platforms and lives here. Both backends compile everywhere so
//! their argv is unit-tested on Linux; [`platform_backend`] picks one.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use crate::config::{VirtualIp, VirtualIp6};

use super::error::NetError;
use super::iface;

/// How long `ip` / `ifconfig` may take before we give up on it. Both
/// answer in milliseconds; a hang means something is badly wrong.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// A virtual address of either family, with the prefix length it is
/// added with: [`VirtualIp`] or [`VirtualIp6`].
pub trait VipAddress: std::fmt::Display + Sync {
    /// The address.
    fn ip(&self) -> IpAddr;
    /// Its prefix length.
    fn prefix_len(&self) -> u8;
}

impl VipAddress for VirtualIp {
    fn ip(&self) -> IpAddr {
        IpAddr::V4(self.address)
    }
    fn prefix_len(&self) -> u8 {
        self.prefix_len
    }
}

impl VipAddress for VirtualIp6 {
    fn ip(&self) -> IpAddr {
        IpAddr::V6(self.address)
    }
    fn prefix_len(&self) -> u8 {
        self.prefix_len
    }
}

/// The commands that add and remove a virtual IP on one platform.
pub trait VipBackend {
    /// The command line, program first, that adds `vip` to `interface`.
    fn add_argv(&self, interface: &str, vip: &dyn VipAddress) -> Vec<String>;
    /// The command line, program first, that removes `vip` from `interface`.
    fn remove_argv(&self, interface: &str, vip: &dyn VipAddress) -> Vec<String>;
}

/// Linux iproute2: `ip -4 addr add A/P dev IF` / `ip -4 addr del A/P dev IF`;
/// for IPv6 `ip -6 addr add A/P dev IF nodad` / `ip -6 addr del A/P dev IF`.
///
/// `nodad` sets `IFA_F_NODAD` on the address (ip-address(8); the kernel's
/// `addrconf_dad_begin` then completes DAD at once without a probe,
/// net/ipv6/addrconf.c), so it is never listed "tentative", whatever the
/// interface's `accept_dad`; keepalived
/// adds its IPv6 VIPs the same way.
///
/// The VIP is added with its configured prefix and *without*
/// `noprefixroute`, as keepalived does: a VIP in the primary address's
/// subnet becomes a secondary address and adds no route, while a VIP in a
/// subnet of its own gets the connected route that lets this node answer
/// clients there. (`noprefixroute` would leave such a VIP unreachable for
/// replies unless the operator adds the route by hand.)
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinuxIp {
    /// Path of the `ip` binary.
    pub ip_path: PathBuf,
}

impl VipBackend for LinuxIp {
    fn add_argv(&self, interface: &str, vip: &dyn VipAddress) -> Vec<String> {
        let mut argv = self.addr_argv("add", interface, vip);
        if vip.ip().is_ipv6() {
            argv.push("nodad".into());
        }
        argv
    }

    fn remove_argv(&self, interface: &str, vip: &dyn VipAddress) -> Vec<String> {
        self.addr_argv("del", interface, vip)
    }
}

impl LinuxIp {
    fn addr_argv(&self, verb: &str, interface: &str, vip: &dyn VipAddress) -> Vec<String> {
        let family = if vip.ip().is_ipv6() { "-6" } else { "-4" };
        vec![
            self.ip_path.to_string_lossy().into_owned(),
            family.into(),
            "addr".into(),
            verb.into(),
            format!("{}/{}", vip.ip(), vip.prefix_len()),
            "dev".into(),
            interface.into(),
        ]
    }
}

/// FreeBSD ifconfig(8): `ifconfig IF inet A/32 alias` / `ifconfig IF inet
/// A -alias`; for IPv6 `ifconfig IF inet6 A prefixlen P alias no_dad` /
/// `ifconfig IF inet6 A -alias`.
///
/// IPv4: always /32, whatever prefix is configured: on FreeBSD an alias in
/// the subnet of an existing address must have an all-ones netmask
/// (otherwise `ifconfig` fails with "File exists" for the duplicate prefix
/// route), and the primary address already provides the connected route.
/// IPv6 keeps the configured prefix: IPv6 prefixes are shared by several
/// addresses (the prefix list counts them, `ndpr_addrcnt`), no conflict.
///
/// IPv6 without DAD: ifconfig(8) has no per-address "no DAD" option (its
/// inet6 words, sbin/ifconfig/af_inet6.c `inet6_cmds`, set only
/// `anycast`, `tentative`, `deprecated`, `autoconf`, `prefer_source` on an
/// address). The kernel marks a new address tentative when `in6if_do_dad`
/// says so (sys/netinet6/in6.c `in6_update_ifa_internal`), and that is
/// false when the interface has `ND6_IFF_NO_DAD`; `nd6_dad_start`
/// (sys/netinet6/nd6_nbr.c) likewise clears the tentative flag at once for
/// such an interface. ifconfig sets that flag with the `no_dad` word
/// (`setnd6flags`, an immediate `SIOCSIFINFO_IN6`), and it applies an
/// address only after all its words are parsed, so `... alias no_dad`
/// turns DAD off before the VIP exists. The flag stays on the interface
/// (every later IPv6 address there skips DAD too, as on a CARP interface);
/// docs/election.md says so for the operator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FreeBsdIfconfig {
    /// Path of ifconfig(8) (`[tools] ifconfig`).
    pub ifconfig_path: PathBuf,
}

impl VipBackend for FreeBsdIfconfig {
    fn add_argv(&self, interface: &str, vip: &dyn VipAddress) -> Vec<String> {
        let program = self.ifconfig_path.to_string_lossy().into_owned();
        match vip.ip() {
            IpAddr::V4(address) => vec![
                program,
                interface.into(),
                "inet".into(),
                format!("{address}/32"),
                "alias".into(),
            ],
            IpAddr::V6(address) => vec![
                program,
                interface.into(),
                "inet6".into(),
                address.to_string(),
                "prefixlen".into(),
                vip.prefix_len().to_string(),
                "alias".into(),
                "no_dad".into(),
            ],
        }
    }

    fn remove_argv(&self, interface: &str, vip: &dyn VipAddress) -> Vec<String> {
        let family = if vip.ip().is_ipv6() { "inet6" } else { "inet" };
        vec![
            self.ifconfig_path.to_string_lossy().into_owned(),
            interface.into(),
            family.into(),
            vip.ip().to_string(),
            "-alias".into(),
        ]
    }
}

/// The operating system whose tool adds the virtual IP. The agent uses
/// the one it runs on ([`Os::host`]); `plan` shows FreeBSD's, the
/// product's platform, unless asked for Linux (the test platform).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Os {
    /// ifconfig(8) aliases ([`FreeBsdIfconfig`]).
    FreeBsd,
    /// iproute2 ([`LinuxIp`]): the tests and the lab.
    Linux,
}

impl Os {
    /// The system this program was built for: Linux on Linux, FreeBSD's
    /// tool everywhere else.
    pub fn host() -> Os {
        if cfg!(target_os = "linux") {
            Os::Linux
        } else {
            Os::FreeBsd
        }
    }

    /// Its name, as `plan` prints it.
    pub fn name(self) -> &'static str {
        match self {
            Os::FreeBsd => "FreeBSD",
            Os::Linux => "Linux",
        }
    }

    /// The VIP commands of this system. `ifconfig` is FreeBSD's tool
    /// (`[tools] ifconfig`); Linux uses `/sbin/ip`.
    pub fn backend(self, ifconfig: &Path) -> Box<dyn VipBackend + Send + Sync> {
        match self {
            Os::Linux => Box::new(LinuxIp {
                ip_path: PathBuf::from("/sbin/ip"),
            }),
            Os::FreeBsd => Box::new(FreeBsdIfconfig {
                ifconfig_path: ifconfig.to_path_buf(),
            }),
        }
    }
}

/// The backend of the platform we run on ([`Os::host`]).
pub fn platform_backend(ifconfig: &Path) -> Box<dyn VipBackend + Send + Sync> {
    Os::host().backend(ifconfig)
}

/// Why a virtual IP could not be added or removed.
#[derive(Debug, thiserror::Error)]
pub enum VipError {
    /// Reading the interface's addresses, before or after the command, failed.
    #[error("cannot read the addresses of {interface:?}: {error}")]
    Query {
        /// The interface.
        interface: String,
        /// The underlying failure.
        error: NetError,
    },

    /// The command could not be started or waited for.
    #[error("{argv:?} failed to start: {error}")]
    Spawn {
        /// The command line, program first.
        argv: Vec<String>,
        /// The OS error.
        error: std::io::Error,
    },

    /// The command ran longer than [`COMMAND_TIMEOUT`] and was killed.
    #[error("{argv:?} did not finish within {}s and was killed", timeout.as_secs())]
    Timeout {
        /// The command line, program first.
        argv: Vec<String>,
        /// The time limit it exceeded.
        timeout: Duration,
    },

    /// The command exited unsuccessfully and the interface is not as wanted.
    #[error("{argv:?} failed ({status}): {stderr}")]
    Failed {
        /// The command line, program first.
        argv: Vec<String>,
        /// Its exit status.
        status: ExitStatus,
        /// Its standard error, trimmed.
        stderr: String,
    },

    /// The command succeeded, yet the address is not (or still is) on the
    /// interface afterwards.
    #[error("{argv:?} succeeded but {vip} is {} interface {interface:?} afterwards", if *.expected_present { "still not on" } else { "still on" })]
    NotApplied {
        /// The command line, program first.
        argv: Vec<String>,
        /// The interface.
        interface: String,
        /// The virtual IP, with its prefix length.
        vip: String,
        /// Whether the command was meant to add (`true`) or remove it.
        expected_present: bool,
    },

    /// The backend returned an empty command line (a bug in the backend).
    #[error("empty command for {vip} on {interface:?}")]
    EmptyArgv {
        /// The interface.
        interface: String,
        /// The virtual IP, with its prefix length.
        vip: String,
    },
}

/// Makes sure `vip` is on `interface`. Returns whether anything changed
/// (`false`: it was already there, with whatever prefix).
pub async fn ensure_present(
    backend: &(dyn VipBackend + Send + Sync),
    interface: &str,
    vip: &dyn VipAddress,
) -> Result<bool, VipError> {
    converge(backend.add_argv(interface, vip), interface, vip, true).await
}

/// Makes sure `vip` is not on `interface`. Returns whether anything changed.
pub async fn ensure_absent(
    backend: &(dyn VipBackend + Send + Sync),
    interface: &str,
    vip: &dyn VipAddress,
) -> Result<bool, VipError> {
    converge(backend.remove_argv(interface, vip), interface, vip, false).await
}

/// Runs `argv` unless the interface already is as wanted, then checks it is.
async fn converge(
    argv: Vec<String>,
    interface: &str,
    vip: &dyn VipAddress,
    want_present: bool,
) -> Result<bool, VipError> {
    if is_present(interface, vip)? == want_present {
        return Ok(false);
    }
    if let Err(error) = run(&argv, interface, vip).await {
        // Another actor (an operator, a racing call) may have done the same
        // change between our check and the command, which then fails with
        // "File exists" / "Cannot assign requested address": the interface
        // is as wanted, and that is all the caller asked for.
        if matches!(error, VipError::Failed { .. }) && is_present(interface, vip)? == want_present {
            return Ok(false);
        }
        return Err(error);
    }
    if is_present(interface, vip)? != want_present {
        return Err(VipError::NotApplied {
            argv,
            interface: interface.to_owned(),
            vip: vip.to_string(),
            expected_present: want_present,
        });
    }
    Ok(true)
}

fn is_present(interface: &str, vip: &dyn VipAddress) -> Result<bool, VipError> {
    let query = |error| VipError::Query {
        interface: interface.to_owned(),
        error,
    };
    Ok(match vip.ip() {
        IpAddr::V4(wanted) => iface::ipv4_addresses(interface)
            .map_err(query)?
            .iter()
            .any(|&(address, _)| address == wanted),
        IpAddr::V6(wanted) => iface::ipv6_addresses(interface)
            .map_err(query)?
            .iter()
            .any(|&(address, _)| address == wanted),
    })
}

async fn run(argv: &[String], interface: &str, vip: &dyn VipAddress) -> Result<(), VipError> {
    let Some((program, args)) = argv.split_first() else {
        return Err(VipError::EmptyArgv {
            interface: interface.to_owned(),
            vip: vip.to_string(),
        });
    };
    let child = tokio::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        // Dropping the future at the timeout must not leave the tool running.
        .kill_on_drop(true)
        .spawn()
        .map_err(|error| VipError::Spawn {
            argv: argv.to_vec(),
            error,
        })?;
    let output = match tokio::time::timeout(COMMAND_TIMEOUT, child.wait_with_output()).await {
        Ok(Ok(output)) => output,
        Ok(Err(error)) => {
            return Err(VipError::Spawn {
                argv: argv.to_vec(),
                error,
            })
        }
        Err(_elapsed) => {
            return Err(VipError::Timeout {
                argv: argv.to_vec(),
                timeout: COMMAND_TIMEOUT,
            })
        }
    };
    if output.status.success() {
        return Ok(());
    }
    Err(VipError::Failed {
        argv: argv.to_vec(),
        status: output.status,
        stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn vip(a: u8, b: u8, c: u8, d: u8, prefix_len: u8) -> VirtualIp {
        VirtualIp {
            address: Ipv4Addr::new(a, b, c, d),
            prefix_len,
        }
    }

    fn linux() -> LinuxIp {
        LinuxIp {
            ip_path: PathBuf::from("ip"),
        }
    }

    fn freebsd() -> FreeBsdIfconfig {
        FreeBsdIfconfig {
            ifconfig_path: PathBuf::from("ifconfig"),
        }
    }

    #[test]
    fn linux_adds_with_the_configured_prefix() {
        assert_eq!(
            linux().add_argv("eth0", &vip(198, 18, 99, 1, 24)),
            ["ip", "-4", "addr", "add", "198.18.99.1/24", "dev", "eth0"]
        );
    }

    #[test]
    fn linux_removes_with_the_configured_prefix() {
        assert_eq!(
            linux().remove_argv("eth0", &vip(198, 18, 99, 1, 24)),
            ["ip", "-4", "addr", "del", "198.18.99.1/24", "dev", "eth0"]
        );
    }

    #[test]
    fn freebsd_adds_a_slash_32_alias_whatever_the_prefix() {
        assert_eq!(
            freebsd().add_argv("em0", &vip(192, 168, 10, 200, 24)),
            ["ifconfig", "em0", "inet", "192.168.10.200/32", "alias"]
        );
    }

    #[test]
    fn freebsd_removes_the_alias_by_address() {
        assert_eq!(
            freebsd().remove_argv("em0", &vip(192, 168, 10, 200, 24)),
            ["ifconfig", "em0", "inet", "192.168.10.200", "-alias"]
        );
    }

    fn vip6(address: &str, prefix_len: u8) -> VirtualIp6 {
        VirtualIp6 {
            address: address.parse().expect("IPv6"),
            prefix_len,
        }
    }

    #[test]
    fn linux_adds_ipv6_without_dad_and_removes_it() {
        let v = vip6("2001:db8::100", 64);
        assert_eq!(
            linux().add_argv("eth0", &v),
            [
                "ip",
                "-6",
                "addr",
                "add",
                "2001:db8::100/64",
                "dev",
                "eth0",
                "nodad"
            ]
        );
        assert_eq!(
            linux().remove_argv("eth0", &v),
            ["ip", "-6", "addr", "del", "2001:db8::100/64", "dev", "eth0"]
        );
    }

    #[test]
    fn freebsd_adds_an_ipv6_alias_with_its_prefix_and_no_dad() {
        let v = vip6("2001:db8::100", 64);
        assert_eq!(
            freebsd().add_argv("em0", &v),
            [
                "ifconfig",
                "em0",
                "inet6",
                "2001:db8::100",
                "prefixlen",
                "64",
                "alias",
                "no_dad"
            ]
        );
        assert_eq!(
            freebsd().remove_argv("em0", &v),
            ["ifconfig", "em0", "inet6", "2001:db8::100", "-alias"]
        );
    }

    #[test]
    fn the_tool_path_is_the_first_argument() {
        let backend = FreeBsdIfconfig {
            ifconfig_path: PathBuf::from("/sbin/ifconfig"),
        };
        let argv = backend.add_argv("em0", &vip(198, 18, 0, 9, 32));
        assert_eq!(argv.first().map(String::as_str), Some("/sbin/ifconfig"));
    }

    #[test]
    fn each_os_names_its_own_tool() {
        let v = vip(192, 168, 10, 200, 24);
        let ifconfig = Path::new("/sbin/ifconfig");
        assert_eq!(
            Os::FreeBsd.backend(ifconfig).add_argv("em0", &v),
            [
                "/sbin/ifconfig",
                "em0",
                "inet",
                "192.168.10.200/32",
                "alias"
            ]
        );
        assert_eq!(
            Os::Linux.backend(ifconfig).add_argv("em0", &v),
            [
                "/sbin/ip",
                "-4",
                "addr",
                "add",
                "192.168.10.200/24",
                "dev",
                "em0"
            ]
        );
        assert_eq!((Os::FreeBsd.name(), Os::Linux.name()), ("FreeBSD", "Linux"));
    }

    #[test]
    fn platform_backend_uses_the_platform_tool() {
        let argv =
            platform_backend(Path::new("/sbin/ifconfig")).add_argv("x0", &vip(198, 18, 0, 9, 24));
        let expected = if cfg!(target_os = "linux") {
            "/sbin/ip"
        } else {
            "/sbin/ifconfig"
        };
        assert_eq!(argv.first().map(String::as_str), Some(expected));
    }

    #[tokio::test]
    async fn a_failing_tool_reports_argv_status_and_stderr() {
        // `ls` of a missing path: a real command failing with stderr text.
        let argv: Vec<String> = ["ls", "/nonexistent-rcbsd-path"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let error = run(&argv, "lo", &vip(198, 18, 0, 9, 32)).await.unwrap_err();
        let text = error.to_string();
        assert!(matches!(error, VipError::Failed { .. }), "{text}");
        assert!(text.contains("/nonexistent-rcbsd-path"), "{text}");
        assert!(text.contains("exit status"), "{text}");
    }

    #[tokio::test]
    async fn a_missing_tool_is_a_spawn_error() {
        let argv = vec!["/nonexistent-rcbsd-tool".to_string()];
        let error = run(&argv, "lo", &vip(198, 18, 0, 9, 32)).await.unwrap_err();
        assert!(matches!(error, VipError::Spawn { .. }), "{error}");
    }
}
