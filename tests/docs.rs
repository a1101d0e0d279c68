//! What an operator installs from `contrib/` and `man/`, and what the docs
//! promise, checked against the real thing: every example configuration
//! passes `check-config` with the built binary, the rc.d script and the
//! example scripts pass `sh -n` and shellcheck, the man pages pass
//! `mandoc -Tlint`, and the log events of `docs/events.md` and
//! `docs/alerting.md` are exactly those of the event catalog
//! (`rcbsd_failover::events::Event`), with its fields, levels and syslog
//! severities. Lint tools that are not installed are skipped with a loud
//! warning (`tools/test` installs them).

// A test reports a failure by panicking: unwrap and expect are how it
// says "this must hold" (the library itself denies them).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rcbsd_failover::events::Event;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(relative: &str) -> String {
    let path = repo().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Files under `dir` (recursively) whose name ends with `suffix`, sorted.
fn files_under(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries =
            std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                pending.push(path);
            } else if path.to_string_lossy().ends_with(suffix) {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// Runs `program args`, or returns `None` (after a loud warning) when the
/// program is not installed.
fn run_tool(program: &str, args: &[&str]) -> Option<Output> {
    match Command::new(program)
        .args(args)
        .current_dir(repo())
        .output()
    {
        Ok(output) => Some(output),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // Under tools/test a missing tool is a failure, not a skip.
            assert!(
                std::env::var_os("RCBSD_TESTS_STRICT").is_none_or(|v| v != "1"),
                "{program} is not installed and RCBSD_TESTS_STRICT=1 is set (tools/test installs it)"
            );
            eprintln!(
                "WARNING: SKIPPED: {program} is not installed; `{program} {}` was not checked \
                 (tools/test installs it)",
                args.join(" ")
            );
            None
        }
        Err(e) => panic!("cannot run {program}: {e}"),
    }
}

