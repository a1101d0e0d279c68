//! The virtual IP on the interface: add and remove it with the platform's
//! own tool, idempotently.
//!
//! A backend only says *which argv* adds or removes an address; running it
//! (with a timeout), checking the interface before and after, and turning
//! failures into errors that carry argv, exit status and stderr is common
//! to both platforms and lives here. Both backends compile everywhere so
//! their argv is unit-tested on Linux; [`platform_backend`] picks one.

use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use crate::config::VirtualIp;

use super::error::NetError;
use super::iface;

/// How long `ip` / `ifconfig` may take before we give up on it. Both
/// answer in milliseconds; a hang means something is badly wrong.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// The commands that add and remove a virtual IP on one platform.
pub trait VipBackend {
    /// The command line, program first, that adds `vip` to `interface`.
    fn add_argv(&self, interface: &str, vip: &VirtualIp) -> Vec<String>;
    /// The command line, program first, that removes `vip` from `interface`.
    fn remove_argv(&self, interface: &str, vip: &VirtualIp) -> Vec<String>;
}

/// Linux iproute2: `ip -4 addr add A/P dev IF` / `ip -4 addr del A/P dev IF`.
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
    fn add_argv(&self, interface: &str, vip: &VirtualIp) -> Vec<String> {
        self.addr_argv("add", interface, vip)
    }

    fn remove_argv(&self, interface: &str, vip: &VirtualIp) -> Vec<String> {
        self.addr_argv("del", interface, vip)
    }
}

impl LinuxIp {
    fn addr_argv(&self, verb: &str, interface: &str, vip: &VirtualIp) -> Vec<String> {
        vec![
            self.ip_path.to_string_lossy().into_owned(),
            "-4".into(),
            "addr".into(),
            verb.into(),
            vip.to_string(),
            "dev".into(),
            interface.into(),
        ]
    }
}

/// FreeBSD ifconfig(8): `ifconfig IF inet A/32 alias` / `ifconfig IF inet
/// A -alias`.
///
/// Always /32, whatever prefix is configured: on FreeBSD an alias in the
/// subnet of an existing address must have an all-ones netmask (otherwise
/// `ifconfig` fails with "File exists" for the duplicate prefix route), and
/// the primary address already provides the connected route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FreeBsdIfconfig {
    /// Path of ifconfig(8) (`[tools] ifconfig`).
    pub ifconfig_path: PathBuf,
}

impl VipBackend for FreeBsdIfconfig {
    fn add_argv(&self, interface: &str, vip: &VirtualIp) -> Vec<String> {
        vec![
            self.ifconfig_path.to_string_lossy().into_owned(),
            interface.into(),
            "inet".into(),
            format!("{}/32", vip.address),
            "alias".into(),
        ]
    }

    fn remove_argv(&self, interface: &str, vip: &VirtualIp) -> Vec<String> {
        vec![
            self.ifconfig_path.to_string_lossy().into_owned(),
            interface.into(),
            "inet".into(),
            vip.address.to_string(),
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
        /// The virtual IP.
        vip: VirtualIp,
        /// Whether the command was meant to add (`true`) or remove it.
        expected_present: bool,
    },

    /// The backend returned an empty command line (a bug in the backend).
    #[error("empty command for {vip} on {interface:?}")]
    EmptyArgv {
        /// The interface.
        interface: String,
        /// The virtual IP.
        vip: VirtualIp,
    },
}

/// Makes sure `vip` is on `interface`. Returns whether anything changed
/// (`false`: it was already there, with whatever prefix).
pub async fn ensure_present(
    backend: &(dyn VipBackend + Send + Sync),
    interface: &str,
    vip: &VirtualIp,
) -> Result<bool, VipError> {
    converge(backend.add_argv(interface, vip), interface, vip, true).await
}

/// Makes sure `vip` is not on `interface`. Returns whether anything changed.
pub async fn ensure_absent(
    backend: &(dyn VipBackend + Send + Sync),
    interface: &str,
    vip: &VirtualIp,
) -> Result<bool, VipError> {
    converge(backend.remove_argv(interface, vip), interface, vip, false).await
}

/// Runs `argv` unless the interface already is as wanted, then checks it is.
async fn converge(
    argv: Vec<String>,
    interface: &str,
    vip: &VirtualIp,
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
            vip: *vip,
            expected_present: want_present,
        });
    }
    Ok(true)
}

fn is_present(interface: &str, vip: &VirtualIp) -> Result<bool, VipError> {
    let addresses = iface::ipv4_addresses(interface).map_err(|error| VipError::Query {
        interface: interface.to_owned(),
        error,
    })?;
    Ok(addresses.iter().any(|&(address, _)| address == vip.address))
}

async fn run(argv: &[String], interface: &str, vip: &VirtualIp) -> Result<(), VipError> {
    let Some((program, args)) = argv.split_first() else {
        return Err(VipError::EmptyArgv {
            interface: interface.to_owned(),
            vip: *vip,
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
