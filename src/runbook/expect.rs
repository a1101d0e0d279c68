//! What counts as success for a command: pure checks of an exit code and
//! standard output.
//!
//! The exit code alone is often not enough on FreeBSD: a plain `service X
//! start` of a disabled service prints "Cannot 'start'" and exits 0, CBSD's
//! `jstatus` exits 1 when the environment *is* registered, whether a
//! path is mounted is best read from `mount -p` (fstab(5) format), and a
//! pool property is what `zpool get -H -o value` prints.

use std::path::{Path, PathBuf};

/// The success rule of one command: which exit codes and output count as
/// "done" (or, for a probe, "already so").
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Exit status 0.
    Success,
    /// Any non-zero exit status (e.g. `service X onestatus` of a stopped
    /// service, `zpool list POOL` of a pool not imported).
    Failure,
    /// CBSD `jstatus jname=J`: its exit code is inverted, 1 with a jid
    /// printed means "J is registered on this node", 0 with nothing
    /// printed "unknown here" (jailctl/jstatus). Anything else is CBSD's
    /// `err`: its message on standard output and exit 1 (subr/nc.subr),
    /// e.g. "Unable to fetch vm data" for a VM whose jails-system/ is not
    /// mounted; it is an error, never read as "registered".
    Registered,
    /// CBSD `jstatus jname=J`: exit 0 with nothing printed, J is not
    /// registered here.
    NotRegistered,
    /// CBSD `jstatus jname=J` prints the jid: non-zero means running.
    Running,
    /// The jid printed is 0, or J is not registered (exit 0, nothing
    /// printed).
    NotRunning,
    /// `mount -p` lists `mountpoint` (mounted from `source` when given).
    Mounted {
        /// The directory that must be a mount point, e.g. `/usr/jails/jails-data`.
        mountpoint: PathBuf,
        /// The `mount -p` source it must be mounted from (e.g.
        /// `192.168.10.200:/store/jails-data`); `None`: any source.
        source: Option<String>,
    },
    /// `mount -p` does not list `mountpoint`.
    NotMounted {
        /// The directory that must not be a mount point.
        mountpoint: PathBuf,
    },
    /// `sockstat -l` shows a listener on `port`.
    Listening {
        /// The TCP port, e.g. 2049 for nfsd.
        port: u16,
    },
    /// Exit status 0 and standard output is exactly `value` (one line,
    /// e.g. `on` from `zpool get -H -o value multihost POOL`). `otherwise`
    /// ends the error when something else was printed: what is wrong and
    /// how to fix it.
    Prints {
        /// The exact (trimmed) output wanted.
        value: String,
        /// The end of the error when something else is printed.
        otherwise: String,
    },
    /// `hastctl status RES`: the resource is primary and its status is
    /// `complete` (the secondary in sync). Both output formats are read:
    /// a table (`Name Status Role Components`, FreeBSD 13 and later) and
    /// a block per resource (`RES:`, `  role: primary`, `  status:
    /// complete`, earlier; sbin/hastctl/hastctl.c `control_status`).
    HastHealthy {
        /// The HAST resource (`storage.resource`).
        resource: String,
    },
    /// `fsck -p` (preen): exit 0. Exit 8 is fsck_ffs's `EEXIT`: preening
    /// met an inconsistency it may not repair on its own ("UNEXPECTED
    /// INCONSISTENCY; RUN fsck MANUALLY.", sbin/fsck_ffs/fsutil.c
    /// `pfatal`, printed on standard output): the error says so and what
    /// to do, since the agent must not run the full, interactive check.
    Preened,
    /// `showmount -E`: exit 0 and every directory of `dirs` among the
    /// lines: mountd has loaded an export of each (usr.bin/showmount/
    /// showmount.c prints one exported directory per line, encoded with
    /// strsnvis(3) `VIS_GLOB | VIS_NL` and `"'$`; see [`vis_exported`]).
    ListsExports {
        /// The directories mountd must export.
        dirs: Vec<String>,
    },
    /// Anything but `value` printed with exit status 0, a failure included
    /// (e.g. `zpool get -H -o value readonly POOL`: not `on` once the pool
    /// is exported).
    DoesNotPrint {
        /// The (trimmed) output that counts as a failure.
        value: String,
    },
}