fn assert_success(what: &str, output: &Output) {
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

const RC_SCRIPT: &str = "contrib/rc.d/rcbsd_failover";

#[test]
fn every_example_configuration_passes_check_config() {
    let examples = files_under(&repo().join("contrib/examples"), ".toml");
    let names: Vec<String> = examples
        .iter()
        .map(|p| p.strip_prefix(repo()).unwrap_or(p).display().to_string())
        .collect();
    for node in ["node1", "node2", "node3"] {
        let expected = format!("contrib/examples/cluster/{node}.toml");
        assert!(names.contains(&expected), "{expected} missing: {names:?}");
    }
    for path in &examples {
        let output = Command::new(env!("CARGO_BIN_EXE_rcbsd-failover"))
            // The examples name the nodes' interface and key files: the
            // file is checked here, not this machine.
            .args(["check-config", "--file-only", "-c"])
            .arg(path)
            .output()
            .expect("run rcbsd-failover");
        assert_success(&format!("check-config -c {}", path.display()), &output);
    }
}

#[test]
fn the_worked_example_has_two_hast_candidates_and_a_follower_only_node() {
    for (node, address, candidate) in [
        ("node1", "192.168.10.201", true),
        ("node2", "192.168.10.202", true),
        ("node3", "192.168.10.203", false),
    ] {
        let text = read(&format!("contrib/examples/cluster/{node}.toml"));
        assert!(text.contains(&format!("name = \"{node}\"")), "{node}");
        assert!(
            text.contains(&format!("source_address = \"{address}\"")),
            "{node}"
        );
        assert!(
            text.contains("virtual_ips = [\"192.168.10.200/24\"]"),
            "{node}"
        );
        assert_eq!(
            text.contains("\n[storage]\n"),
            candidate,
            "{node}: [storage]"
        );
        if candidate {
            assert!(text.contains("kind = \"hast\""), "{node}");
        }
    }
}

#[test]
fn rc_script_parses_with_sh_n() {
    let output = Command::new("sh")
        .args(["-n", RC_SCRIPT])
        .current_dir(repo())
        .output()
        .expect("run sh");
    assert_success("sh -n", &output);
}

#[test]
fn rc_script_and_example_scripts_pass_shellcheck() {
    let mut scripts = vec![repo().join(RC_SCRIPT)];
    scripts.extend(files_under(&repo().join("contrib/examples"), ".sh"));
    assert!(scripts.len() >= 3, "{scripts:?}");
    for script in &scripts {
        let script = script.to_string_lossy();
        let Some(output) = run_tool("shellcheck", &["-s", "sh", &script]) else {
            return;
        };
        assert_success(&format!("shellcheck -s sh {script}"), &output);
    }
}

#[test]
fn man_pages_pass_mandoc_lint() {
    for page in ["man/rcbsd-failover.8", "man/rcbsd-failover.toml.5"] {
        let Some(output) = run_tool("mandoc", &["-Tlint", "-W", "warning", page]) else {
            return;
        };
        assert_success(&format!("mandoc -Tlint -W warning {page}"), &output);
    }
}

#[test]
fn rc_script_follows_the_rc_d_contract() {
    let script = read(RC_SCRIPT);
    for line in [
        "# PROVIDE: rcbsd_failover\n",
        "# REQUIRE: NETWORKING syslogd mountcritremote\n",
        "# BEFORE: cbsdd\n",
        "# KEYWORD: shutdown\n",
        ": \"${rcbsd_failover_config:=/usr/local/etc/rcbsd-failover.toml}\"\n",
        ": \"${rcbsd_failover_restart_delay:=1}\"\n",
        "command=\"/usr/sbin/daemon\"\n",
        "extra_commands=\"reload promote demote resume\"\n",
        "start_precmd=\"rcbsd_failover_check_config start\"\n",
        "status_cmd=\"rcbsd_failover_status\"\n",
        "kill -HUP \"${_agent}\"\n",
    ] {
        assert!(script.contains(line), "the rc.d script lacks {line:?}");
    }
    // daemon(8): supervisor and child pid files, restart delay, syslog.
    for flag in [
        "-f -S -T ${name} -P ${pidfile} -p ",
        "-R ${rcbsd_failover_restart_delay}",
    ] {
        assert!(script.contains(flag), "daemon(8) flags lack {flag:?}");
    }
    // Every rc.conf variable is documented in the header, as ports do.
    let header: String = script
        .lines()
        .take_while(|line| line.is_empty() || line.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    for line in script.lines().filter(|l| l.starts_with(": \"${")) {
        let variable = line
            .trim_start_matches(": \"${")
            .split(':')
            .next()
            .unwrap_or_default();
        assert!(
            header.contains(&format!("# {variable} (")),
            "{variable} is not documented in the header"
        );
    }
    assert!(header.contains("rcshutdown_timeout"));
}

/// The table rows (`| `NAME` | ... |`) of `doc` as trimmed cells, from the
/// first line starting with `from` (a heading) to the next `## ` heading.
fn table_rows(doc: &str, from: &str) -> Vec<Vec<String>> {
    doc.lines()
        .skip_while(|line| !line.starts_with(from))
        .skip(1)
        .take_while(|line| !line.starts_with("## "))
        .filter(|line| line.starts_with("| `"))
        .map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let inner = &cells[1..cells.len().saturating_sub(1)];
            inner.iter().map(|cell| (*cell).to_owned()).collect()
        })
        .collect()
}

