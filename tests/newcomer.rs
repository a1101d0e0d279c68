//! A newcomer's first hour, on a fresh copy of the repository (its
//! tracked files only, as a clone has them): the README's Quick start
//! commands exist and parse, every relative link of the README and docs/
//! resolves, every file a script or doc names as `docs/NAME.md` exists,
//! the reload list of the docs is the code's, and every example
//! configuration passes `check-config --file-only`.

// A test reports a failure by panicking: unwrap and expect are how it
// says "this must hold" (the library itself denies them).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The tracked files copied into a temporary directory: what a fresh
/// clone has, nothing built or left over.
fn fresh_copy() -> tempfile::TempDir {
    let listed = Command::new("git")
        .args(["ls-files", "-z"])
        .current_dir(repo())
        .output()
        .expect("run git ls-files");
    assert!(listed.status.success(), "git ls-files failed");
    let copy = tempfile::tempdir().unwrap();
    for name in listed.stdout.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let name = String::from_utf8_lossy(name).into_owned();
        let from = repo().join(&name);
        if !from.is_file() {
            // Deleted in the work tree but still tracked: a clone of the
            // commit would have it; this copy checks the work tree.
            continue;
        }
        let to = copy.path().join(&name);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(&from, &to).unwrap();
    }
    copy
}

fn read(root: &Path, relative: &str) -> String {
    let path = root.join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The fenced code blocks (```sh) of the README section `heading`.
fn sh_blocks(readme: &str, heading: &str) -> Vec<Vec<String>> {
    let start = readme
        .find(&format!("\n## {heading}\n"))
        .unwrap_or_else(|| panic!("README has no \"## {heading}\""));
    let section = &readme[start + 1..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |i| i + 3)];
    let mut blocks = Vec::new();
    let mut current: Option<Vec<String>> = None;
    for line in section.lines() {
        match (&mut current, line.trim()) {
            (None, "```sh") => current = Some(Vec::new()),
            (Some(_), "```") => blocks.extend(current.take()),
            (Some(block), text) => {
                // A comment after the command is the README's, not the shell's concern.
                let command = text.split(" #").next().unwrap_or("").trim();
                if !command.is_empty() && !command.starts_with('#') {
                    block.push(command.to_owned());
                }
            }
            (None, _) => {}
        }
    }
    blocks
}

/// Package names of the workspace (`[workspace] members`).
fn workspace_packages(root: &Path) -> Vec<String> {
    let workspace: toml::Table = read(root, "Cargo.toml").parse().unwrap();
    let members = workspace["workspace"]["members"].as_array().unwrap();
    members
        .iter()
        .map(|member| {
            let manifest = format!("{}/Cargo.toml", member.as_str().unwrap());
            let package: toml::Table = read(root, &manifest).parse().unwrap();
            package["package"]["name"].as_str().unwrap().to_owned()
        })
        .collect()
}

#[test]
fn the_quick_start_commands_exist_and_parse() {
    let copy = fresh_copy();
    let root = copy.path();
    let readme = read(root, "README.md");
    let blocks = sh_blocks(&readme, "Quick start");
    assert!(blocks.len() >= 2, "Quick start lost its blocks: {blocks:?}");
    let packages = workspace_packages(root);
    let mut checked = 0;
    for command in blocks.iter().flatten() {
        let words: Vec<&str> = command.split_whitespace().collect();
        match words.first().copied() {
            Some("cargo") => {
                // `cargo run [--release] -p PACKAGE`: a real package with
                // one binary to run; options cargo run takes.
                assert_eq!(words.get(1), Some(&"run"), "{command}");
                let mut rest = words[2..].iter();
                while let Some(word) = rest.next() {
                    match *word {
                        "--release" => {}
                        "-p" | "--package" => {
                            let package = rest.next().expect("-p needs a package");
                            assert!(
                                packages.iter().any(|p| p == package),
                                "{command}: no package {package} in {packages:?}"
                            );
                        }
                        other => panic!("{command}: option {other} not checked here"),
                    }
                }
            }
            Some("rcbsd-failover") => {
                // Clap checks every argument before it answers --help: an
                // unknown subcommand or option fails here with exit 2.
                let output = Command::new(env!("CARGO_BIN_EXE_rcbsd-failover"))
                    .args(&words[1..])
                    .arg("--help")
                    .output()
                    .unwrap();
                assert!(
                    output.status.success(),
                    "{command}: {}",
                    String::from_utf8_lossy(&output.stderr)
                );
            }
            other => panic!("a Quick start command this test does not know: {other:?}"),
        }
        checked += 1;
    }
    assert!(checked >= 5, "only {checked} commands checked");
    // The test command of the README is there and executable.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(root.join("tools/test"))
        .unwrap()
        .permissions()
        .mode();
    assert!(mode & 0o111 != 0, "tools/test is not executable");
    assert!(
        readme.contains("\ntools/test "),
        "README's test command moved"
    );
}

