//! How operators get the agent onto a FreeBSD host: `rcbsd-failover
//! install` (the layout from cargo alone), the port in
//! contrib/freebsd-port, and the shell completions both install. What can
//! be checked without FreeBSD is checked here: the tree `install` makes,
//! the port's pkg-plist against it, the port Makefile's variables against
//! Cargo.toml, its crate list against Cargo.lock, and its rc.d script
//! against contrib/rc.d. Building the port needs a FreeBSD host
//! (contrib/freebsd-port/README.md says what was not checked).

// A test reports a failure by panicking: unwrap and expect are how it
// says "this must hold" (the library itself denies them).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const EX_USAGE: i32 = 64;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn port() -> PathBuf {
    root().join("contrib/freebsd-port/sysutils/rcbsd-failover")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn cli(args: &[&str], destdir_env: Option<&Path>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_rcbsd-failover"));
    command.args(args).env_remove("DESTDIR");
    if let Some(dir) = destdir_env {
        command.env("DESTDIR", dir);
    }
    command.output().expect("run rcbsd-failover")
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Every file under `dir`, relative to it.
fn files_under(dir: &Path) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let relative = path.strip_prefix(dir).unwrap();
                found.insert(relative.to_string_lossy().into_owned());
            }
        }
    }
    found
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

const SUBCOMMANDS: &[&str] = &[
    "run",
    "check-config",
    "doctor",
    "status",
    "promote",
    "demote",
    "resume",
    "move",
    "env",
    "plan",
    "completions",
    "install",
];

#[test]
fn each_shell_completion_names_the_subcommands() {
    for shell in ["bash", "zsh", "fish"] {
        let script = stdout(&cli(&["completions", shell], None));
        assert!(!script.trim().is_empty(), "{shell}: empty");
        assert!(script.contains("rcbsd-failover"), "{shell}:\n{script}");
        for subcommand in SUBCOMMANDS {
            assert!(script.contains(subcommand), "{shell}: {subcommand} missing");
        }
        // The internal probe stays hidden.
        assert!(!script.contains("fs-probe"), "{shell}: fs-probe listed");
    }
    let refused = cli(&["completions", "csh"], None);
    assert_eq!(refused.status.code(), Some(2));
}

/// The port's files, as `install` names them under the prefix: pkg-plist
/// (keywords dropped, man pages without the .gz the port adds) plus the
/// rc.d script USE_RC_SUBR adds to the plist itself.
fn port_files() -> BTreeSet<String> {
    let mut files: BTreeSet<String> = read(&port().join("pkg-plist"))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let path = match line.strip_prefix("@sample ") {
                Some(sample) => sample.split_whitespace().next().unwrap(),
                None => {
                    assert!(!line.starts_with('@'), "unexpected keyword: {line}");
                    line
                }
            };
            if path.starts_with("share/man/") {
                path.strip_suffix(".gz")
                    .unwrap_or_else(|| panic!("{path}: ports list man pages gzipped"))
            } else {
                path
            }
            .to_owned()
        })
        .collect();
    for rc in makefile_var("USE_RC_SUBR").split_whitespace() {
        files.insert(format!("etc/rc.d/{rc}"));
    }
    files
}