/// How a process ended, as the messages say it: `status N` or `a signal`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ended(pub Option<i32>);

impl std::fmt::Display for Ended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(code) => write!(f, "status {code}"),
            None => f.write_str("a signal"),
        }
    }
}

/// Why an outcome is not what an [`Expect`] rule expects.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Mismatch {
    /// Success was expected (or a value to be printed): it exited otherwise.
    #[error("exited with {0}")]
    Exited(Ended),
    /// A failure was expected: it exited 0.
    #[error("exited with status 0")]
    Succeeded,
    /// The HAST resource is not primary and complete.
    #[error("HAST resource {resource} is {role} and {status}, not primary and complete (see hastctl status)")]
    HastUnhealthy {
        /// The resource.
        resource: String,
        /// Its role as printed (`unknown` when not found).
        role: String,
        /// Its status as printed (`complete`, `degraded`; `unknown`).
        status: String,
    },
    /// `jstatus` gave no answer this rule can read.
    #[error(transparent)]
    Jstatus(#[from] JstatusError),
    /// [`Expect::Registered`]: `jstatus` exited 0 with nothing printed.
    #[error("not registered on this node (jstatus exit 0)")]
    NotRegistered,
    /// [`Expect::NotRegistered`]: `jstatus` printed a jid.
    #[error("still registered on this node")]
    StillRegistered,
    /// [`Expect::Running`]: registered, but `jstatus` printed jid 0.
    #[error("not running (jid 0)")]
    NotRunning,
    /// [`Expect::Running`]: `jstatus` says it is not registered at all.
    #[error("not registered on this node")]
    NotRegisteredToRun,
    /// [`Expect::NotRunning`]: `jstatus` printed a jid above 0.
    #[error("still running (jid {jid})")]
    StillRunning {
        /// The jail id it runs as.
        jid: u64,
    },
    /// [`Expect::Mounted`]: mounted, but from another source.
    #[error("{} is mounted from {found}, not {wanted}", mountpoint.display())]
    MountedFrom {
        /// The mount point.
        mountpoint: PathBuf,
        /// The source `mount -p` lists for it.
        found: String,
        /// The source the rule asks for.
        wanted: String,
    },
    /// [`Expect::Mounted`]: `mount -p` does not list the mount point.
    #[error("{} is not mounted", mountpoint.display())]
    NotMounted {
        /// The mount point.
        mountpoint: PathBuf,
    },
    /// [`Expect::NotMounted`]: `mount -p` still lists the mount point.
    #[error("{} is still mounted (from {found})", mountpoint.display())]
    StillMounted {
        /// The mount point.
        mountpoint: PathBuf,
        /// The source `mount -p` lists for it.
        found: String,
    },
    /// [`Expect::Listening`]: no listener on the port in `sockstat` output.
    #[error("nothing listens on port {port}")]
    NotListening {
        /// The TCP port looked for.
        port: u16,
    },
    /// [`Expect::Prints`]: exit 0, but other output.
    #[error("printed {printed:?}, not {value:?}: {otherwise}")]
    PrintedOther {
        /// What was printed (trimmed).
        printed: String,
        /// What the rule wants printed.
        value: String,
        /// What is wrong and how to fix it (from the rule).
        otherwise: String,
    },
    /// [`Expect::ListsExports`]: mountd does not export these.
    #[error("mountd does not export {}: see syslog for the lines it refused (exports(5)), or reload it (service mountd onereload)", missing.join(", "))]
    NotExported {
        /// The directories missing from `showmount -E`.
        missing: Vec<String>,
    },
    /// [`Expect::DoesNotPrint`]: exit 0 and it printed exactly that value.
    #[error("printed {value:?}")]
    Printed {
        /// The value it printed.
        value: String,
    },
    /// `fsck -p` exit 8; `last` is its last line.
    #[error(
        "exited with status 8: preening found damage it may not repair ({last:?}); \
         the file system needs a full fsck by hand before any node serves it \
         (rcbsd-failover(8), CAVEATS)"
    )]
    NeedsManualFsck {
        /// fsck's last non-empty line of output.
        last: String,
    },
}

