//! The edge of `doctor`: runs what [`super::checks::build`] asks for and
//! hands the answers to the checks' rules. Every distinct command and file
//! is asked once, all at the same time, each bounded by
//! [`super::TIMEOUT`]: commands through the runbooks' runner (argv, own
//! process group, killed at the timeout), file reads and the local
//! examinations on blocking threads that are abandoned, not awaited, when
//! they outlive it (a read under a dead NFS mount never returns).

use std::io::Read;
use std::path::{Path, PathBuf};

use tokio::task::JoinSet;

use super::checks::{self, Answer, Local, PathState, Source, StableRestartSeen, Subject};
use super::{Finding, Outcome, TIMEOUT};
use crate::config::{format_duration, Config};
use crate::runbook::command;
use crate::runbook::stable_restart::{self, Links};

/// The most of a file that is read: CBSD's nc.inventory is a few KiB.
const FILE_LIMIT: u64 = 256 * 1024;

/// Runs every check of this node's configuration; one outcome per check,
/// in the order of [`checks::build`].
pub async fn examine(config: &Config) -> Vec<Outcome> {
    let checks = checks::build(config);
    let mut sources: Vec<Source> = Vec::new();
    for check in &checks {
        if let Subject::Read {
            sources: wanted, ..
        } = &check.subject
        {
            for source in wanted {
                if !sources.contains(source) {
                    sources.push(source.clone());
                }
            }
        }
    }
    let mut asked = JoinSet::new();
    for (i, source) in sources.iter().cloned().enumerate() {
        asked.spawn(async move { (i, answer(&source).await) });
    }
    let mut examined = JoinSet::new();
    for (i, check) in checks.iter().enumerate() {
        if let Subject::Local(local) = &check.subject {
            let local = local.clone();
            examined.spawn(async move { (i, examine_local(local).await) });
        }
    }
    let mut answers: Vec<Option<Answer>> = sources.iter().map(|_| None).collect();
    while let Some(joined) = asked.join_next().await {
        if let Ok((i, answer)) = joined {
            if let Some(slot) = answers.get_mut(i) {
                *slot = Some(answer);
            }
        }
    }
    let mut locals: Vec<Option<Finding>> = checks.iter().map(|_| None).collect();
    while let Some(joined) = examined.join_next().await {
        if let Ok((i, finding)) = joined {
            if let Some(slot) = locals.get_mut(i) {
                *slot = Some(finding);
            }
        }
    }
    let lost = Answer::Failed("internal error: the question was lost".to_owned());
    checks
        .iter()
        .zip(locals)
        .map(|(check, local)| {
            let finding = match &check.subject {
                Subject::Read {
                    sources: wanted,
                    rule,
                } => {
                    let given: Vec<&Answer> = wanted
                        .iter()
                        .map(|source| {
                            sources
                                .iter()
                                .position(|s| s == source)
                                .and_then(|i| answers.get(i))
                                .and_then(Option::as_ref)
                                .unwrap_or(&lost)
                        })
                        .collect();
                    rule.read(wanted, &given)
                }
                Subject::Local(_) => local.unwrap_or_else(|| {
                    Finding::warn(
                        "internal error: the examination was lost",
                        "report this as a bug",
                    )
                }),
                Subject::Known(finding) => finding.clone(),
            };
            Outcome {
                name: check.name,
                finding,
            }
        })
        .collect()
}

/// Only the checks the agent examines itself ([`Local`]: the interface,
/// the control socket's directory, the key files, the watchdog), one
/// after the other: what `run` refuses to start without, and what
/// `check-config` examines on the machine it runs on. No command is run.
pub async fn examine_local_only(config: &Config) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    for check in checks::build(config) {
        if let Subject::Local(local) = check.subject {
            outcomes.push(Outcome {
                name: check.name,
                finding: examine_local(local).await,
            });
        }
    }
    outcomes
}

async fn answer(source: &Source) -> Answer {
    match source {
        Source::Command(argv) => match command::run(argv, TIMEOUT, None).await {
            Ok(ran) => Answer::Ran {
                exit: ran.exit,
                stdout: ran.stdout,
                stderr: ran.stderr,
            },
            Err(why) => Answer::Failed(why.to_string()),
        },
        Source::File(path) => {
            let file = path.clone();
            match bounded(move || read_file(&file)).await {
                Some(answer) => answer,
                None => Answer::Failed(format!(
                    "reading {} took more than {}",
                    path.display(),
                    format_duration(TIMEOUT)
                )),
            }
        }
    }
}

