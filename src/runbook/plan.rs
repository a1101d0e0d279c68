//! `rcbsd-failover plan promote|demote|follow`: the exact commands of a
//! runbook for this node's configuration, in order, without running any.
//! Operators review it before enabling the service; `docs/runbooks.md`
//! shows it for the example configuration.

use std::fmt::Write;

use super::step::{Action, Builtin, Step};
use super::{
    demote, exports, follow, promote, resolve_environments, stable_restart, Context, Kind,
};
use crate::config::{format_duration, Config};
use crate::net::vip::{Os, VipAddress, VipBackend};

/// The plan as text, with the commands `os` runs (the VIP's: ifconfig(8)
/// on FreeBSD, ip(8) on Linux; every other command comes from `[tools]`).
/// The choice is the caller's, never the build's: an operator reviewing a
/// FreeBSD node's plan on a Linux desk sees FreeBSD's commands.
/// `available` are the environment names under `jails-system/` (for
/// globs).
pub fn render(config: &Config, kind: Kind, os: Os, available: &[String]) -> String {
    let backend = os.backend(&config.tools.ifconfig);
    let backend: &dyn VipBackend = &*backend;
    let envs = resolve_environments(&config.environments.patterns, available);
    if kind == Kind::Repair {
        return render_health(config, os, backend, &envs);
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# {} on node {} ({}), as run on {}",
        kind.as_str(),
        config.node.name,
        config.path.display(),
        os.name()
    );
    let _ = writeln!(out, "# {}", setup(config));
    // A follower-only node never wins an election (its priority is 0 to
    // the others, see Config::may_be_master): listing an add-vip it never
    // runs would mislead.
    if kind == Kind::Promote && !config.may_be_master() {
        let _ = writeln!(
            out,
            "# nothing to do: node {} is never master ([cbsd] without [storage]: a follower only), so it never runs promote; see `plan follow`",
            config.node.name
        );
        return out;
    }
    // Shown as on boot or rejoin: the plan lists every step a follow may run.
    let ctx = Context::from_config(config).with_rejoin(true);
    let mut steps = match kind {
        Kind::Promote => promote::build(config, &envs),
        Kind::Demote => demote::build(config, &envs),
        Kind::Follow => follow::build(config, &ctx, &envs),
        Kind::Place => Vec::new(),
        Kind::Quiesce => follow::quiesce(config, &envs),
        // The whole timeout: a real run has what is left of it.
        Kind::RideThrough => super::ride_through::build(config, config.follow.ride_through_timeout),
        Kind::Repair => Vec::new(),
    };
    match kind {
        Kind::Promote => steps.extend(promote::start_environments(config, &envs)),
        Kind::Follow => steps.extend(follow::start_environments(config, &envs)),
        Kind::Demote | Kind::Quiesce | Kind::RideThrough | Kind::Repair => {}
        Kind::Place => steps.extend(promote::start_environments_taking_over(
            config,
            &placed_first_here(config),
            &["<nodes not live>".to_owned()],
        )),
    }
    for pattern in &config.environments.patterns {
        if pattern.is_glob() && !envs.iter().any(|e| pattern.matches(&e.name)) {
            let _ = writeln!(
                out,
                "# environments {:?}: expanded at run time from jails-system/ (none match now)",
                pattern.pattern
            );
        }
    }
    for (index, step) in steps.iter().enumerate() {
        write_step(
            &mut out,
            config,
            backend,
            &format!("{:2}.", index + 1),
            step,
        );
    }
    if steps.is_empty() {
        let _ = writeln!(
            out,
            "# nothing to do: this configuration gives {} no step",
            kind.as_str()
        );
    }
    if kind == Kind::RideThrough && config.cbsd.is_some() {
        let timeout = format_duration(config.follow.ride_through_timeout);
        let _ = match config.follow.ride_through() {
            Some(_) => writeln!(
                out,
                "# follow.on_master_change = \"ride-through\": run once the new master serves with its stable restart records (heartbeat serving + reclaimable), nothing stopped; serving without them (state_not_moved), on any failure, or no master serving within {timeout} of the change, the full follow runs (see `plan follow`)"
            ),
            None => writeln!(
                out,
                "# follow.on_master_change = \"remount\": never run here (every master change runs the full follow, see `plan follow`); with \"ride-through\" it runs once the new master serves and is reclaimable"
            ),
        };
    }
    if kind == Kind::Demote && config.cbsd.is_some() {
        let _ = writeln!(out, "# then: follow the new master (see `plan follow`)");
    }
    out
}

