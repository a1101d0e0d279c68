//! The module map of docs/design.md, enforced: each module of src/ sits in
//! one layer and may import (`crate::...`) only modules of its own layer or
//! below, and the pure core never touches tokio, the clock, files,
//! processes or sockets. A new module must be given a layer here (and a
//! line in the map) before it compiles into a passing suite.
//!
//! Layers, bottom up:
//!
//! 0. foundation: `exit`, `auth` (keys from their files, HMAC, replay
//!    guard);
//! 1. `wire` (codecs);
//! 2. core: `election`, `quorum`, `admit`, `node`, `health`, `config` (pure; config
//!    only reads its one file);
//! 3. edges: `net`, `control`, `runbook`, `fence`, `store`, `events`,
//!    `doctor` (sockets, commands, devices, files, logs);
//! 4. `agent` (the tokio loop);
//! 5. `cli` and the binary (`main.rs`).

// A test reports a failure by panicking: unwrap and expect are how it
// says "this must hold" (the library itself denies them).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

/// Every top-level module of the library and its layer.
const LAYERS: &[(&str, u8)] = &[
    ("exit", 0),
    ("auth", 0),
    ("wire", 1),
    ("election", 2),
    ("quorum", 2),
    ("admit", 2),
    ("node", 2),
    ("health", 2),
    ("config", 2),
    ("net", 3),
    ("control", 3),
    ("runbook", 3),
    ("fence", 3),
    ("store", 3),
    ("events", 3),
    ("doctor", 3),
    ("agent", 4),
    ("cli", 5),
    ("main", 5),
];

const LAYER_NAMES: &[&str] = &["foundation", "wire", "core", "edges", "agent", "cli"];

/// The pure modules: decisions and codecs, driven the same way by the
/// agent and the simulation, so no I/O and no clock of their own. (`auth`
/// is below them but reads key files and the incarnation file.)
const PURE: &[&str] = &["wire", "election", "quorum", "admit", "node", "health"];

/// What a pure module may not name outside its tests.
const IMPURE: &[&str] = &[
    "tokio::",
    "Instant::now()",
    "SystemTime::now()",
    "std::fs",
    "std::process",
    "std::net::UdpSocket",
    "std::net::TcpStream",
    "std::os::unix::net",
    "std::thread::sleep",
];

fn layer_of(module: &str) -> Option<u8> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|(_, l)| *l)
}

/// The top-level module a file of src/ belongs to: `src/wire/vrrp.rs` ->
/// `wire`, `src/admit.rs` -> `admit`, `src/main.rs` -> `main`; None for
/// lib.rs (it only declares the modules).
fn module_of(relative: &Path) -> Option<String> {
    let mut parts = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy());
    let first = parts.next()?.into_owned();
    let name = first.strip_suffix(".rs").unwrap_or(&first).to_owned();
    (name != "lib").then_some(name)
}

/// The non-test code of a file, one (line number, line) per line, with
/// `//` comments removed: a module-level `#[cfg(test)]` ends it, and a
/// file named tests.rs has none.
fn code_lines(path: &Path, text: &str) -> Vec<(usize, String)> {
    if path.file_name().is_some_and(|n| n == "tests.rs") {
        return Vec::new();
    }
    let mut lines = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim_end() == "#[cfg(test)]" && !line.starts_with(' ') {
            break;
        }
        let code = match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        };
        if !code.trim().is_empty() {
            lines.push((index + 1, code.to_owned()));
        }
    }
    lines
}

/// The top-level modules a line names as `crate::X` (or, in main.rs,
/// `rcbsd_failover::X`), including inside `use crate::{a::..., b::...}`.
fn imported_modules(line: &str, crate_name: &str) -> Vec<String> {
    let mut found = Vec::new();
    let prefix = format!("{crate_name}::");
    let mut rest = line;
    while let Some(at) = rest.find(&prefix) {
        let after = &rest[at + prefix.len()..];
        if let Some(group) = after.strip_prefix('{') {
            // `crate::{a, b::c}`: every item directly inside the braces.
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    found.push(name);
                }
            }
        } else {
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.push(name);
            }
        }
        rest = after;
    }
    found
}