/// A `jstatus` answer that is neither a jid nor "not registered".
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JstatusError {
    /// Exit 1 with nothing printed.
    #[error("jstatus exited with status 1 and printed no jid")]
    NoJid,
    /// Exit 1 and something else than a jid: CBSD's `err` message.
    #[error("jstatus failed: {said}")]
    Failed {
        /// The first line it printed.
        said: String,
    },
    /// An exit status other than 1 with something printed (0 must come
    /// with nothing printed).
    #[error("jstatus exited with status {code}: {said}")]
    ExitedSaying {
        /// Its exit status.
        code: i32,
        /// The first line it printed.
        said: String,
    },
    /// An exit status other than 0 and 1, with nothing printed.
    #[error("jstatus exited with status {code}")]
    Exited {
        /// Its exit status.
        code: i32,
    },
    /// A signal ended it (e.g. killed at its timeout).
    #[error("jstatus was killed by a signal")]
    Killed,
}

impl Expect {
    /// `Ok` when the outcome is what this rule expects; otherwise why not.
    /// `exit` is `None` when the process was killed by a signal.
    pub fn check(&self, exit: Option<i32>, stdout: &str) -> Result<(), Mismatch> {
        match self {
            Expect::Success => match exit {
                Some(0) => Ok(()),
                _ => Err(Mismatch::Exited(Ended(exit))),
            },
            Expect::Failure => match exit {
                Some(0) => Err(Mismatch::Succeeded),
                _ => Ok(()),
            },
            Expect::Registered => match jstatus(exit, stdout)? {
                Jstatus::Jid(_) => Ok(()),
                Jstatus::NotRegistered => Err(Mismatch::NotRegistered),
            },
            Expect::NotRegistered => match jstatus(exit, stdout)? {
                Jstatus::NotRegistered => Ok(()),
                Jstatus::Jid(_) => Err(Mismatch::StillRegistered),
            },
            Expect::Running => match jstatus(exit, stdout)? {
                Jstatus::Jid(j) if j > 0 => Ok(()),
                Jstatus::Jid(_) => Err(Mismatch::NotRunning),
                Jstatus::NotRegistered => Err(Mismatch::NotRegisteredToRun),
            },
            Expect::NotRunning => match jstatus(exit, stdout)? {
                Jstatus::Jid(j) if j > 0 => Err(Mismatch::StillRunning { jid: j }),
                _ => Ok(()),
            },
            Expect::Mounted { mountpoint, source } => match mounted_from(stdout, mountpoint) {
                Some(found) => match source {
                    Some(wanted) if *wanted != found => Err(Mismatch::MountedFrom {
                        mountpoint: mountpoint.clone(),
                        found,
                        wanted: wanted.clone(),
                    }),
                    _ => Ok(()),
                },
                None => Err(Mismatch::NotMounted {
                    mountpoint: mountpoint.clone(),
                }),
            },
            Expect::NotMounted { mountpoint } => match mounted_from(stdout, mountpoint) {
                Some(found) => Err(Mismatch::StillMounted {
                    mountpoint: mountpoint.clone(),
                    found,
                }),
                None => Ok(()),
            },
            Expect::Listening { port } => {
                if listens_on(stdout, *port) {
                    Ok(())
                } else {
                    Err(Mismatch::NotListening { port: *port })
                }
            }
            Expect::Prints { value, otherwise } => match exit {
                Some(0) if stdout.trim() == value => Ok(()),
                Some(0) => Err(Mismatch::PrintedOther {
                    printed: stdout.trim().to_owned(),
                    value: value.clone(),
                    otherwise: otherwise.clone(),
                }),
                _ => Err(Mismatch::Exited(Ended(exit))),
            },
            Expect::ListsExports { dirs } => match exit {
                Some(0) => {
                    let listed: Vec<&str> = stdout.lines().map(str::trim_end).collect();
                    let missing: Vec<String> = dirs
                        .iter()
                        .filter(|dir| !listed.contains(&vis_exported(dir).as_str()))
                        .cloned()
                        .collect();
                    if missing.is_empty() {
                        Ok(())
                    } else {
                        Err(Mismatch::NotExported { missing })
                    }
                }
                _ => Err(Mismatch::Exited(Ended(exit))),
            },
            Expect::DoesNotPrint { value } => match exit {
                Some(0) if stdout.trim() == value => Err(Mismatch::Printed {
                    value: value.clone(),
                }),
                _ => Ok(()),
            },
            Expect::HastHealthy { resource } => match exit {
                Some(0) => match hast_state(stdout, resource) {
                    (Some(role), Some(status)) if role == "primary" && status == "complete" => {
                        Ok(())
                    }
                    (role, status) => Err(Mismatch::HastUnhealthy {
                        resource: resource.clone(),
                        role: role.unwrap_or_else(|| "unknown".into()),
                        status: status.unwrap_or_else(|| "unknown".into()),
                    }),
                },
                _ => Err(Mismatch::Exited(Ended(exit))),
            },
            Expect::Preened => match exit {
                Some(0) => Ok(()),
                Some(8) => Err(Mismatch::NeedsManualFsck {
                    last: last_line(stdout).to_owned(),
                }),
                _ => Err(Mismatch::Exited(Ended(exit))),
            },
        }
    }

