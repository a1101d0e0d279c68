//! The agent's block in the exports file (exports(5)).
//!
//! The agent owns the lines between two marker comments and nothing else:
//! an operator's own exports above or below stay byte for byte. The block
//! holds a `V4:` root line (without it NFSv4 mounts fail) and one line per
//! filesystem, `-maproot=root` (otherwise client root is squashed and CBSD,
//! running as root, cannot write) and the clients (a `-network` or a host
//! list). exports(5) wants all directories of one filesystem on one line
//! per client set, so the directories are grouped by device at run time.
//!
//! Rendering and splicing are pure; [`write_block`] replaces the file
//! atomically (temporary file in the same directory, fsync, rename) so
//! mountd never reads half a file.

use std::io::Write;
use std::net::Ipv4Addr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::config::Ipv4Net;

pub const BEGIN_MARKER: &str =
    "# BEGIN rcbsd-failover: managed by the agent on the master, do not edit";
pub const END_MARKER: &str = "# END rcbsd-failover";

/// Who may mount: a network, hosts, or both.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Clients {
    pub network: Option<Ipv4Net>,
    pub hosts: Vec<Ipv4Addr>,
}

impl Clients {
    /// The client parts of exports lines: one per client set, since one
    /// line takes either `-network` or a host list.
    fn specs(&self) -> Vec<String> {
        let mut specs = Vec::new();
        if let Some(net) = self.network {
            specs.push(format!("-network {net}"));
        }
        if !self.hosts.is_empty() {
            let hosts: Vec<String> = self.hosts.iter().map(ToString::to_string).collect();
            specs.push(hosts.join(" "));
        }
        specs
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExportsError {
    #[error("{}: {problem}; fix the file by hand (the agent never guesses where its block ends)", path.display())]
    Markers { path: PathBuf, problem: String },
    #[error("{}: {action}: {error}", path.display())]
    Io {
        path: PathBuf,
        action: &'static str,
        error: std::io::Error,
    },
}

/// The block's lines (markers excluded) for directories already grouped by
/// filesystem. No groups: an empty block (the node is not master).
pub fn render(groups: &[Vec<PathBuf>], clients: &Clients) -> Vec<String> {
    if groups.is_empty() {
        return Vec::new();
    }
    let specs = clients.specs();
    let mut lines = Vec::new();
    // The V4 root names one client set: mountd accepts a single V4: line.
    if let Some(first) = specs.first() {
        lines.push(format!("V4: / {first}"));
    }
    for group in groups {
        let dirs: Vec<String> = group
            .iter()
            .map(|d| d.to_string_lossy().into_owned())
            .collect();
        for spec in &specs {
            lines.push(format!("{} -maproot=root {spec}", dirs.join(" ")));
        }
    }
    lines
}

/// `existing` with the agent's block replaced by `block` (appended at the
/// end when the file has no block yet). Refuses a file whose markers are
/// unbalanced rather than guess.
pub fn splice(existing: &str, block: &[String], path: &Path) -> Result<String, ExportsError> {
    let lines: Vec<&str> = existing.lines().collect();
    let begins: Vec<usize> = positions(&lines, BEGIN_MARKER);
    let ends: Vec<usize> = positions(&lines, END_MARKER);
    let problem = |p: &str| ExportsError::Markers {
        path: path.to_path_buf(),
        problem: p.to_owned(),
    };
    let mut out: Vec<&str> = Vec::with_capacity(lines.len() + block.len() + 2);
    match (begins.as_slice(), ends.as_slice()) {
        ([], []) => {
            out.extend(&lines);
            out.push(BEGIN_MARKER);
            out.extend(block.iter().map(String::as_str));
            out.push(END_MARKER);
        }
        ([begin], [end]) if begin < end => {
            out.extend(lines.get(..*begin).unwrap_or(&[]));
            out.push(BEGIN_MARKER);
            out.extend(block.iter().map(String::as_str));
            out.push(END_MARKER);
            out.extend(lines.get(end + 1..).unwrap_or(&[]));
        }
        ([_], [_]) => return Err(problem("the END marker comes before the BEGIN marker")),
        (b, e) if b.len() > 1 || e.len() > 1 => {
            return Err(problem("the agent's markers appear more than once"))
        }
        _ => return Err(problem("one of the agent's BEGIN/END markers is missing")),
    }
    let mut text = out.join("\n");
    text.push('\n');
    Ok(text)
}

/// The lines of the agent's block in `existing` (empty when there is no
/// block); `None` when the markers are not one balanced pair.
pub fn block(existing: &str) -> Option<Vec<String>> {
    let lines: Vec<&str> = existing.lines().collect();
    match (
        positions(&lines, BEGIN_MARKER).as_slice(),
        positions(&lines, END_MARKER).as_slice(),
    ) {
        ([], []) => Some(Vec::new()),
        ([begin], [end]) if begin < end => Some(
            lines
                .get(begin + 1..*end)
                .unwrap_or(&[])
                .iter()
                .filter(|l| !l.trim().is_empty())
                .map(|l| (*l).to_owned())
                .collect(),
        ),
        _ => None,
    }
}

fn positions(lines: &[&str], marker: &str) -> Vec<usize> {
    lines
        .iter()
        .enumerate()
        .filter(|(_, line)| line.trim_end() == marker)
        .map(|(i, _)| i)
        .collect()
}

/// Groups `dirs` by the filesystem they are on (same device), keeping the
/// order of first appearance. A directory that cannot be read forms its
/// own group (mountd then reports it, the runbook's verify catches it).
pub fn group_by_filesystem(dirs: &[PathBuf]) -> Vec<Vec<PathBuf>> {
    let mut groups: Vec<(Option<u64>, Vec<PathBuf>)> = Vec::new();
    for dir in dirs {
        let device = std::fs::metadata(dir).ok().map(|m| m.dev());
        match groups.iter_mut().find(|(d, _)| d.is_some() && *d == device) {
            Some((_, group)) => group.push(dir.clone()),
            None => groups.push((device, vec![dir.clone()])),
        }
    }
    groups.into_iter().map(|(_, group)| group).collect()
}

/// Replaces the agent's block in `path` with `block`, atomically. A missing
/// file is created (mode 0644).
pub fn write_block(path: &Path, block: &[String]) -> Result<(), ExportsError> {
    let io = |action: &'static str| {
        move |error| ExportsError::Io {
            path: path.to_path_buf(),
            action,
            error,
        }
    };
    let (existing, mode) = match std::fs::read_to_string(path) {
        Ok(text) => {
            let mode = std::fs::metadata(path)
                .map(|m| m.permissions().mode() & 0o7777)
                .unwrap_or(0o644);
            (text, mode)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (String::new(), 0o644),
        Err(e) => return Err(io("read")(e)),
    };
    let text = splice(&existing, block, path)?;
    if text == existing {
        return Ok(());
    }
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map_or_else(|| "exports".into(), |n| n.to_string_lossy().into_owned());
    let temp = dir.join(format!(".{name}.rcbsd-failover.{}", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&temp).map_err(io("create the temporary file"))?;
        file.write_all(text.as_bytes())
            .map_err(io("write the temporary file"))?;
        file.set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(io("set the mode of the temporary file"))?;
        file.sync_all().map_err(io("fsync the temporary file"))?;
        std::fs::rename(&temp, path).map_err(io("rename the temporary file over it"))?;
        // The rename itself must reach the disk before mountd is told.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clients() -> Clients {
        Clients {
            network: Some(Ipv4Net {
                address: Ipv4Addr::new(192, 168, 10, 0),
                prefix_len: 24,
            }),
            hosts: Vec::new(),
        }
    }

    #[test]
    fn one_line_per_filesystem_after_the_v4_root() {
        let groups = vec![
            vec![PathBuf::from("/store/jails-data")],
            vec![
                PathBuf::from("/store/jails-system"),
                PathBuf::from("/store/jails-rcconf"),
            ],
        ];
        assert_eq!(
            render(&groups, &clients()),
            [
                "V4: / -network 192.168.10.0/24",
                "/store/jails-data -maproot=root -network 192.168.10.0/24",
                "/store/jails-system /store/jails-rcconf -maproot=root -network 192.168.10.0/24",
            ]
        );
    }

    #[test]
    fn hosts_and_network_get_a_line_each() {
        let mut c = clients();
        c.hosts = vec![Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2)];
        let lines = render(&[vec![PathBuf::from("/store/a")]], &c);
        assert_eq!(
            lines,
            [
                "V4: / -network 192.168.10.0/24",
                "/store/a -maproot=root -network 192.168.10.0/24",
                "/store/a -maproot=root 10.0.0.1 10.0.0.2",
            ]
        );
        assert!(render(&[], &c).is_empty());
    }

    #[test]
    fn splice_appends_then_replaces_keeping_the_rest() {
        let path = Path::new("/etc/exports");
        let operator = "/home -ro -network 10.1.0.0/16\n";
        let first = splice(operator, &["V4: / x".to_owned()], path).unwrap();
        assert_eq!(
            first,
            format!("/home -ro -network 10.1.0.0/16\n{BEGIN_MARKER}\nV4: / x\n{END_MARKER}\n")
        );
        let with_tail = format!("{first}/usr -ro\n");
        let second = splice(&with_tail, &[], path).unwrap();
        assert_eq!(
            second,
            format!("/home -ro -network 10.1.0.0/16\n{BEGIN_MARKER}\n{END_MARKER}\n/usr -ro\n")
        );
    }

    #[test]
    fn unbalanced_markers_are_refused() {
        let path = Path::new("/etc/exports");
        assert!(splice(&format!("{BEGIN_MARKER}\n"), &[], path).is_err());
        assert!(splice(&format!("{END_MARKER}\n{BEGIN_MARKER}\n"), &[], path).is_err());
        let twice = format!("{BEGIN_MARKER}\n{END_MARKER}\n{BEGIN_MARKER}\n{END_MARKER}\n");
        assert!(splice(&twice, &[], path).is_err());
    }

    #[test]
    fn dirs_on_one_filesystem_share_a_group() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        std::fs::create_dir(&a).unwrap();
        std::fs::create_dir(&b).unwrap();
        let missing = dir.path().join("missing");
        let groups = group_by_filesystem(&[a.clone(), missing.clone(), b.clone()]);
        assert_eq!(groups, vec![vec![a, b], vec![missing]]);
    }

    #[test]
    fn write_block_keeps_mode_and_other_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("exports");
        std::fs::write(&path, "/home -ro\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        write_block(&path, &["V4: / -network 10.0.0.0/8".to_owned()]).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("/home -ro\n"), "{text}");
        assert!(text.contains("V4: / -network 10.0.0.0/8"), "{text}");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "temporary file left behind");
    }
}
