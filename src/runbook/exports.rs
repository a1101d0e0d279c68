//! The agent's block in the exports file (exports(5)).
//!
//! The agent owns the lines between two marker comments and nothing else:
//! an operator's own exports above or below stay byte for byte. The block
//! holds `V4:` root lines (without one NFSv4 mounts fail) and one line per
//! filesystem, `-maproot=root` (otherwise client root is squashed and CBSD,
//! running as root, cannot write) and the clients (a `-network` or a host
//! list). exports(5) wants all directories of one filesystem on one line
//! per client set, so the directories are grouped by device at run time.
//!
//! `V4:` lines follow mountd's rules (usr.sbin/mountd/mountd.c,
//! `get_exportlist_one`): one line takes either a `-network` or hosts
//! ("network/host conflict"), so the root gets one `V4:` line per client
//! set, as the directories do: an NFSv4 client must be allowed on the root
//! as well as on the directory it mounts. Several `V4:` lines naming the
//! same root are merged; the first `V4:` line read sets the root and a
//! later one naming another path is dropped ("different V4 dirpath"). So an
//! operator's own `V4:` line elsewhere in the file must name the agent's
//! root, [`V4_ROOT`]: [`foreign_v4_roots`] finds those that do not, and
//! [`write_block`] refuses to write the block beside one.
//!
//! Rendering, splicing and the `V4:` check are pure; [`write_block`]
//! replaces the file atomically (temporary file in the same directory,
//! fsync, rename) so mountd never reads half a file.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::config::{Ipv4Net, Ipv6Net};

/// The comment line that opens the agent's block in the exports file.
pub const BEGIN_MARKER: &str =
    "# BEGIN rcbsd-failover: managed by the agent on the master, do not edit";
/// The comment line that closes the agent's block.
pub const END_MARKER: &str = "# END rcbsd-failover";
/// The NFSv4 root of the agent's exports: followers mount
/// `VIP:<storage.root>/<dir>`, a path from `/`.
pub const V4_ROOT: &str = "/";

/// Who may mount: networks, hosts, or both, of either family.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Clients {
    /// `nfs.export_network`: written as exports(5) `-network A.B.C.D/N`.
    pub network: Option<Ipv4Net>,
    /// `nfs.export_network6`: written as `-network 2001:db8::/64`, a line
    /// of its own (one `-network` per line; mountd.c `get_net` reads the
    /// address with getaddrinfo(3), either family, and the prefix length).
    pub network6: Option<Ipv6Net>,
    /// `nfs.export_hosts` (IPv4): written as a host list on lines of their own.
    pub hosts: Vec<Ipv4Addr>,
    /// `nfs.export_hosts` (IPv6): in the same host list, after the IPv4
    /// ones (mountd.c `get_host` resolves each with getaddrinfo(3)).
    pub hosts6: Vec<Ipv6Addr>,
}

impl Clients {
    /// The client parts of exports lines: one per client set, since one
    /// line takes either `-network` or a host list.
    fn specs(&self) -> Vec<String> {
        let mut specs = Vec::new();
        if let Some(net) = self.network {
            specs.push(format!("-network {net}"));
        }
        if let Some(net) = self.network6 {
            specs.push(format!("-network {net}"));
        }
        let hosts: Vec<String> = self
            .hosts
            .iter()
            .map(|h| IpAddr::V4(*h))
            .chain(self.hosts6.iter().map(|h| IpAddr::V6(*h)))
            .map(|h| h.to_string())
            .collect();
        if !hosts.is_empty() {
            specs.push(hosts.join(" "));
        }
        specs
    }
}

