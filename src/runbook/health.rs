//! The checks between transitions and their repairs (issue 12), as steps:
//! a check is the *probe* half of a runbook step (`service nfsd onestatus`
//! of PROMOTE's `start nfsd`), and its repair is the step itself, which
//! acts only when the probe says so and verifies after. So a repair does
//! exactly what a promote would have done, and `plan` already documents
//! it. The pure [`crate::health::Monitor`] judges the results.
//!
//! | check | probe | repair |
//! |---|---|---|
//! | `service X` (rpcbind, nfsuserd, mountd, nfsd, statd, lockd) | `service X onestatus` | `start X` (`onestart`; mountd also reloads) |
//! | `exports` | the agent's block in the exports file is what it writes | `write exports`, `start mountd` (reload) |
//! | `mountd exports` (not with `nfs.v4_only`) | `showmount -E 127.0.0.1` lists every exported dir | `write exports`, `start mountd` (reload) |
//! | `storage mounts` | `mount -p` lists the storage mount and every bind | `mount /store`, `bind DIR` |
//! | `nfsd listening` | `sockstat -4l -p 2049` | `stop nfsd`, `start nfsd` |
//! | `vip` | every VIP on the interface | `add vip`, `arp burst` |
//! | `storage` | HAST primary and complete; pool ONLINE | none: alert only |
//! | `nfs mount DIR` (follower) | `fs-probe list` of the mount, in a child | the full follow (force-dismount, mount, restart) |
//! | `environment NAME` | `cbsd jstatus`/`bstatus`: running | `check lock`, `register`, `start` (per `health.restart_policy`) |
//! | `track NAME` | its `command`, exit 0 | none: its weight, or resign |
//! | `interface IF` | its carrier | none: resign |

use std::time::Duration;

use super::step::{Action, Builtin, Checked, Command, Step, Verify};
use super::{cbsd, demote, expect::Expect, promote, Env};
use crate::config::{Config, StorageKind, TrackAction};
use crate::health::{CheckId, Judgement, Response};

/// One check: how to run it, how often, how it is judged and repaired.
#[derive(Clone, Debug, PartialEq)]
pub struct HealthCheck {
    /// Which check.
    pub id: CheckId,
    /// What one run does: only its probe is run ([`super::Runner::verify`]).
    pub probe: Step,
    /// Run in order by [`super::Runner::repair`] when the monitor asks.
    pub repair: Vec<Step>,
    /// From the end of one run to the start of the next.
    pub interval: Duration,
    /// How it is judged.
    pub judgement: Judgement,
}

fn judged(config: &Config, response: Response) -> Judgement {
    Judgement {
        rise: config.health.rise,
        fall: config.health.fall,
        response,
    }
}

fn with_timeout(mut step: Step, timeout: Duration) -> Step {
    step.timeout = timeout;
    step
}