fn read_file(path: &Path) -> Answer {
    let read = || -> std::io::Result<String> {
        let mut bytes = Vec::new();
        std::fs::File::open(path)?
            .take(FILE_LIMIT)
            .read_to_end(&mut bytes)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    };
    match read() {
        Ok(text) => Answer::Text(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Answer::Missing,
        Err(e) => Answer::Failed(format!("cannot read {}: {e}", path.display())),
    }
}

async fn examine_local(local: Local) -> Finding {
    let what = match &local {
        Local::Watchdog { device, .. } => device.display().to_string(),
        Local::KeyFiles { key_file, .. } => key_file.display().to_string(),
        Local::Interface(name) => name.clone(),
        Local::Ipv6 { interface, .. } => interface.clone(),
        Local::SocketDirectory { socket } => socket.display().to_string(),
        Local::StableRestart { links, .. } => links.dir.display().to_string(),
    };
    // The one examination that runs a command: asked first, bounded.
    let ipv6_disabled = match &local {
        Local::Ipv6 {
            interface,
            ifconfig,
            ..
        } => ipv6_disabled(interface, ifconfig).await,
        _ => None,
    };
    let examined = bounded(move || match local {
        Local::Watchdog { device, timeout } => {
            checks::watchdog_finding(&device, crate::fence::Watchdog::examine(&device, timeout))
        }
        Local::KeyFiles {
            key_file,
            accept_key_file,
        } => checks::key_files_finding(
            crate::auth::Keyring::load(&key_file, accept_key_file.as_deref()).map(|_| ()),
        ),
        Local::Interface(name) => {
            checks::interface_finding(&name, crate::net::iface::interface_index(&name))
        }
        Local::Ipv6 {
            interface,
            virtual_ips,
            source,
            ..
        } => checks::ipv6_finding(
            &interface,
            ipv6_disabled,
            crate::net::iface::ipv6_addresses(&interface),
            &virtual_ips,
            source,
        ),
        Local::SocketDirectory { socket } => {
            let dir = socket
                .parent()
                .map_or_else(|| PathBuf::from("/"), Path::to_path_buf);
            checks::socket_directory_finding(&socket, path_state(&dir))
        }
        Local::StableRestart {
            links,
            mounted_root,
        } => stable_restart(&links, mounted_root.as_deref()),
    })
    .await;
    examined.unwrap_or_else(|| {
        Finding::warn(
            format!(
                "could not be checked: examining {what} took more than {}",
                format_duration(TIMEOUT)
            ),
            format!("look at {what} by hand (ls -l)"),
        )
    })
}

/// Looks at nfsd's stable restart paths (local files, /var/db) and
/// whether `storage.root` is a mount: another device than its parent's.
fn stable_restart(links: &Links, mounted_root: Option<&Path>) -> Finding {
    use std::os::unix::fs::MetadataExt;
    let mut seen = Vec::new();
    for path in &links.files {
        match stable_restart::look(path) {
            Ok(found) => seen.push(StableRestartSeen {
                path: path.clone(),
                seen: found,
                aside: std::fs::symlink_metadata(Links::aside(path)).is_ok(),
            }),
            Err(e) => {
                return Finding::warn(
                    format!("could not look at {}: {e}", path.display()),
                    format!("ls -l {}", path.display()),
                )
            }
        }
    }
    let mounted = mounted_root.map(|root| {
        let dev = |p: &Path| std::fs::metadata(p).map(|m| m.dev()).ok();
        let parent = root.parent().unwrap_or(Path::new("/"));
        matches!((dev(root), dev(parent)), (Some(a), Some(b)) if a != b)
    });
    checks::stable_restart_finding(links, &seen, mounted)
}

/// Whether IPv6 is disabled on `interface`; `None` when it cannot be told.
/// Linux: `/proc/sys/net/ipv6/conf/IF/disable_ipv6` is 1, or the kernel
/// has no IPv6 (no `/proc/sys/net/ipv6`). FreeBSD: `ifconfig IF` shows
/// `IFDISABLED` (ND6_IFF_IFDISABLED; `ifconfig IF inet6 ifdisabled`, or
/// set by the kernel after a duplicate link-local, sys/netinet6/nd6_nbr.c):
/// a command, so through the runbooks' runner (own process group, killed
/// at [`TIMEOUT`]), never waited on without a bound.
async fn ipv6_disabled(interface: &str, ifconfig: &Path) -> Option<bool> {
    if cfg!(target_os = "linux") {
        // procfs answers from the kernel's memory: no bound needed.
        if !Path::new("/proc/sys/net/ipv6").exists() {
            return Some(true);
        }
        let flag =
            std::fs::read_to_string(format!("/proc/sys/net/ipv6/conf/{interface}/disable_ipv6"))
                .ok()?;
        return Some(flag.trim() == "1");
    }
    let argv = crate::runbook::step::Command::new([
        ifconfig.to_string_lossy().into_owned(),
        interface.to_owned(),
    ]);
    let ran = command::run(&argv, TIMEOUT, None).await.ok()?;
    (ran.exit == Some(0)).then(|| checks::nd6_ifdisabled(&ran.stdout))
}

fn path_state(path: &Path) -> PathState {
    match std::fs::metadata(path) {
        Ok(metadata) if metadata.is_dir() => PathState::Directory,
        Ok(_) => PathState::NotDirectory,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => PathState::Missing,
        Err(e) => PathState::Error(e.to_string()),
    }
}

/// Runs blocking work off the runtime; `None` when it did not finish
/// within [`TIMEOUT`] (the thread is left to finish on its own).
async fn bounded<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let task = tokio::task::spawn_blocking(work);
    tokio::time::timeout(TIMEOUT, task).await.ok()?.ok()
}