/// The directories of `<workdir>/jails-system` now (empty when unreadable):
/// what globs in `[environments]` would match. Blocking; for the CLI.
pub fn available_environments(config: &Config) -> Vec<String> {
    let Some(cbsd) = &config.cbsd else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir(cbsd.workdir.join("jails-system")) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    names
}

fn setup(config: &Config) -> String {
    let Some(cbsd) = &config.cbsd else {
        return "no [cbsd]: only the virtual IP moves".to_owned();
    };
    let storage = match &config.storage {
        Some(s) => format!("storage {} under {}", s.kind.as_str(), s.root.display()),
        None => "no [storage]: follower only, never master".to_owned(),
    };
    format!(
        "workdir {}, shared dirs {}, {storage}, NFS {}",
        cbsd.workdir.display(),
        cbsd.shared_dirs.join(" "),
        if config.nfs.v4_only {
            "v4 only"
        } else {
            "v3+v4"
        }
    )
}

fn write_step(
    out: &mut String,
    config: &Config,
    backend: &dyn VipBackend,
    label: &str,
    step: &Step,
) {
    let mut rules = vec![format!("timeout {}", format_duration(step.timeout))];
    if step.retry.attempts > 1 {
        rules.push(format!(
            "{} attempts, backoff {}..{}",
            step.retry.attempts,
            format_duration(step.retry.backoff),
            format_duration(step.retry.backoff_max)
        ));
    }
    rules.push(format!("on failure: {}", step.on_failure.as_str()));
    if let Some(gate) = step.gate.describe() {
        rules.push(gate.to_owned());
    }
    let _ = writeln!(out, "{label} {}  [{}]", step.name, rules.join(", "));
    let indent = " ".repeat(label.len() + 1);
    match &step.action {
        Action::Run(checked) => {
            let _ = writeln!(
                out,
                "{indent}run    {}  => {}",
                checked.command.display(),
                checked.expect.describe()
            );
        }
        Action::Ensure(ensure) => {
            let _ = writeln!(
                out,
                "{indent}check  {}  => done if {}",
                ensure.probe.command.display(),
                ensure.probe.expect.describe()
            );
            for act in &ensure.acts {
                let _ = writeln!(out, "{indent}else   {}  (then check again)", act.display());
            }
            if let Some(extra) = &ensure.when_satisfied {
                let _ = writeln!(out, "{indent}if done {}", extra.command.display());
            }
        }
        Action::Builtin(builtin) => {
            for line in describe_builtin(config, backend, builtin) {
                let _ = writeln!(out, "{indent}{line}");
            }
        }
    }
    if let Some(undo) = &step.undo {
        let _ = writeln!(out, "{indent}undo:  {}", undo.name);
    }
}