/// Why the agent's block could not be written into the exports file.
#[derive(Debug, thiserror::Error)]
pub enum ExportsError {
    /// The marker lines are missing one of a pair, repeated or out of
    /// order: where the block ends is not known.
    #[error("{}: {problem}; fix the file by hand (the agent never guesses where its block ends)", path.display())]
    Markers {
        /// The exports file.
        path: PathBuf,
        /// What is wrong with the markers.
        problem: String,
    },
    /// Operator `V4:` lines naming another NFSv4 root than [`V4_ROOT`]
    /// (mountd would drop one of the roots); every one found.
    #[error("{}; the agent's block was not written", DisplayAll(.0))]
    ForeignV4Root(Vec<ForeignV4Root>),
    /// Reading, writing or renaming failed.
    #[error("{}: {action}: {error}", path.display())]
    Io {
        /// The exports file.
        path: PathBuf,
        /// What was being done, e.g. `fsync the temporary file`.
        action: &'static str,
        /// The error it returned.
        error: std::io::Error,
    },
}

/// An operator's `V4:` line outside the agent's block that names another
/// root than [`V4_ROOT`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForeignV4Root {
    /// The exports file the line is in.
    pub path: PathBuf,
    /// 1-based line (the first, for a line continued with `\`).
    pub line: usize,
    /// 1-based column of the root path, in characters.
    pub column: usize,
    /// The root path the line names, e.g. `/store`.
    pub root: String,
}

impl std::fmt::Display for ForeignV4Root {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}:{}: a V4: line makes {} the NFSv4 root, but the agent exports with root {V4_ROOT}: mountd keeps the first V4: root it reads and drops a V4: line naming another (usr.sbin/mountd/mountd.c: \"different V4 dirpath\"), so the followers' mounts or that line's clients would fail; remove the line or write it as \"V4: {V4_ROOT} ...\" (V4: lines with the same root are merged)",
            self.path.display(),
            self.line,
            self.column,
            self.root
        )
    }
}

struct DisplayAll<'a>(&'a [ForeignV4Root]);

impl std::fmt::Display for DisplayAll<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, conflict) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{conflict}")?;
        }
        Ok(())
    }
}

/// The `V4:` lines of `existing` (the exports file at `path`), outside the
/// agent's block, whose root is not [`V4_ROOT`]. Lines are read as mountd
/// reads them (mountd.c `get_line`, `get_exportlist_one`): a trailing `\`
/// continues a line, `#` starts a comment, `V4:` may be followed by the
/// root directly (`V4:/x`); a `V4:` line without a root is ignored by
/// mountd ("V4:root, no dirp") and here.
pub fn foreign_v4_roots(existing: &str, path: &Path) -> Vec<ForeignV4Root> {
    let lines: Vec<&str> = existing.lines().collect();
    let inside = match (
        positions(&lines, BEGIN_MARKER).as_slice(),
        positions(&lines, END_MARKER).as_slice(),
    ) {
        ([begin], [end]) if begin < end => Some(*begin..=*end),
        _ => None,
    };
    let mut found = Vec::new();
    let mut index = 0;
    while index < lines.len() {
        let first = index;
        // A logical line: this one and those its trailing backslashes join.
        let mut logical: Vec<(usize, &str)> = Vec::new();
        loop {
            let line = lines.get(index).copied().unwrap_or_default();
            let trimmed = line.trim_end();
            let continued = trimmed.ends_with('\\');
            logical.push((index, trimmed.strip_suffix('\\').unwrap_or(trimmed)));
            index += 1;
            if !continued || index >= lines.len() {
                break;
            }
        }
        if inside.as_ref().is_some_and(|r| r.contains(&first)) {
            continue;
        }
        if let Some((column, root)) = v4_root(&logical) {
            if root != V4_ROOT {
                found.push(ForeignV4Root {
                    path: path.to_path_buf(),
                    line: first + 1,
                    column,
                    root,
                });
            }
        }
    }
    found
}