    /// A few words for `plan`.
    pub fn describe(&self) -> String {
        match self {
            Expect::Success => "exit 0".to_owned(),
            Expect::Failure => "non-zero exit".to_owned(),
            Expect::Registered => "exit 1 = registered (jstatus is inverted)".to_owned(),
            Expect::NotRegistered => "exit 0, nothing printed = not registered".to_owned(),
            Expect::Running => "jid > 0".to_owned(),
            Expect::NotRunning => "jid 0".to_owned(),
            Expect::Mounted { mountpoint, source } => match source {
                Some(source) => format!("lists {source} on {}", mountpoint.display()),
                None => format!("lists {}", mountpoint.display()),
            },
            Expect::NotMounted { mountpoint } => format!("does not list {}", mountpoint.display()),
            Expect::Listening { port } => format!("a listener on port {port}"),
            Expect::Prints { value, .. } => format!("prints {value:?}"),
            Expect::DoesNotPrint { value } => format!("does not print {value:?} (or fails)"),
            Expect::ListsExports { dirs } => format!("lists {}", dirs.join(" ")),
            Expect::Preened => "exit 0 (8: needs a manual fsck)".to_owned(),
            Expect::HastHealthy { resource } => format!("{resource} primary and complete"),
        }
    }
}

/// A directory as `showmount -E` prints it: strsnvis(3) with `VIS_GLOB |
/// VIS_NL` and the extra characters `"'$` (usr.bin/showmount/showmount.c).
/// In lib/libc/gen/vis.c (`do_svis`, without `VIS_CSTYLE` or `VIS_OCTAL`)
/// a backslash is doubled, an extra character (`*?[#`, newline, `"'$`)
/// becomes `\ooo` in octal, any other control character `\^C` (`\^?`
/// for DEL), a byte with the high bit `\M-C` or `\M^C`; the rest, spaces
/// and tabs included, passes.
pub fn vis_exported(dir: &str) -> String {
    let mut out = String::with_capacity(dir.len());
    for &byte in dir.as_bytes() {
        let extra = matches!(
            byte,
            b'*' | b'?' | b'[' | b'#' | b'"' | b'\'' | b'$' | b'\n'
        );
        let low = byte & 0x7f;
        let control = low < 0x20 && low != b'\t' || low == 0x7f;
        let caret = |c: u8| char::from(if c == 0x7f { b'?' } else { c + b'@' });
        if byte == b'\\' {
            out.push_str("\\\\");
        } else if extra {
            out.push_str(&format!("\\{byte:03o}"));
        } else if byte & 0x80 != 0 {
            if control {
                out.push_str(&format!("\\M^{}", caret(low)));
            } else {
                out.push_str(&format!("\\M-{}", char::from(low)));
            }
        } else if control {
            out.push_str(&format!("\\^{}", caret(low)));
        } else {
            out.push(char::from(byte));
        }
    }
    out
}