fn describe_builtin(config: &Config, backend: &dyn VipBackend, builtin: &Builtin) -> Vec<String> {
    let interface = &config.vrrp.interface;
    let vips = &config.vrrp.virtual_ips;
    let (interface6, vips6) = config.virtual_ips6().unwrap_or((interface, &[]));
    // IPv4 first, then IPv6: the order runbook/vip.rs adds and removes them.
    let all = vips
        .iter()
        .map(|v| (interface.as_str(), v as &dyn VipAddress))
        .chain(vips6.iter().map(|v| (interface6, v as &dyn VipAddress)));
    match builtin {
        Builtin::AddVip => all
            .map(|(interface, v)| {
                format!(
                    "agent  {} (unless present)",
                    backend.add_argv(interface, v).join(" ")
                )
            })
            .collect(),
        Builtin::DropVip => all
            .map(|(interface, v)| {
                format!(
                    "agent  {} (if present)",
                    backend.remove_argv(interface, v).join(" ")
                )
            })
            .collect(),
        Builtin::NaBurst => {
            let addresses: Vec<String> = vips6.iter().map(|v| v.address.to_string()).collect();
            vec![format!(
                "agent  {} unsolicited Neighbor Advertisement(s) (Router, Override) for {} on {interface6} to ff02::1 from its link-local address, {} apart",
                config.vrrp.garp_master_repeat,
                addresses.join(" "),
                format_duration(config.vrrp.garp_interval)
            )]
        }
        Builtin::ArpBurst => {
            let addresses: Vec<String> = vips.iter().map(|v| v.address.to_string()).collect();
            vec![format!(
                "agent  {} gratuitous ARP(s) for {} on {interface}, {} apart",
                config.vrrp.garp_master_repeat,
                addresses.join(" "),
                format_duration(config.vrrp.garp_interval)
            )]
        }
        Builtin::WriteExports {
            file,
            dirs,
            clients,
        } => {
            let groups = exports::group_by_filesystem(dirs);
            let mut lines = vec![format!(
                "agent  replace the marked block of {} atomically with (dirs on one filesystem share a line; grouped at run time):",
                file.display()
            )];
            lines.push(format!("         {}", exports::BEGIN_MARKER));
            lines.extend(
                exports::render(&groups, clients)
                    .into_iter()
                    .map(|l| format!("         {l}")),
            );
            lines.push(format!("         {}", exports::END_MARKER));
            lines.push(format!(
                "         (first refused, nothing written, if another V4: line of {} names a root other than {})",
                file.display(),
                exports::V4_ROOT
            ));
            lines
        }
        Builtin::ClearExports { file } => {
            vec![format!(
                "agent  empty the marked block of {}",
                file.display()
            )]
        }
        Builtin::LinkStableRestart(links) => {
            let mut lines = vec![format!(
                "agent  unless linked already: create {} (0700) and its files (empty, 0600) when missing",
                links.dir.display()
            )];
            lines.extend(links.files.iter().map(|local| {
                format!(
                    "agent  {} -> {} (a file there is moved to {} first, never deleted)",
                    local.display(),
                    links.target(local).display(),
                    stable_restart::Links::aside(local).display()
                )
            }));
            lines
        }
        Builtin::RestoreStableRestart(links) => links
            .files
            .iter()
            .map(|local| {
                format!(
                    "agent  remove {} if it links to {}, then move {} back (none: nfsd creates it at start)",
                    local.display(),
                    links.target(local).display(),
                    stable_restart::Links::aside(local).display()
                )
            })
            .collect(),
        Builtin::WaitForPath { path } => {
            vec![format!("agent  wait until {} exists", path.display())]
        }
        Builtin::VerifyDirId { path, expected } => vec![match expected {
            Some(id) => format!("agent  {} must hold {id:?}", path.display()),
            None => format!("agent  {} must exist and not be empty", path.display()),
        }],
        Builtin::WriteProbe { path } => {
            vec![format!(
                "agent  create, fsync and remove {}",
                path.display()
            )]
        }
        Builtin::CheckLock {
            path,
            nodename_file,
            node,
            takeover,
        } => {
            let mut lines = vec![format!(
                "probe  rcbsd-failover {} lock {} {}  => its holder and age (a child under the timeout: NFS)",
                super::fs_probe::SUBCOMMAND,
                path.display(),
                nodename_file.display()
            )];
            lines.push(if takeover.is_empty() {
                format!(
                    "agent  refuse if it names a node other than this one (CBSD's nodename, first word of {}; {node} without it) and is at most 30 min old",
                    nodename_file.display()
                )
            } else {
                format!(
                    "agent  refuse if it names a node other than this one (CBSD's nodename, first word of {}; {node} without it) that is live (may take over from: {}) and is at most 30 min old",
                    nodename_file.display(),
                    takeover.join(", ")
                )
            });
            lines
        }
        Builtin::DismountDead(dead) if !dead.ask => vec![
            format!(
                "list   {}  => the shared dirs mounted now (from the VIP, which nobody holds during a promote: dead)",
                dead.listing.display()
            ),
            format!(
                "each   {}  (at once: anything else touching it would hang)",
                dead.dismount(std::path::Path::new("MOUNTPOINT")).display()
            ),
        ],
        Builtin::DismountDead(dead) => {
            let mut lines = vec![format!(
                "list   {}  => the shared dirs mounted now",
                dead.listing.display()
            )];
            lines.push(format!(
                "each   {}  at the same time; no answer within {} = the server is gone:",
                dead.statfs(std::path::Path::new("MOUNTPOINT")).display(),
                format_duration(dead.answer_within)
            ));
            lines.push(format!(
                "         {}  (at once: anything else touching it would hang)",
                dead.dismount(std::path::Path::new("MOUNTPOINT")).display()
            ));
            lines
        }
        Builtin::Verify(verify) => describe_verify(config, verify),
        Builtin::ClearStaleRegistrations(clear) => {
            let mut lines = vec![
                "agent  only on the first follow after the agent starts (boot or rejoin)"
                    .to_owned(),
            ];
            lines.extend(
                clear
                    .listings
                    .iter()
                    .map(|c| format!("list   {}  => exit 0, registered names", c.display())),
            );
            lines.push(format!(
                "each   {}  for each NAME listed that no [environments] pattern names (depends on the listings' output)",
                clear.unregister("NAME").display()
            ));
            lines
        }
    }
}