/// The master's checks: its NFS services, exports, storage and its mounts,
/// nfsd's listener and the VIPs. Empty with `health.enabled = false`; only
/// the VIP for a plain VRRP node.
pub fn master_checks(config: &Config) -> Vec<HealthCheck> {
    if !config.health.enabled {
        return Vec::new();
    }
    let timeout = config.health.timeout;
    let promote = promote::build(config, &[]);
    let named = |name: &str| promote.iter().find(|s| s.name == name).cloned();
    let check = |id, probe: Step, repair: Vec<Step>, response| HealthCheck {
        id,
        probe: with_timeout(probe, timeout),
        repair,
        interval: config.health.interval,
        judgement: judged(config, response),
    };
    let mut checks = Vec::new();
    if let (Some(cbsd_config), Some(storage)) = (&config.cbsd, &config.storage) {
        for step in &promote {
            let Some(service) = step.name.strip_prefix("start ") else {
                continue;
            };
            // The NFS services, not the storage's hastd (the storage check
            // covers it) or the environments (`start NAME` after the VIP).
            if !matches!(
                service,
                "rpcbind" | "nfsuserd" | "mountd" | "nfsd" | "statd" | "lockd"
            ) {
                continue;
            }
            checks.push(check(
                CheckId::Service(service.to_owned()),
                step.clone(),
                vec![step.clone()],
                Response::Repair,
            ));
        }
        let write = named("write exports");
        if let Some(
            write @ Step {
                action:
                    Action::Builtin(Builtin::WriteExports {
                        file,
                        dirs,
                        clients,
                    }),
                ..
            },
        ) = &write
        {
            let probe = Step::new(
                "verify exports",
                Action::Builtin(Builtin::Verify(Verify::ExportsBlock {
                    file: file.clone(),
                    dirs: dirs.clone(),
                    clients: clients.clone(),
                })),
                timeout,
            );
            let mut repair = vec![write.clone()];
            repair.extend(named("start mountd"));
            checks.push(check(
                CheckId::Exports,
                probe,
                repair.clone(),
                Response::Repair,
            ));
            // mountd's own view: the file can be right while mountd refused
            // a line of it (a V4: root or host conflict, logged to syslog)
            // or never reloaded. `showmount -E` asks it over the MOUNT
            // protocol, which needs rpcbind: with `nfs.v4_only` there is
            // neither (rc.d/mountd runs `-R`), and the file and `service
            // mountd` checks are what can be had.
            if !config.nfs.v4_only {
                let exported = Step::new(
                    "verify mountd exports",
                    Action::Run(Checked {
                        command: Command::new([
                            config.tools.showmount.to_string_lossy().into_owned(),
                            "-E".to_owned(),
                            "127.0.0.1".to_owned(),
                        ]),
                        expect: Expect::ListsExports {
                            dirs: dirs
                                .iter()
                                .map(|d| d.to_string_lossy().into_owned())
                                .collect(),
                        },
                    }),
                    timeout,
                );
                checks.push(check(
                    CheckId::MountdExports,
                    exported,
                    repair,
                    Response::Repair,
                ));
            }
        }
        let mounts: Vec<Step> = promote
            .iter()
            .filter(|s| {
                s.name == format!("mount {}", storage.root.display())
                    || cbsd_config
                        .shared_dirs
                        .iter()
                        .any(|dir| s.name == format!("bind {dir}"))
            })
            .cloned()
            .collect();
        if !mounts.is_empty() {
            let probe = Step::new(
                "verify storage mounts",
                Action::Builtin(Builtin::Verify(Verify::All(
                    mounts.iter().filter_map(probe_of).collect(),
                ))),
                timeout,
            );
            checks.push(check(
                CheckId::Mounts,
                probe,
                mounts.clone(),
                Response::Repair,
            ));
        }
        if let Some(listens) = named("verify nfsd listens") {
            let demote = demote::build(config, &[]);
            let mut repair: Vec<Step> = demote
                .into_iter()
                .filter(|s| s.name == "stop nfsd")
                .collect();
            repair.extend(named("start nfsd"));
            checks.push(check(
                CheckId::NfsdListening,
                listens,
                repair,
                Response::Repair,
            ));
        }
        if let Some(storage_probe) = storage_probe(config, &storage.kind) {
            checks.push(check(
                CheckId::Storage,
                Step::new("verify storage", Action::Run(storage_probe), timeout),
                Vec::new(),
                Response::Alert,
            ));
        }
    }
    if let Some(add) = named("add vip") {
        let probe = Step::new(
            "verify vip",
            Action::Builtin(Builtin::Verify(Verify::VipsPresent)),
            timeout,
        );
        let mut repair = vec![add];
        repair.extend(named("arp burst"));
        repair.extend(named("na burst"));
        checks.push(check(CheckId::Vip, probe, repair, Response::Repair));
    }
    checks
}

/// A promote step's probe as a check: an `Ensure`'s probe, a `Run`'s
/// command.
fn probe_of(step: &Step) -> Option<Checked> {
    match &step.action {
        Action::Ensure(ensure) => Some(ensure.probe.clone()),
        Action::Run(checked) => Some(checked.clone()),
        Action::Builtin(_) => None,
    }
}