/// The role and status of `resource` in `hastctl status` output (see
/// [`Expect::HastHealthy`] for the two formats).
pub(super) fn hast_state(stdout: &str, resource: &str) -> (Option<String>, Option<String>) {
    let (mut role, mut status) = (None, None);
    let mut in_block = false;
    for line in stdout.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            [name] if name.strip_suffix(':') == Some(resource) => in_block = true,
            [name] if name.ends_with(':') => in_block = false,
            ["role:", value] if in_block => role = Some((*value).to_owned()),
            ["status:", value] if in_block => status = Some((*value).to_owned()),
            [name, table_status, table_role, ..] if *name == resource => {
                status = Some((*table_status).to_owned());
                role = Some((*table_role).to_owned());
            }
            _ => {}
        }
    }
    (role, status)
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("").trim()
}

fn last_line(text: &str) -> &str {
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
}

/// What CBSD's `jstatus jname=J` answered.
enum Jstatus {
    /// Exit 1 and the jid alone on standard output (jailctl/jstatus:
    /// `echo "${myjid}"; exit ${EXIST}`): registered, running when > 0.
    Jid(u64),
    /// Exit 0 and nothing printed: J is not registered here.
    NotRegistered,
}

/// Reads a `jstatus` answer. Anything but the two shapes above is an error
/// carrying what CBSD printed: its `err` writes the message to standard
/// output and exits 1 (subr/nc.subr), which the exit code alone would
/// take for "registered".
fn jstatus(exit: Option<i32>, stdout: &str) -> Result<Jstatus, JstatusError> {
    let text = stdout.trim();
    match exit {
        Some(0) if text.is_empty() => Ok(Jstatus::NotRegistered),
        Some(1) => match text.parse() {
            Ok(jid) => Ok(Jstatus::Jid(jid)),
            Err(_) if text.is_empty() => Err(JstatusError::NoJid),
            Err(_) => Err(JstatusError::Failed {
                said: first_line(text).to_owned(),
            }),
        },
        Some(code) if !text.is_empty() => Err(JstatusError::ExitedSaying {
            code,
            said: first_line(text).to_owned(),
        }),
        Some(code) => Err(JstatusError::Exited { code }),
        None => Err(JstatusError::Killed),
    }
}

/// The source mounted on `mountpoint` according to `mount -p` output
/// (fstab(5) lines: `source mountpoint type options dump pass`; spaces in
/// paths are written `\040`). The last matching line wins: it is the top
/// of a stack of mounts.
pub fn mounted_from(mount_p: &str, mountpoint: &Path) -> Option<String> {
    let wanted = mountpoint.to_string_lossy();
    mount_p
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let source = fields.next()?;
            let target = fields.next()?.replace("\\040", " ");
            (target == wanted.trim_end_matches('/') || target == wanted)
                .then(|| source.replace("\\040", " "))
        })
        .next_back()
}