/// The words in backquotes of `text`.
fn backquoted(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// A cell such as `INFO (WARN when it failed)`: the word before the
/// parenthesis and the first word inside it.
fn usual_and_raised(cell: &str) -> (String, Option<String>) {
    let (usual, rest) = cell.split_once('(').unwrap_or((cell, ""));
    let raised = rest.split_whitespace().next().map(str::to_owned);
    (usual.trim().to_owned(), raised)
}

/// A fields cell: the backquoted names outside parentheses (which hold
/// example values), and those of a `(+ `NAME` ...)` group, the fields only
/// some records carry.
fn documented_fields(cell: &str) -> (Vec<String>, Vec<String>) {
    let (mut fields, mut extra) = (Vec::new(), Vec::new());
    let (mut top, mut group, mut depth) = (String::new(), String::new(), 0);
    for c in cell.chars() {
        match c {
            '(' => {
                depth += 1;
                if depth == 1 {
                    group.clear();
                    continue;
                }
            }
            ')' => {
                depth -= 1;
                if depth == 0 {
                    if group.trim_start().starts_with('+') {
                        extra.extend(backquoted(&group));
                    }
                    continue;
                }
            }
            _ => {}
        }
        if depth == 0 {
            top.push(c);
        } else {
            group.push(c);
        }
    }
    fields.extend(backquoted(&top));
    (fields, extra)
}

/// Checks that the documented names are exactly the catalog's, both ways,
/// once each; returns the documented events found in the catalog.
fn same_names(doc: &str, rows: &[Vec<String>], problems: &mut Vec<String>) -> Vec<Event> {
    let mut documented = Vec::new();
    for row in rows {
        let name = row[0].trim_matches('`');
        match Event::from_name(name) {
            Some(event) if documented.contains(&event) => {
                problems.push(format!("{doc}: `{name}` has two rows"));
            }
            Some(event) => documented.push(event),
            None => problems.push(format!(
                "{doc}: `{name}` is documented but is no event of the catalog \
                 (src/events/catalog.rs)"
            )),
        }
    }
    for event in Event::ALL {
        if !documented.contains(event) {
            problems.push(format!("{doc}: event `{event}` of the catalog has no row"));
        }
    }
    documented
}

fn assert_no_problems(problems: &[String]) {
    assert!(
        problems.is_empty(),
        "the docs and the event catalog (src/events/catalog.rs) differ:\n{}",
        problems.join("\n")
    );
}

/// docs/events.md's table is the catalog: names, tracing levels and fields.
#[test]
fn events_md_documents_exactly_the_event_catalog() {
    let rows = table_rows(&read("docs/events.md"), "| event | level | fields |");
    // Guards the parser: an empty table would make the checks vacuous.
    assert!(rows.len() >= 20, "{rows:?}");
    let mut problems = Vec::new();
    same_names("docs/events.md", &rows, &mut problems);
    for row in &rows {
        let (name, level, fields) = (row[0].trim_matches('`'), &row[1], &row[2]);
        let Some(event) = Event::from_name(name) else {
            continue;
        };
        let (usual, raised) = usual_and_raised(level);
        let want = event.raised().map(|r| r.level.as_str().to_owned());
        if usual != event.level().as_str() || raised != want {
            problems.push(format!(
                "docs/events.md: `{name}` is logged at {} (raised: {want:?}), \
                 the level column says {level:?}",
                event.level()
            ));
        }
        let (fields, extra) = documented_fields(fields);
        if fields != event.fields() || extra != event.extra_fields() {
            problems.push(format!(
                "docs/events.md: `{name}` has fields {:?} (+ {:?} on raised records), \
                 the fields column says {fields:?} (+ {extra:?})",
                event.fields(),
                event.extra_fields()
            ));
        }
    }
    assert_no_problems(&problems);
}

/// docs/alerting.md's severity table is the catalog's: every event once,
/// with the syslog severity the agent logs it at.
#[test]
fn alerting_md_gives_every_event_its_catalog_severity() {
    let rows = table_rows(&read("docs/alerting.md"), "## Severities");
    assert!(rows.len() >= 20, "{rows:?}");
    let mut problems = Vec::new();
    same_names("docs/alerting.md", &rows, &mut problems);
    for row in &rows {
        let (name, column) = (row[0].trim_matches('`'), &row[1]);
        let Some(event) = Event::from_name(name) else {
            continue;
        };
        // A raised record is documented in parentheses only when its
        // severity differs (a `state_change` to fault stays a notice).
        let raised = event
            .raised()
            .map(|r| r.severity)
            .filter(|s| *s != event.severity())
            .map(|s| s.as_str().to_owned());
        if usual_and_raised(column) != (event.severity().as_str().to_owned(), raised.clone()) {
            problems.push(format!(
                "docs/alerting.md: `{name}` is logged at syslog severity {} (raised: \
                 {raised:?}), the syslog column says {column:?}",
                event.severity()
            ));
        }
    }
    assert_no_problems(&problems);
}

/// The Vector example filters on event names: each must be an event.
#[test]
fn the_vector_filter_of_alerting_md_names_real_events() {
    let alerting = read("docs/alerting.md");
    let list = alerting
        .split("includes([")
        .nth(1)
        .and_then(|rest| rest.split(']').next())
        .expect("the Vector condition in docs/alerting.md");
    let names: Vec<&str> = list
        .split(',')
        .map(|name| name.trim().trim_matches('"'))
        .collect();
    assert!(names.contains(&"runbook_failed"), "{names:?}");
    for name in names {
        assert!(
            Event::from_name(name).is_some(),
            "docs/alerting.md's Vector filter names `{name}`, which is no event"
        );
    }
}

#[test]
fn alerting_md_shows_the_shipped_prometheus_rules() {
    let rules = read("contrib/examples/prometheus-rules.yml");
    assert!(rules.contains("alert: RcbsdFailoverNoMaster"));
    assert!(
        read("docs/alerting.md").contains(&rules),
        "docs/alerting.md must include contrib/examples/prometheus-rules.yml verbatim"
    );
}

#[test]
fn syslog_example_pipes_crit_events_of_the_agent_to_a_command() {
    let conf = read("contrib/examples/syslog.conf.d/rcbsd-failover.conf");
    let rules: Vec<&str> = conf
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .collect();
    assert_eq!(rules.first(), Some(&"!rcbsd-failover,rcbsd_failover"));
    assert_eq!(rules.last(), Some(&"!*"));
    let pipe = rules
        .iter()
        .find(|l| l.starts_with("daemon.crit"))
        .expect("a daemon.crit rule");
    let action = pipe.split_whitespace().nth(1).unwrap_or_default();
    assert_eq!(action, "|exec", "{pipe}");
}

#[test]
fn readme_links_the_operator_docs() {
    let readme = read("README.md");
    for link in ["(docs/operations.md)", "(docs/alerting.md)"] {
        assert!(readme.contains(link), "README.md lacks a link {link}");
    }
}

/// The README's main command is `cargo run --release -p rcbsd-lab`: with
/// two binaries in the lab package (the lab and the stand-in client),
/// cargo needs `default-run` to know which one that is, and the workspace
/// must list the lab.
#[test]
fn the_readme_cargo_run_command_has_one_binary_to_run() {
    let readme = read("README.md");
    assert!(
        readme.contains("cargo run --release -p rcbsd-lab\n"),
        "README's main command moved"
    );
    let workspace = read("Cargo.toml");
    assert!(
        workspace.contains("members = [\".\", \"lab\"]"),
        "the workspace no longer lists the lab"
    );
    let lab = read("lab/Cargo.toml");
    let binaries = lab.matches("[[bin]]").count();
    assert!(
        binaries == 1 || lab.contains("default-run = \"rcbsd-lab\""),
        "lab/Cargo.toml has {binaries} binaries and no default-run: `cargo run -p rcbsd-lab` would fail"
    );
}

/// The text between `start` (a line beginning so) and `end` in `doc`.
fn block<'a>(doc: &'a str, name: &str, start: &str, end: &str) -> &'a str {
    let from = doc
        .find(start)
        .unwrap_or_else(|| panic!("{name}: no {start:?} marker"));
    let body = &doc[from..];
    let body = &body[body.find('\n').map_or(body.len(), |i| i + 1)..];
    let to = body
        .find(end)
        .unwrap_or_else(|| panic!("{name}: no {end:?} marker"));
    &body[..to]
}