/// The root of a `V4:` logical line and its column on the first line, or
/// `None` when the line is no `V4:` line or names no root.
fn v4_root(logical: &[(usize, &str)]) -> Option<(usize, String)> {
    let first = logical.first()?.1;
    let start = first.len() - first.trim_start().len();
    let rest = first.get(start..)?.strip_prefix("V4:")?;
    // The root is the first word after "V4:", on this line or a
    // continuation; mountd takes a word starting with '/' as the path.
    let mut words = logical.iter().enumerate().flat_map(|(i, (_, text))| {
        let text: &str = if i == 0 { rest } else { text };
        let base = if i == 0 { start + 3 } else { 0 };
        text.split_whitespace().map(move |w| {
            let offset = base + (w.as_ptr() as usize - text.as_ptr() as usize);
            (i, offset, w)
        })
    });
    let (line, offset, word) = words.next()?;
    if !word.starts_with('/') {
        return None;
    }
    let text = logical.get(line)?.1;
    let column = text.get(..offset).map_or(1, |t| t.chars().count() + 1);
    // A root continued onto another line is reported at the first.
    let column = if line == 0 { column } else { 1 };
    Some((column, word.to_owned()))
}

/// The block's lines (markers excluded) for directories already grouped by
/// filesystem. No groups: an empty block (the node is not master).
pub fn render(groups: &[Vec<PathBuf>], clients: &Clients) -> Vec<String> {
    if groups.is_empty() {
        return Vec::new();
    }
    let specs = clients.specs();
    let mut lines = Vec::new();
    // Every client set that may mount a directory may reach the root too:
    // one V4: line each, mountd merges V4: lines with the same root.
    for spec in &specs {
        lines.push(format!("V4: {V4_ROOT} {spec}"));
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

/// check-config's look at a master candidate's exports file: the
/// operator's `V4:` lines naming another root ([`foreign_v4_roots`]). A
/// missing file is fine (the agent creates it); `Err` when it cannot be
/// read.
pub fn check_file(path: &Path) -> Result<Vec<ForeignV4Root>, std::io::Error> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(foreign_v4_roots(&text, path)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
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
/// file is created (mode 0644). A non-empty block is refused, the file left
/// as it was, when an operator's `V4:` line names another root
/// ([`foreign_v4_roots`]): mountd would drop one of them silently. An empty
/// block (clearing, an undo) is always written.
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
    if !block.is_empty() {
        let conflicts = foreign_v4_roots(&existing, path);
        if !conflicts.is_empty() {
            return Err(ExportsError::ForeignV4Root(conflicts));
        }
    }
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
            ..Clients::default()
        }
    }

    #[test]
    fn an_ipv6_network_gets_lines_of_its_own_and_ipv6_hosts_join_the_host_list() {
        let mut c = clients();
        c.network6 = Some(Ipv6Net {
            address: "2001:db8:10::".parse().unwrap(),
            prefix_len: 64,
        });
        c.hosts = vec![Ipv4Addr::new(10, 0, 0, 1)];
        c.hosts6 = vec!["2001:db8:10::201".parse().unwrap()];
        let lines = render(&[vec![PathBuf::from("/store/a")]], &c);
        assert_eq!(
            lines,
            [
                "V4: / -network 192.168.10.0/24",
                "V4: / -network 2001:db8:10::/64",
                "V4: / 10.0.0.1 2001:db8:10::201",
                "/store/a -maproot=root -network 192.168.10.0/24",
                "/store/a -maproot=root -network 2001:db8:10::/64",
                "/store/a -maproot=root 10.0.0.1 2001:db8:10::201",
            ]
        );
        let only6 = Clients {
            network6: c.network6,
            ..Clients::default()
        };
        assert_eq!(
            render(&[vec![PathBuf::from("/store/a")]], &only6),
            [
                "V4: / -network 2001:db8:10::/64",
                "/store/a -maproot=root -network 2001:db8:10::/64",
            ]
        );
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
    fn hosts_and_network_get_a_line_each_on_the_root_too() {
        let mut c = clients();
        c.hosts = vec![Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2)];
        let lines = render(&[vec![PathBuf::from("/store/a")]], &c);
        assert_eq!(
            lines,
            [
                "V4: / -network 192.168.10.0/24",
                "V4: / 10.0.0.1 10.0.0.2",
                "/store/a -maproot=root -network 192.168.10.0/24",
                "/store/a -maproot=root 10.0.0.1 10.0.0.2",
            ]
        );
        assert!(render(&[], &c).is_empty());
    }

    #[test]
    fn hosts_alone_get_one_root_line() {
        let c = Clients {
            hosts: vec![Ipv4Addr::new(10, 0, 0, 1)],
            ..Clients::default()
        };
        let lines = render(&[vec![PathBuf::from("/store/a")]], &c);
        assert_eq!(lines, ["V4: / 10.0.0.1", "/store/a -maproot=root 10.0.0.1"]);
    }

    #[test]
    fn every_rendered_v4_line_names_the_agents_root() {
        let mut c = clients();
        c.hosts = vec![Ipv4Addr::new(10, 0, 0, 1)];
        let block = render(&[vec![PathBuf::from("/store/a")]], &c);
        let text = splice("", &block, Path::new("/etc/exports")).unwrap();
        // The block itself is never a conflict, even read from outside.
        let unmarked: String = block.iter().map(|l| format!("{l}\n")).collect();
        assert!(foreign_v4_roots(&text, Path::new("/etc/exports")).is_empty());
        assert!(foreign_v4_roots(&unmarked, Path::new("/etc/exports")).is_empty());
    }

    #[test]
    fn an_operators_v4_line_with_another_root_is_found_with_its_line_and_column() {
        let path = Path::new("/etc/exports");
        let text = format!(
            "# mine\n/home -ro -network 10.1.0.0/16\nV4: /other -network 10.1.0.0/16\n\
             V4: / -sec=krb5 -network 10.1.0.0/16\n  V4:/elsewhere\n\
             {BEGIN_MARKER}\nV4: / -network 192.168.10.0/24\nV4: /inside\n{END_MARKER}\n\
             # V4: /commented\nV4: -sec=sys\n"
        );
        let found = foreign_v4_roots(&text, path);
        assert_eq!(
            found,
            [
                ForeignV4Root {
                    path: path.to_path_buf(),
                    line: 3,
                    column: 5,
                    root: "/other".into()
                },
                ForeignV4Root {
                    path: path.to_path_buf(),
                    line: 5,
                    column: 6,
                    root: "/elsewhere".into()
                },
            ]
        );
        let shown = found[0].to_string();
        assert!(
            shown.starts_with("/etc/exports:3:5: a V4: line makes /other the NFSv4 root"),
            "{shown}"
        );
        assert!(shown.contains("different V4 dirpath"), "{shown}");
    }

    #[test]
    fn a_continued_v4_line_is_read_whole_and_reported_at_its_first_line() {
        let path = Path::new("/etc/exports");
        let found = foreign_v4_roots(
            "/a -ro\nV4: \\\n   /other \\\n  -network 10.0.0.0/8\n",
            path,
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!((found[0].line, found[0].root.as_str()), (2, "/other"));
        let same = foreign_v4_roots("V4: / \\\n -network 10.0.0.0/8\n", path);
        assert!(same.is_empty(), "{same:?}");
    }

    #[test]
    fn write_block_refuses_beside_a_foreign_v4_root_and_leaves_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("exports");
        let before = "/home -ro\nV4: /home -network 10.9.0.0/16\n";
        std::fs::write(&path, before).unwrap();
        let error = write_block(&path, &["V4: / -network 10.0.0.0/8".to_owned()]).unwrap_err();
        let shown = error.to_string();
        assert!(
            shown.contains(&format!("{}:2:5:", path.display())),
            "{shown}"
        );
        assert!(shown.contains("/home the NFSv4 root"), "{shown}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), before);
        // Clearing (an undo) still works.
        write_block(&path, &[]).unwrap();
        assert_eq!(check_file(&path).unwrap().len(), 1);
        assert!(check_file(&dir.path().join("missing")).unwrap().is_empty());
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