/// `plan health`: every check between transitions, what one run looks at,
/// and the steps that repair it ([`super::health`]).
fn render_health(config: &Config, os: Os, backend: &dyn VipBackend, envs: &[super::Env]) -> String {
    use super::health;
    let mut out = format!(
        "# health checks on node {} ({}), as run on {}: every {}, a check fails after {} failures in a row and is good again after {} successes\n",
        config.node.name,
        config.path.display(),
        os.name(),
        crate::config::format_duration(config.health.interval),
        config.health.fall,
        config.health.rise,
    );
    let groups = [
        ("while master", health::master_checks(config)),
        (
            "while following (mounts), and for each environment running here",
            health::follower_checks(config, true, envs),
        ),
        (
            "always ([[track]], health.track_interfaces)",
            health::tracks(config),
        ),
    ];
    if groups.iter().all(|(_, checks)| checks.is_empty()) {
        let _ = writeln!(out, "# nothing to do: this configuration has no check");
    }
    for (when, checks) in groups {
        if checks.is_empty() {
            continue;
        }
        let _ = writeln!(out, "\n## {when}");
        for check in checks {
            let _ = writeln!(
                out,
                "{}  [timeout {}, {}]",
                check.id,
                crate::config::format_duration(check.probe.timeout),
                response_text(check.judgement.response)
            );
            for line in probe_lines(config, backend, &check.probe) {
                let _ = writeln!(out, "    {line}");
            }
            for step in &check.repair {
                let _ = writeln!(out, "    repair: {}", step.name);
            }
        }
    }
    out
}

fn response_text(response: crate::health::Response) -> String {
    use crate::health::Response;
    match response {
        Response::Repair => "on failure: repair, resign past health.max_repairs".to_owned(),
        Response::Alert => "on failure: alert only".to_owned(),
        Response::Remount => "on failure: remount after health.mount_hang_limit".to_owned(),
        Response::Restart => "on failure: health.restart_policy".to_owned(),
        Response::Weight(weight) => format!("on failure: priority {weight:+}"),
        Response::Resign => "on failure: resign".to_owned(),
    }
}

/// What one run of a check looks at.
fn probe_lines(config: &Config, backend: &dyn VipBackend, step: &super::step::Step) -> Vec<String> {
    use super::step::Action;
    match &step.action {
        Action::Ensure(ensure) => vec![format!(
            "check  {}  => {}",
            ensure.probe.command.display(),
            ensure.probe.expect.describe()
        )],
        Action::Run(checked) => vec![format!(
            "check  {}  => {}",
            checked.command.display(),
            checked.expect.describe()
        )],
        Action::Builtin(builtin) => describe_builtin(config, backend, builtin),
    }
}

/// A health check's own look ([`super::step::Verify`]).
fn describe_verify(config: &Config, verify: &super::step::Verify) -> Vec<String> {
    use super::step::Verify;
    match verify {
        Verify::VipsPresent => match config.virtual_ips6() {
            Some((interface6, _)) if interface6 != config.vrrp.interface => vec![format!(
                "agent  every virtual IP is on its interface, {} or {interface6} (getifaddrs)",
                config.vrrp.interface
            )],
            _ => vec![format!(
                "agent  every virtual IP is on {} (getifaddrs)",
                config.vrrp.interface
            )],
        },
        Verify::ExportsBlock { file, .. } => vec![format!(
            "agent  the marked block of {} is what `write exports` writes",
            file.display()
        )],
        Verify::MountAnswers { dir } => vec![format!(
            "probe  rcbsd-failover fs-probe list {}  => answers within the timeout (a child: NFS)",
            dir.display()
        )],
        Verify::Carrier { interface } => vec![format!("agent  {interface} has its carrier")],
        Verify::All(checks) => checks
            .iter()
            .map(|c| format!("check  {}  => {}", c.command.display(), c.expect.describe()))
            .collect(),
    }
}

/// With `[[environment]]`: the environments this node is the first choice
/// for, which a `place` run starts when the cluster is whole.
fn placed_first_here(config: &Config) -> Vec<super::Env> {
    config
        .placement
        .iter()
        .filter(|p| p.nodes.first() == Some(&config.node.name))
        .map(|p| super::Env {
            name: p.name.clone(),
            kind: p.kind,
        })
        .collect()
}