/// One list of what a reload refuses, in the code
/// (`config::reload::RESTART_ONLY`, which the agent applies): the table
/// of docs/configuration.md is generated from it and both man pages list
/// exactly its settings, in its order.
#[test]
fn the_reload_lists_of_the_docs_are_the_codes() {
    use rcbsd_failover::config::reload::{markdown_table, RESTART_ONLY};
    let configuration = read("docs/configuration.md");
    let table = block(
        &configuration,
        "docs/configuration.md",
        "<!-- restart-only:",
        "<!-- /restart-only -->",
    );
    assert_eq!(
        table,
        markdown_table(),
        "docs/configuration.md's restart-only table differs from config::reload::markdown_table()"
    );
    let settings: Vec<&str> = RESTART_ONLY.iter().map(|r| r.setting).collect();
    for page in ["man/rcbsd-failover.8", "man/rcbsd-failover.toml.5"] {
        let text = read(page);
        let list = block(&text, page, ".\\\" restart-only:", ".\\\" /restart-only");
        let listed: Vec<&str> = list
            .lines()
            .filter_map(|line| {
                line.strip_prefix(".Va ")
                    .or_else(|| line.strip_prefix(".Ic "))
            })
            .filter_map(|rest| rest.split_whitespace().next())
            .collect();
        assert_eq!(listed, settings, "{page}'s restart-only list");
    }
}