#[test]
fn install_puts_the_port_layout_under_destdir_and_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let out = stdout(&cli(
        &[
            "install",
            "--destdir",
            dir.path().to_str().unwrap(),
            "--prefix",
            "/usr/local",
        ],
        None,
    ));
    let prefix = dir.path().join("usr/local");
    // Nothing outside the prefix, and exactly the port's files.
    assert_eq!(files_under(dir.path()), {
        files_under(&prefix)
            .into_iter()
            .map(|f| format!("usr/local/{f}"))
            .collect::<BTreeSet<_>>()
    });
    assert_eq!(files_under(&prefix), port_files(), "install vs pkg-plist");
    for file in files_under(&prefix) {
        assert!(
            out.contains(&prefix.join(&file).display().to_string()),
            "{file} not reported:\n{out}"
        );
    }
    // A DESTDIR is a staging area: the configuration itself is pkg's
    // @sample business at install time.
    assert!(!prefix.join("etc/rcbsd-failover.toml").exists());

    // Modes as the port's INSTALL_PROGRAM/SCRIPT/MAN/DATA give them.
    for (file, expected) in [
        ("sbin/rcbsd-failover", 0o555),
        ("etc/rc.d/rcbsd_failover", 0o555),
        ("share/man/man8/rcbsd-failover.8", 0o444),
        ("share/man/man5/rcbsd-failover.toml.5", 0o444),
        ("etc/rcbsd-failover.toml.sample", 0o644),
        ("share/zsh/site-functions/_rcbsd-failover", 0o644),
    ] {
        assert_eq!(mode(&prefix.join(file)), expected, "{file}");
    }
    // The contents are the repository's files and this program.
    assert_eq!(
        std::fs::read(prefix.join("sbin/rcbsd-failover")).unwrap(),
        std::fs::read(env!("CARGO_BIN_EXE_rcbsd-failover")).unwrap()
    );
    for (installed, source) in [
        ("etc/rc.d/rcbsd_failover", "contrib/rc.d/rcbsd_failover"),
        ("share/man/man8/rcbsd-failover.8", "man/rcbsd-failover.8"),
        (
            "share/man/man5/rcbsd-failover.toml.5",
            "man/rcbsd-failover.toml.5",
        ),
        (
            "etc/rcbsd-failover.toml.sample",
            "contrib/examples/rcbsd-failover.toml",
        ),
    ] {
        assert_eq!(
            read(&prefix.join(installed)),
            read(&root().join(source)),
            "{installed}"
        );
    }
    for (installed, shell) in [
        ("share/bash-completion/completions/rcbsd-failover", "bash"),
        ("share/zsh/site-functions/_rcbsd-failover", "zsh"),
        (
            "share/fish/vendor_completions.d/rcbsd-failover.fish",
            "fish",
        ),
    ] {
        assert_eq!(
            read(&prefix.join(installed)),
            stdout(&cli(&["completions", shell], None)),
            "{installed}"
        );
    }
    // Installed again: replaced in place, the same tree.
    stdout(&cli(
        &["install", "--destdir", dir.path().to_str().unwrap()],
        None,
    ));
    assert_eq!(files_under(&prefix), port_files());
}

#[test]
fn install_takes_destdir_from_the_environment_and_moves_the_rc_script_with_the_prefix() {
    let dir = tempfile::tempdir().unwrap();
    stdout(&cli(
        &["install", "--prefix", "/opt/rcbsd"],
        Some(dir.path()),
    ));
    let prefix = dir.path().join("opt/rcbsd");
    assert_eq!(files_under(&prefix), port_files());
    let script = read(&prefix.join("etc/rc.d/rcbsd_failover"));
    assert!(
        script.contains("rcbsd_failover_program=\"/opt/rcbsd/sbin/rcbsd-failover\""),
        "{script}"
    );
    assert!(
        script.contains(": \"${rcbsd_failover_config:=/opt/rcbsd/etc/rcbsd-failover.toml}\""),
        "{script}"
    );
    assert!(!script.contains("/usr/local/"), "{script}");
}

#[test]
fn install_without_destdir_copies_the_sample_once_as_pkg_sample_does() {
    // A prefix of our own stands for a live system.
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("local");
    let prefix_arg = prefix.to_str().unwrap();
    let out = stdout(&cli(&["install", "--prefix", prefix_arg], None));
    let config = prefix.join("etc/rcbsd-failover.toml");
    assert!(out.contains("(from the .sample: edit it)"), "{out}");
    assert_eq!(
        read(&config),
        read(&prefix.join("etc/rcbsd-failover.toml.sample"))
    );
    std::fs::write(&config, "# mine\n").unwrap();
    let again = stdout(&cli(&["install", "--prefix", prefix_arg], None));
    assert!(again.contains("kept "), "{again}");
    assert_eq!(read(&config), "# mine\n");
}