/// `[text](target)` links of a Markdown text: the targets.
fn link_targets(text: &str) -> Vec<String> {
    let mut targets = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("](") {
        rest = &rest[at + 2..];
        if let Some(end) = rest.find(')') {
            targets.push(rest[..end].to_owned());
        }
    }
    targets
}

#[test]
fn every_relative_link_of_the_readme_and_docs_resolves() {
    let copy = fresh_copy();
    let root = copy.path();
    let mut documents = vec![root.join("README.md")];
    for entry in std::fs::read_dir(root.join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            documents.push(path);
        }
    }
    let mut broken = Vec::new();
    let mut checked = 0;
    for document in &documents {
        let text = std::fs::read_to_string(document).unwrap();
        for target in link_targets(&text) {
            let target = target.split('#').next().unwrap_or("");
            if target.is_empty() || target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            checked += 1;
            if !document.parent().unwrap().join(target).exists() {
                broken.push(format!(
                    "{}: {target}",
                    document.strip_prefix(root).unwrap().display()
                ));
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
    assert!(checked > 30, "only {checked} links found");
}

/// `docs/NAME.md` named in scripts, man pages, the README, the docs and
/// the sources (comments, help texts): each must exist.
#[test]
fn every_docs_file_named_anywhere_exists() {
    let copy = fresh_copy();
    let root = copy.path();
    let listed = Command::new("git")
        .args(["ls-files"])
        .current_dir(repo())
        .output()
        .unwrap();
    let mut missing = Vec::new();
    for name in String::from_utf8_lossy(&listed.stdout).lines() {
        let Ok(text) = std::fs::read_to_string(root.join(name)) else {
            continue;
        };
        let mut rest = text.as_str();
        while let Some(at) = rest.find("docs/") {
            let tail = &rest[at + 5..];
            let len = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'))
                .unwrap_or(tail.len());
            let file = tail[..len].trim_end_matches('.');
            // Docs are named in lower case; `docs/NAME.md` is a placeholder.
            let placeholder = file.chars().any(|c| c.is_ascii_uppercase());
            if file.ends_with(".md") && !placeholder && !root.join("docs").join(file).exists() {
                missing.push(format!("{name}: docs/{file}"));
            }
            rest = &tail[len..];
        }
    }
    missing.sort();
    missing.dedup();
    assert!(
        missing.is_empty(),
        "named but missing:\n{}",
        missing.join("\n")
    );
}

#[test]
fn the_docs_reload_table_is_the_codes() {
    let copy = fresh_copy();
    let configuration = read(copy.path(), "docs/configuration.md");
    assert!(
        configuration.contains(&rcbsd_failover::config::reload::markdown_table()),
        "docs/configuration.md does not show config::reload::RESTART_ONLY (tests/docs.rs says where)"
    );
}

#[test]
fn every_example_configuration_passes_check_config_file_only() {
    let copy = fresh_copy();
    let root = copy.path();
    let mut pending = vec![root.join("contrib")];
    let mut checked = 0;
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "toml") {
                let output = Command::new(env!("CARGO_BIN_EXE_rcbsd-failover"))
                    .args(["check-config", "--file-only", "-c"])
                    .arg(&path)
                    .output()
                    .unwrap();
                assert!(
                    output.status.success(),
                    "check-config --file-only -c {}: {}",
                    path.display(),
                    String::from_utf8_lossy(&output.stderr)
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 6, "only {checked} example configurations");
}

#[test]
fn plan_prints_what_runs_on_freebsd() {
    let copy = fresh_copy();
    let example = copy.path().join("contrib/examples/rcbsd-failover.toml");
    let output = Command::new(env!("CARGO_BIN_EXE_rcbsd-failover"))
        .args(["plan", "promote", "-c"])
        .arg(&example)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(text.contains("FreeBSD"), "the header names the OS: {text}");
    assert!(
        text.contains("ifconfig"),
        "the VIP is added with ifconfig: {text}"
    );
    assert!(!text.contains("/sbin/ip "), "no Linux command: {text}");
}
