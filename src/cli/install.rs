//! `rcbsd-failover install`: the files of the FreeBSD port
//! (contrib/freebsd-port), put in their places by this program alone, for
//! sites without ports: `cargo install --path .`, then `rcbsd-failover
//! install`. The rc.d script, the man pages and the example configuration
//! are compiled in, so nothing else of the source tree is needed.
//! tests/install.rs checks the tree against the port's pkg-plist.

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use clap_complete::Shell;

/// Where ports install by default (hier(7): the local hierarchy).
pub const DEFAULT_PREFIX: &str = "/usr/local";

/// The rc.d script as shipped: it names `/usr/local/`, which another
/// prefix replaces (the port's copy says `%%PREFIX%%` there instead).
const RC_SCRIPT: &str = include_str!("../../contrib/rc.d/rcbsd_failover");
const MAN_8: &str = include_str!("../../man/rcbsd-failover.8");
const MAN_5: &str = include_str!("../../man/rcbsd-failover.toml.5");
const SAMPLE: &str = include_str!("../../contrib/examples/rcbsd-failover.toml");

/// What one installed file holds.
enum Content {
    /// This program itself.
    Binary,
    /// The rc.d script, its `/usr/local/` replaced by the prefix.
    RcScript,
    /// Text compiled in.
    Text(&'static str),
    /// clap_complete's script for a shell.
    Completion(Shell),
}

/// One file: its path under the prefix, its mode (that of the port's
/// INSTALL_PROGRAM, INSTALL_SCRIPT, INSTALL_MAN, INSTALL_DATA), what it
/// holds.
struct Item {
    path: &'static str,
    mode: u32,
    content: Content,
}

/// The port's layout (its pkg-plist, plus the rc.d script USE_RC_SUBR
/// adds); man pages uncompressed (the port gzips them, man(1) reads both).
const LAYOUT: &[Item] = &[
    Item {
        path: "sbin/rcbsd-failover",
        mode: 0o555,
        content: Content::Binary,
    },
    Item {
        path: "etc/rc.d/rcbsd_failover",
        mode: 0o555,
        content: Content::RcScript,
    },
    Item {
        path: SAMPLE_PATH,
        mode: 0o644,
        content: Content::Text(SAMPLE),
    },
    Item {
        path: "share/man/man8/rcbsd-failover.8",
        mode: 0o444,
        content: Content::Text(MAN_8),
    },
    Item {
        path: "share/man/man5/rcbsd-failover.toml.5",
        mode: 0o444,
        content: Content::Text(MAN_5),
    },
    Item {
        path: "share/bash-completion/completions/rcbsd-failover",
        mode: 0o644,
        content: Content::Completion(Shell::Bash),
    },
    Item {
        path: "share/zsh/site-functions/_rcbsd-failover",
        mode: 0o644,
        content: Content::Completion(Shell::Zsh),
    },
    Item {
        path: "share/fish/vendor_completions.d/rcbsd-failover.fish",
        mode: 0o644,
        content: Content::Completion(Shell::Fish),
    },
];

const SAMPLE_PATH: &str = "etc/rcbsd-failover.toml.sample";
const CONFIG_PATH: &str = "etc/rcbsd-failover.toml";

/// Why the layout could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// `--prefix` must be absolute: the rc.d script runs the program by it.
    #[error("--prefix {0:?} is not an absolute path")]
    RelativePrefix(PathBuf),
    /// This program's own path is unknown (it copies itself).
    #[error("cannot find this program's path to copy it: {0}")]
    OwnPath(std::io::Error),
    /// A directory or file could not be written.
    #[error("cannot write {path}: {error}")]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        error: std::io::Error,
    },
}

/// Installs the layout under `destdir` + `prefix`, printing each file.
/// Without a DESTDIR (a live install), the sample is also copied to the
/// configuration if there is none yet, as pkg's `@sample` does; a DESTDIR
/// is a staging area, where pkg does that at install time.
pub fn install(
    prefix: &Path,
    destdir: Option<&Path>,
    completion: impl Fn(Shell) -> Vec<u8>,
) -> Result<(), InstallError> {
    if !prefix.is_absolute() {
        return Err(InstallError::RelativePrefix(prefix.to_owned()));
    }
    let root = match destdir {
        // `prefix` is absolute: joining it would drop the DESTDIR.
        Some(dir) => dir.join(prefix.strip_prefix("/").unwrap_or(prefix)),
        None => prefix.to_owned(),
    };
    for item in LAYOUT {
        let target = root.join(item.path);
        let bytes = match &item.content {
            Content::Binary => {
                let own = std::env::current_exe().map_err(InstallError::OwnPath)?;
                std::fs::read(&own).map_err(InstallError::OwnPath)?
            }
            Content::RcScript => rc_script(prefix).into_bytes(),
            Content::Text(text) => text.as_bytes().to_vec(),
            Content::Completion(shell) => completion(*shell),
        };
        write_atomically(&target, &bytes, item.mode)?;
        println!("installed {}", target.display());
    }
    if destdir.is_none() {
        let config = root.join(CONFIG_PATH);
        if config.exists() {
            println!("kept {} (compare with the .sample)", config.display());
        } else {
            write_atomically(&config, SAMPLE.as_bytes(), 0o644)?;
            println!("installed {} (from the .sample: edit it)", config.display());
        }
    }
    Ok(())
}

/// The rc.d script for `prefix`: the program and the default
/// configuration move with it.
pub fn rc_script(prefix: &Path) -> String {
    let prefix = prefix.to_string_lossy();
    let prefix = prefix.trim_end_matches('/');
    RC_SCRIPT.replace("/usr/local/", &format!("{prefix}/"))
}

/// Writes `bytes` to a temporary file next to `target`, sets `mode`, and
/// renames it over `target`: a reader (or a running program being
/// replaced) never sees half a file.
fn write_atomically(target: &Path, bytes: &[u8], mode: u32) -> Result<(), InstallError> {
    let fail = |path: &Path| {
        let path = path.to_owned();
        move |error| InstallError::Write { path, error }
    };
    let dir = target.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(dir).map_err(fail(dir))?;
    let name = target
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let temporary = dir.join(format!(".{name}.install-{}", std::process::id()));
    let written = std::fs::File::create(&temporary).and_then(|mut file| {
        file.write_all(bytes)?;
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        file.sync_all()
    });
    if let Err(error) = written.and_then(|()| std::fs::rename(&temporary, target)) {
        let _ = std::fs::remove_file(&temporary);
        return Err(fail(target)(error));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rc_script_follows_the_prefix() {
        let script = rc_script(Path::new("/opt/rcbsd/"));
        assert!(script.contains("rcbsd_failover_program=\"/opt/rcbsd/sbin/rcbsd-failover\""));
        assert!(script.contains(":=/opt/rcbsd/etc/rcbsd-failover.toml}"));
        assert!(!script.contains("/usr/local/"));
        assert_eq!(rc_script(Path::new(DEFAULT_PREFIX)), RC_SCRIPT);
    }

    #[test]
    fn a_relative_prefix_is_refused() {
        let error = install(Path::new("usr/local"), None, |_| Vec::new()).unwrap_err();
        assert!(matches!(error, InstallError::RelativePrefix(_)), "{error}");
    }
}