#[test]
fn install_refuses_a_relative_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let output = cli(
        &[
            "install",
            "--prefix",
            "usr/local",
            "--destdir",
            dir.path().to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(output.status.code(), Some(EX_USAGE));
    assert!(String::from_utf8_lossy(&output.stderr).contains("not an absolute path"));
    assert!(files_under(dir.path()).is_empty());
}

/// A `NAME=<tab>value` assignment of the port's Makefile, continuation
/// lines joined.
fn makefile_var(name: &str) -> String {
    let text = read(&port().join("Makefile")).replace("\\\n", " ");
    let line = text
        .lines()
        .find(|l| l.split('=').next().is_some_and(|n| n.trim() == name))
        .unwrap_or_else(|| panic!("{name} not set in the port's Makefile"));
    let value = line.split_once('=').unwrap().1;
    let value = value.split('#').next().unwrap_or_default();
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn the_port_makefile_matches_the_crate() {
    assert_eq!(makefile_var("PORTNAME"), env!("CARGO_PKG_NAME"));
    assert_eq!(makefile_var("DISTVERSION"), env!("CARGO_PKG_VERSION"));
    assert_eq!(makefile_var("CATEGORIES"), "sysutils");
    assert_eq!(makefile_var("COMMENT"), env!("CARGO_PKG_DESCRIPTION"));
    // Cargo.toml's SPDX BSD-2-Clause is the ports' BSD2CLAUSE.
    assert_eq!(env!("CARGO_PKG_LICENSE"), "BSD-2-Clause");
    assert_eq!(makefile_var("LICENSE"), "BSD2CLAUSE");
    assert_eq!(makefile_var("USES"), "cargo");
    assert_eq!(makefile_var("USE_RC_SUBR"), "rcbsd_failover");
    assert_eq!(makefile_var("CARGO_INSTALL"), "no");
    assert!(makefile_var("MAINTAINER").contains('@'));
    // COMPLETIONS: shell:path, each in pkg-plist.
    let plist = port_files();
    let completions = makefile_var("COMPLETIONS");
    let shells: Vec<&str> = completions
        .split_whitespace()
        .map(|c| {
            let (shell, path) = c.split_once(':').unwrap();
            assert!(plist.contains(path), "{path} not in pkg-plist");
            shell
        })
        .collect();
    assert_eq!(shells, ["bash", "fish", "zsh"]);
    // What do-install installs by name is in pkg-plist.
    let makefile = read(&port().join("Makefile")).replace("\\\n", " ");
    for (source, target) in [
        ("/release/rcbsd-failover", "sbin/rcbsd-failover"),
        ("man/rcbsd-failover.8", "share/man/man8/rcbsd-failover.8"),
        (
            "man/rcbsd-failover.toml.5",
            "share/man/man5/rcbsd-failover.toml.5",
        ),
        (
            "contrib/examples/rcbsd-failover.toml",
            "etc/rcbsd-failover.toml.sample",
        ),
    ] {
        assert!(makefile.contains(source), "do-install lacks {source}");
        assert!(plist.contains(target), "{target} not in pkg-plist");
        if !source.starts_with('/') {
            assert!(root().join(source).exists(), "{source} missing");
        }
    }
    assert!(read(&port().join("pkg-plist")).contains("@sample etc/rcbsd-failover.toml.sample\n"));
    assert!(!read(&port().join("pkg-descr")).trim().is_empty());
    assert!(root().join("contrib/freebsd-port/README.md").exists());
}

#[test]
fn the_port_rc_script_is_the_shipped_one_with_its_prefix() {
    let port_script = read(&port().join("files/rcbsd_failover.in"));
    assert!(port_script.contains("%%PREFIX%%/sbin/rcbsd-failover"));
    assert_eq!(
        port_script.replace("%%PREFIX%%", "/usr/local"),
        read(&root().join("contrib/rc.d/rcbsd_failover")),
        "regenerate: sed 's#/usr/local/#%%PREFIX%%/#g' contrib/rc.d/rcbsd_failover > {}",
        port().join("files/rcbsd_failover.in").display()
    );
}

#[test]
fn the_port_crates_are_those_of_cargo_lock() {
    let lock = read(&root().join("Cargo.lock"));
    let mut expected = Vec::new();
    for package in lock.split("[[package]]").skip(1) {
        let field = |key: &str| {
            package
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{key} = \"")))
                .map(|v| v.trim_end_matches('"').to_owned())
        };
        if field("source").as_deref()
            == Some("registry+https://github.com/rust-lang/crates.io-index")
        {
            expected.push(format!(
                "{}-{}",
                field("name").unwrap(),
                field("version").unwrap()
            ));
        }
    }
    let listed: Vec<String> = read(&port().join("Makefile.crates"))
        .replace("\\\n", " ")
        .trim()
        .strip_prefix("CARGO_CRATES=")
        .expect("Makefile.crates sets CARGO_CRATES")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        listed, expected,
        "run: tools/port-crates > contrib/freebsd-port/sysutils/rcbsd-failover/Makefile.crates"
    );
}