/// Whether `sockstat -l` output shows a listening socket on `port`
/// (a `LOCAL ADDRESS` column such as `*:2049` or `192.168.10.1:2049`).
fn listens_on(sockstat: &str, port: u16) -> bool {
    let suffix = format!(":{port}");
    sockstat
        .lines()
        .skip_while(|line| line.starts_with("USER"))
        .any(|line| line.split_whitespace().any(|w| w.ends_with(&suffix)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNT_P: &str = "/dev/ada0p2\t/\tufs\trw\t1\t1\n\
        192.168.10.200:/store/jails-data\t/usr/jails/jails-data\tnfs\trw,nfsv4,minorversion=1,hard\t0\t0\n\
        /store/jails-system\t/usr/jails/jails-system\tnullfs\trw\t0\t0\n";

    #[test]
    fn showmount_lists_are_read_with_their_vis_encoding() {
        let wanted = Expect::ListsExports {
            dirs: vec!["/store/jails-data".into(), "/store/jails-system".into()],
        };
        let both = "/store/jails-data\n/store/jails-system\n/other\n";
        assert_eq!(wanted.check(Some(0), both), Ok(()));
        assert_eq!(
            wanted.check(Some(0), "/store/jails-data\n"),
            Err(Mismatch::NotExported {
                missing: vec!["/store/jails-system".into()]
            })
        );
        // mountd not registered with rpcbind: showmount exits 1.
        assert_eq!(
            wanted.check(Some(1), ""),
            Err(Mismatch::Exited(Ended(Some(1))))
        );
        // A prefix is not the directory.
        let longer = "/store/jails-data2\n/store/jails-system\n";
        assert!(wanted.check(Some(0), longer).is_err());
        let error = wanted.check(Some(0), "").unwrap_err().to_string();
        assert!(
            error.contains("/store/jails-data, /store/jails-system"),
            "{error}"
        );
    }

    #[test]
    fn vis_encodes_as_showmount_minus_e_prints() {
        assert_eq!(vis_exported("/store/jails-data"), "/store/jails-data");
        assert_eq!(vis_exported("/a b\tc"), "/a b\tc");
        assert_eq!(vis_exported("/x*y?[#]"), "/x\\052y\\077\\133\\043]");
        assert_eq!(vis_exported("/q\"'$"), "/q\\042\\047\\044");
        assert_eq!(vis_exported("/n\nl"), "/n\\012l");
        assert_eq!(vis_exported("/back\\slash"), "/back\\\\slash");
        assert_eq!(vis_exported("/c\u{1}d\u{7f}"), "/c\\^Ad\\^?");
        // "é" is 0xc3 0xa9: high-bit bytes in \M- form.
        assert_eq!(vis_exported("/é"), "/\\M-C\\M-)");
    }

    #[test]
    fn hast_health_reads_both_hastctl_formats() {
        let healthy = Expect::HastHealthy {
            resource: "jails".into(),
        };
        let table =
            "Name\tStatus\t Role\t\tComponents\njails\tcomplete primary        /dev/ada1\tnode2\n";
        assert_eq!(healthy.check(Some(0), table), Ok(()));
        let degraded = table.replace("complete", "degraded");
        assert!(matches!(
            healthy.check(Some(0), &degraded),
            Err(Mismatch::HastUnhealthy { status, .. }) if status == "degraded"
        ));
        let block = "jails:\n  role: primary\n  provname: jails\n  status: complete\n";
        assert_eq!(healthy.check(Some(0), block), Ok(()));
        let secondary = "jails:\n  role: secondary\n  status: complete\n";
        assert!(healthy.check(Some(0), secondary).is_err());
        assert!(healthy.check(Some(71), "").is_err());
        assert!(healthy
            .check(Some(0), "other:\n  role: primary\n  status: complete\n")
            .is_err());
    }

    #[test]
    fn jstatus_exit_code_is_inverted() {
        assert!(Expect::Registered.check(Some(1), "0\n").is_ok());
        assert!(Expect::Registered.check(Some(1), "12\n").is_ok());
        assert!(Expect::Registered.check(Some(0), "").is_err());
        assert!(Expect::Registered.check(None, "").is_err());
        assert!(Expect::NotRegistered.check(Some(0), "").is_ok());
        assert!(Expect::NotRegistered.check(Some(1), "0\n").is_err());
    }

    #[test]
    fn running_reads_the_jid() {
        assert!(Expect::Running.check(Some(1), "12\n").is_ok());
        assert!(Expect::Running.check(Some(1), "0\n").is_err());
        assert!(Expect::Running.check(Some(0), "").is_err());
        assert!(Expect::NotRunning.check(Some(1), "0\n").is_ok());
        assert!(Expect::NotRunning.check(Some(0), "").is_ok());
        assert!(Expect::NotRunning.check(Some(1), "7").is_err());
    }

    /// CBSD's `err` prints its message on stdout and exits 1: jstatus of
    /// a VM whose jails-system/ is not mounted (subr/rcconf.subr
    /// init_bhyve_rcconf) must not read as registered, running or
    /// stopped, and the error says what CBSD said.
    #[test]
    fn a_jstatus_error_is_neither_registered_nor_stopped() {
        let err = "Unable to fetch vm data from: /usr/jails/jails-system/vm1/local.sqlite\n";
        for expect in [
            Expect::Registered,
            Expect::NotRegistered,
            Expect::Running,
            Expect::NotRunning,
        ] {
            let why = expect.check(Some(1), err).unwrap_err().to_string();
            assert!(why.contains("Unable to fetch vm data"), "{expect:?}: {why}");
        }
        // Only the jid alone is a jid; exit 0 with output is no answer.
        assert!(Expect::NotRunning.check(Some(1), "").is_err());
        assert!(Expect::NotRunning.check(Some(1), "0 extra").is_err());
        assert!(Expect::NotRunning.check(Some(0), "0\n").is_err());
        assert!(Expect::NotRunning.check(Some(2), "").is_err());
        assert!(Expect::NotRunning.check(None, "").is_err());
    }

    #[test]
    fn mount_p_is_read_as_fstab_lines() {
        let mounted = Expect::Mounted {
            mountpoint: PathBuf::from("/usr/jails/jails-data"),
            source: Some("192.168.10.200:/store/jails-data".into()),
        };
        assert!(mounted.check(Some(0), MOUNT_P).is_ok());
        let wrong_source = Expect::Mounted {
            mountpoint: PathBuf::from("/usr/jails/jails-data"),
            source: Some("192.168.10.9:/store/jails-data".into()),
        };
        assert!(wrong_source.check(Some(0), MOUNT_P).is_err());
        let absent = Expect::NotMounted {
            mountpoint: PathBuf::from("/usr/jails/jails-fstab"),
        };
        assert!(absent.check(Some(0), MOUNT_P).is_ok());
        let present = Expect::NotMounted {
            mountpoint: PathBuf::from("/usr/jails/jails-system"),
        };
        assert!(present.check(Some(0), MOUNT_P).is_err());
        // A prefix of a mounted path is not mounted.
        assert_eq!(mounted_from(MOUNT_P, Path::new("/usr/jails")), None);
    }

    #[test]
    fn a_property_must_be_printed_exactly_and_the_error_says_what_to_do() {
        let multihost_on = Expect::Prints {
            value: "on".into(),
            otherwise: "set it".into(),
        };
        assert!(multihost_on.check(Some(0), "on\n").is_ok());
        assert_eq!(
            multihost_on
                .check(Some(0), "off\n")
                .map_err(|e| e.to_string()),
            Err("printed \"off\", not \"on\": set it".to_owned())
        );
        assert!(multihost_on.check(Some(0), "online\n").is_err());
        // A failed `zpool get` says so, not that the value was wrong.
        assert_eq!(
            multihost_on.check(Some(1), "").map_err(|e| e.to_string()),
            Err("exited with status 1".to_owned())
        );
        let not_read_only = Expect::DoesNotPrint { value: "on".into() };
        assert!(not_read_only.check(Some(0), "off\n").is_ok());
        assert!(not_read_only.check(Some(1), "").is_ok(), "not imported");
        assert!(not_read_only.check(Some(0), "on\n").is_err());
    }

    #[test]
    fn fsck_preen_exit_8_says_a_manual_check_is_needed() {
        assert!(Expect::Preened.check(Some(0), "").is_ok());
        let out = "/dev/hast/cbsd: UNKNOWN FILE TYPE I=4242\n\
                   /dev/hast/cbsd: UNEXPECTED INCONSISTENCY; RUN fsck MANUALLY.\n";
        let why = Expect::Preened.check(Some(8), out).unwrap_err().to_string();
        assert!(why.contains("status 8"), "{why}");
        assert!(why.contains("RUN fsck MANUALLY"), "{why}");
        assert!(why.contains("by hand"), "{why}");
        assert_eq!(
            Expect::Preened
                .check(Some(4), "")
                .map_err(|e| e.to_string()),
            Err("exited with status 4".to_owned())
        );
    }

    #[test]
    fn sockstat_listener_on_the_port() {
        let out = "USER     COMMAND    PID   FD PROTO  LOCAL ADDRESS         FOREIGN ADDRESS\n\
                   root     nfsd       911   5  tcp4   *:2049                *:*\n";
        assert!(Expect::Listening { port: 2049 }.check(Some(0), out).is_ok());
        assert!(Expect::Listening { port: 111 }.check(Some(0), out).is_err());
        let header_only = "USER COMMAND PID FD PROTO LOCAL ADDRESS FOREIGN ADDRESS\n";
        assert!(Expect::Listening { port: 2049 }
            .check(Some(0), header_only)
            .is_err());
    }
}