/// HAST: `hastctl status RES` says primary and complete; ZFS: `zpool list
/// -H -o health POOL` prints ONLINE (DEGRADED still serves: alert only).
fn storage_probe(config: &Config, kind: &StorageKind) -> Option<Checked> {
    let tool = |p: &std::path::Path| p.to_string_lossy().into_owned();
    match kind {
        StorageKind::None => None,
        StorageKind::Hast { resource, .. } => Some(Checked {
            command: Command::new([
                tool(&config.tools.hastctl),
                "status".into(),
                resource.clone(),
            ]),
            expect: Expect::HastHealthy {
                resource: resource.clone(),
            },
        }),
        StorageKind::Zfs { pool } => Some(Checked {
            command: Command::new([
                tool(&config.tools.zpool),
                "list".into(),
                "-H".into(),
                "-o".into(),
                "health".into(),
                pool.clone(),
            ]),
            expect: Expect::Prints {
                value: "ONLINE".into(),
                otherwise: format!("pool {pool} is not ONLINE: see zpool status -x {pool}"),
            },
        }),
    }
}

/// A follower's checks: each NFS mount of the shared dirs (while mounted)
/// and each environment running here.
pub fn follower_checks(config: &Config, mounted: bool, running: &[Env]) -> Vec<HealthCheck> {
    let Some(cbsd_config) = &config.cbsd else {
        return Vec::new();
    };
    if !config.health.enabled {
        return Vec::new();
    }
    let timeout = config.health.timeout;
    let mut checks = Vec::new();
    if mounted {
        for dir in &cbsd_config.shared_dirs {
            checks.push(HealthCheck {
                id: CheckId::NfsMount(dir.clone()),
                probe: Step::new(
                    format!("verify nfs mount {dir}"),
                    Action::Builtin(Builtin::Verify(Verify::MountAnswers {
                        dir: cbsd_config.workdir_path(dir),
                    })),
                    timeout,
                ),
                // The worker's full follow: force-dismount, mount, restart.
                repair: Vec::new(),
                interval: config.health.interval,
                judgement: judged(config, Response::Remount),
            });
        }
    }
    checks.extend(environment_checks(config, running));
    checks
}

/// One check per environment running here (master or follower): running,
/// or restarted per `health.restart_policy`.
pub fn environment_checks(config: &Config, running: &[Env]) -> Vec<HealthCheck> {
    let Some(cbsd_config) = &config.cbsd else {
        return Vec::new();
    };
    if !config.health.enabled {
        return Vec::new();
    }
    let mut checks = Vec::new();
    for env in running {
        let start = cbsd::start(config, cbsd_config, env, &config.node.name, &[]);
        let Some(probe) = start
            .iter()
            .rev()
            .find(|s| s.name == format!("start {}", env.name))
            .cloned()
        else {
            continue;
        };
        checks.push(HealthCheck {
            id: CheckId::Environment(env.name.clone()),
            probe: with_timeout(probe, config.health.timeout),
            repair: start,
            interval: config.health.interval,
            judgement: judged(config, Response::Restart),
        });
    }
    checks
}

/// The operator's `[[track]]` checks and `health.track_interfaces`; they
/// run whatever the role.
pub fn tracks(config: &Config) -> Vec<HealthCheck> {
    let mut checks = Vec::new();
    for track in &config.health.tracks {
        let response = match track.on_fail {
            TrackAction::Weight(weight) => Response::Weight(weight),
            TrackAction::Resign => Response::Resign,
        };
        checks.push(HealthCheck {
            id: CheckId::Track(track.name.clone()),
            probe: Step::new(
                format!("track {}", track.name),
                Action::Run(Checked {
                    command: Command::new(track.command.iter().cloned()),
                    expect: Expect::Success,
                }),
                track.timeout,
            ),
            repair: Vec::new(),
            interval: track.interval,
            judgement: Judgement {
                rise: track.rise,
                fall: track.fall,
                response,
            },
        });
    }
    for interface in &config.health.track_interfaces {
        checks.push(HealthCheck {
            id: CheckId::Interface(interface.clone()),
            probe: Step::new(
                format!("carrier of {interface}"),
                Action::Builtin(Builtin::Verify(Verify::Carrier {
                    interface: interface.clone(),
                })),
                config.health.timeout,
            ),
            repair: Vec::new(),
            interval: config.health.interval,
            judgement: judged(config, Response::Resign),
        });
    }
    checks
}

#[cfg(test)]
mod tests;