/// Every rule broken by one file's text, as messages naming file:line.
fn violations(relative: &Path, text: &str) -> Vec<String> {
    let Some(module) = module_of(relative) else {
        return Vec::new();
    };
    let Some(layer) = layer_of(&module) else {
        return vec![format!(
            "src/{}: module `{module}` has no layer: add it to LAYERS in tests/architecture.rs and to the map in docs/design.md",
            relative.display()
        )];
    };
    let crate_name = if module == "main" {
        "rcbsd_failover"
    } else {
        "crate"
    };
    let mut broken = Vec::new();
    for (number, line) in code_lines(relative, text) {
        for imported in imported_modules(&line, crate_name) {
            if imported == module {
                continue;
            }
            match layer_of(&imported) {
                Some(theirs) if theirs > layer => broken.push(format!(
                    "src/{}:{number}: `{module}` ({}) imports `{imported}` ({}), a higher layer",
                    relative.display(),
                    LAYER_NAMES[usize::from(layer)],
                    LAYER_NAMES[usize::from(theirs)],
                )),
                Some(_) => {}
                // A macro or item at the crate root (e.g. `crate::emit!`).
                None => {}
            }
        }
        if PURE.contains(&module.as_str()) {
            for impure in IMPURE {
                if line.contains(impure) {
                    broken.push(format!(
                        "src/{}:{number}: `{module}` is pure but uses `{impure}`",
                        relative.display()
                    ));
                }
            }
        }
    }
    broken
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_module_imports_a_higher_layer_and_the_core_stays_pure() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    assert!(
        files.len() > 50,
        "found only {} files under src/",
        files.len()
    );
    let mut broken = Vec::new();
    for path in &files {
        let text = std::fs::read_to_string(path).unwrap();
        let relative = path.strip_prefix(&src).unwrap();
        broken.extend(violations(relative, &text));
    }
    assert!(
        broken.is_empty(),
        "the module map (docs/design.md) is broken:\n{}",
        broken.join("\n")
    );
}

#[test]
fn every_module_declared_in_lib_rs_has_a_layer() {
    let lib =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    let declared: Vec<&str> = lib
        .lines()
        .filter_map(|l| l.strip_prefix("pub mod "))
        .map(|l| l.trim_end_matches(';'))
        .collect();
    assert!(declared.len() >= 15, "{declared:?}");
    for module in declared {
        assert!(
            layer_of(module).is_some(),
            "src/lib.rs declares `{module}`, which has no layer"
        );
    }
}

#[test]
fn the_design_map_names_every_layer_and_module() {
    let design =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/design.md"))
            .unwrap();
    for (module, _) in LAYERS.iter().filter(|(m, _)| *m != "main") {
        assert!(
            design.contains(&format!("`{module}`")),
            "docs/design.md's module map does not name `{module}`"
        );
    }
}

/// The checker itself: an upward import, a clock in the core and a module
/// without a layer are each caught, and test code is not read.
#[test]
fn the_checker_catches_what_it_should() {
    let upward = "use crate::agent::Agent;\n";
    let found = violations(Path::new("wire/vrrp.rs"), upward);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("src/wire/vrrp.rs:1: `wire` (wire) imports `agent` (agent)"));

    let grouped = "use crate::{config::Config, runbook::plan};\n";
    let found = violations(Path::new("node/mod.rs"), grouped);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("imports `runbook`"), "{found:?}");

    let clock = "fn f() { let _ = std::time::Instant::now(); }\n";
    assert_eq!(violations(Path::new("election/router.rs"), clock).len(), 1);
    assert!(violations(Path::new("agent/cluster.rs"), clock).is_empty());

    let in_tests = "fn f() {}\n#[cfg(test)]\nmod tests {\n    use crate::agent::Agent;\n}\n";
    assert!(violations(Path::new("wire/vrrp.rs"), in_tests).is_empty());
    let in_comment = "// see crate::agent::Agent\n/// [`crate::agent`]\n";
    assert!(violations(Path::new("wire/vrrp.rs"), in_comment).is_empty());

    let unknown = violations(Path::new("gossip.rs"), "fn f() {}\n");
    assert!(unknown[0].contains("has no layer"), "{unknown:?}");

    let binary = "fn main() { rcbsd_failover::cli::main(std::env::args_os()); }\n";
    assert!(violations(Path::new("main.rs"), binary).is_empty());
}
