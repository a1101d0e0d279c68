//! Reading the CBSD cluster sections: `[cbsd]`, `[storage]`, `[nfs]`,
//! `[environments]`, `[runbook]` and `[tools]`, with the checks across them
//! (a shared dir must stay inside the workdir, the export network must
//! contain the VIP, a storage kind needs its parameters...).

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::ops::Range;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use toml::de::DeTable;

use super::{Reader, Value};
use crate::config::cluster::{
    Cbsd, EnvKind, EnvPattern, Environments, Ipv4Net, Nfs, RunbookSettings, Storage, StorageKind,
    Tools, DEFAULT_EXPORTS_FILE, DEFAULT_MOUNT_OPTIONS, DEFAULT_STORAGE_ROOT, TOOL_DEFAULTS,
};
use crate::config::mount_options;
use crate::config::VirtualIp;

const CBSD_KEYS: &[&str] = &["workdir", "shared_dirs", "dir_id_file", "dir_id"];
const STORAGE_KEYS: &[&str] = &["kind", "root", "resource", "fstype", "device", "pool"];
const NFS_KEYS: &[&str] = &[
    "export_network",
    "export_hosts",
    "remote_root",
    "mount_options",
    "v4_only",
    "delegations",
    "exports_file",
];
const ENVIRONMENTS_KEYS: &[&str] = &["jails", "bhyve", "stop_timeout", "start_timeout"];
const RUNBOOK_KEYS: &[&str] = &[
    "command_timeout",
    "umount_timeout",
    "nfs_answer_timeout",
    "storage_timeout",
    "device_wait",
    "mount_timeout",
    "mount_attempts",
    "retry_backoff",
    "retry_backoff_max",
    "fault_hold_off",
];

const DEFAULT_WORKDIR: &str = "/usr/jails";
const DEFAULT_SHARED_DIRS: &[&str] = &["jails-data", "jails-system", "jails-rcconf", "jails-fstab"];
const DEFAULT_DIR_ID_FILE: &str = "jails-data/dir.id";

/// The cluster sections of a valid file.
pub(super) struct Sections {
    pub cbsd: Option<Cbsd>,
    pub storage: Option<Storage>,
    pub nfs: Nfs,
    pub environments: Environments,
    pub runbook: RunbookSettings,
    pub tools: Tools,
}

/// Names CBSD, HAST and ZFS accept and that need no quoting anywhere
/// (argv, exports(5) lines, paths).
pub(super) fn is_plain_name(text: &str) -> bool {
    !text.is_empty()
        && !text.starts_with('-')
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// An absolute path without `..`, `.` or doubled separators to hide where
/// it points.
fn is_clean_absolute(path: &Path) -> bool {
    path.is_absolute()
        && path
            .components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
}

impl Reader<'_> {
    pub(super) fn cluster_sections(
        &mut self,
        root: &DeTable<'_>,
        vips: &[VirtualIp],
    ) -> Option<Sections> {
        let cbsd = self.section(root, "cbsd", |r, t, span| r.cbsd(t, span));
        for needs_cbsd in ["storage", "nfs", "environments"] {
            if root.get("cbsd").is_none() {
                if let Some(value) = root.get(needs_cbsd) {
                    self.error(
                        value.span(),
                        needs_cbsd,
                        format!("[{needs_cbsd}] needs a [cbsd] table (without it the node only moves the virtual IP)"),
                    );
                }
            }
        }
        let workdir = cbsd
            .as_ref()
            .and_then(|c| c.as_ref())
            .map(|c| c.workdir.clone());
        let storage = self.section(root, "storage", |r, t, span| {
            r.storage(t, span, workdir.as_deref())
        });
        let has_storage = matches!(storage, Some(Some(_)));
        let storage_root = match &storage {
            Some(Some(s)) => Some(s.root.clone()),
            _ => None,
        };
        let nfs = match root.get("nfs") {
            Some(value) => self
                .table(value, "nfs")
                .and_then(|t| self.nfs(t, vips, storage_root.as_deref(), value.span())),
            None => {
                if has_storage {
                    self.error(
                        root.get("storage").map_or(0..0, |v| v.span()),
                        "nfs.export_network",
                        "a master candidate ([storage]) must say who may mount: add [nfs] with export_network or export_hosts",
                    );
                    None
                } else {
                    Some(Nfs::default())
                }
            }
        };
        let environments = match root.get("environments") {
            Some(value) => self
                .table(value, "environments")
                .and_then(|t| self.environments(t)),
            None => Some(Environments::default()),
        };
        let runbook = match root.get("runbook") {
            Some(value) => self.table(value, "runbook").and_then(|t| self.runbook(t)),
            None => Some(RunbookSettings::default()),
        };
        let tools = match root.get("tools") {
            Some(value) => self.table(value, "tools").and_then(|t| self.tools(t)),
            None => Some(Tools::default()),
        };
        Some(Sections {
            cbsd: cbsd?,
            storage: storage?,
            nfs: nfs?,
            environments: environments?,
            runbook: runbook?,
            tools: tools?,
        })
    }

    /// An optional table: `Some(None)` when absent, `None` when invalid.
    fn section<T>(
        &mut self,
        root: &DeTable<'_>,
        name: &str,
        read: impl FnOnce(&mut Self, &DeTable<'_>, Range<usize>) -> Option<T>,
    ) -> Option<Option<T>> {
        match root.get(name) {
            None => Some(None),
            Some(value) => {
                let table = self.table(value, name)?;
                read(self, table, value.span()).map(Some)
            }
        }
    }

    fn required_in<'a, 'i>(
        &mut self,
        table: &'a DeTable<'i>,
        section: &str,
        name: &str,
        table_span: &Range<usize>,
        why: &str,
    ) -> Option<&'a Value<'i>> {
        let value = table.get(name);
        if value.is_none() {
            self.error(
                table_span.clone(),
                &format!("{section}.{name}"),
                format!("missing; {why}"),
            );
        }
        value
    }

    pub(super) fn clean_path(
        &mut self,
        value: Option<&Value<'_>>,
        key: &str,
        default: &str,
    ) -> Option<PathBuf> {
        let path = self.path_value(value, key, default, None)?;
        if !is_clean_absolute(&path) || path == Path::new("/") {
            let span = value.map_or(0..0, |v| v.span());
            self.error(
                span,
                key,
                format!(
                    "{:?} must be an absolute path other than \"/\", without \".\" or \"..\"",
                    path.display().to_string()
                ),
            );
            return None;
        }
        Some(path)
    }

    // ---- [cbsd] ----------------------------------------------------------

    fn cbsd(&mut self, table: &DeTable<'_>, _span: Range<usize>) -> Option<Cbsd> {
        self.unknown_keys(table, "cbsd", CBSD_KEYS);
        let workdir = self.clean_path(table.get("workdir"), "cbsd.workdir", DEFAULT_WORKDIR);
        let shared_dirs = match table.get("shared_dirs") {
            Some(value) => self.shared_dirs(value),
            None => Some(DEFAULT_SHARED_DIRS.iter().map(|d| d.to_string()).collect()),
        };
        let dir_id = match table.get("dir_id") {
            Some(value) => {
                let text = self.string(value, "cbsd.dir_id")?;
                if text.trim().is_empty() || text.contains('\n') {
                    self.error(
                        value.span(),
                        "cbsd.dir_id",
                        "must be the one-line content of CBSD's dir.id (see `cat /usr/jails/jails-data/dir.id` on the master)",
                    );
                    None
                } else {
                    Some(Some(text.trim().to_owned()))
                }
            }
            None => Some(None),
        };
        let dir_id_file = match (table.get("dir_id_file"), &shared_dirs) {
            (Some(value), Some(dirs)) => self.dir_id_file(value, dirs),
            (None, _) => Some(PathBuf::from(DEFAULT_DIR_ID_FILE)),
            (Some(_), None) => None,
        };
        if let (None, Some(dirs)) = (table.get("dir_id_file"), &shared_dirs) {
            let first = DEFAULT_DIR_ID_FILE.split('/').next().unwrap_or_default();
            if !dirs.iter().any(|d| d == first) {
                let span = table.get("shared_dirs").map_or(0..0, |v| v.span());
                self.error(
                    span,
                    "cbsd.dir_id_file",
                    format!("the default {DEFAULT_DIR_ID_FILE:?} is not in a shared dir; set cbsd.dir_id_file to CBSD's dir.id inside one of shared_dirs"),
                );
            }
        }
        Some(Cbsd {
            workdir: workdir?,
            shared_dirs: shared_dirs?,
            dir_id_file: dir_id_file?,
            dir_id: dir_id?,
        })
    }

    fn shared_dirs(&mut self, value: &Value<'_>) -> Option<Vec<String>> {
        const KEY: &str = "cbsd.shared_dirs";
        let items = self.string_array(value, KEY)?;
        if items.is_empty() {
            self.error(
                value.span(),
                KEY,
                "empty; list the CBSD dirs the master shares, e.g. [\"jails-data\", \"jails-system\", \"jails-rcconf\", \"jails-fstab\"]",
            );
            return None;
        }
        let mut seen: HashMap<String, Range<usize>> = HashMap::new();
        let mut dirs = Vec::with_capacity(items.len());
        let mut valid = true;
        for (text, span, item_key) in items {
            let problem = if text.starts_with('/') {
                Some("is absolute; shared dirs are names under cbsd.workdir (e.g. \"jails-data\")")
            } else if text.split('/').any(|part| part == "..") {
                Some("leaves the workdir (\"..\"); shared dirs are names under cbsd.workdir")
            } else if text.contains('/') {
                Some("must be one directory name directly under cbsd.workdir (no \"/\")")
            } else if text == "." || !is_plain_name(&text) {
                Some("must be a directory name of A-Z a-z 0-9 - _ . (it appears in exports(5) lines and mount arguments)")
            } else {
                None
            };
            if let Some(problem) = problem {
                self.error(span, &item_key, format!("{text:?} {problem}"));
                valid = false;
                continue;
            }
            if !self.first_listing(
                &mut seen,
                text.clone(),
                &format!("{text:?}"),
                &span,
                &item_key,
                "",
            ) {
                valid = false;
                continue;
            }
            dirs.push(text);
        }
        valid.then_some(dirs)
    }

    fn dir_id_file(&mut self, value: &Value<'_>, dirs: &[String]) -> Option<PathBuf> {
        const KEY: &str = "cbsd.dir_id_file";
        let text = self.string(value, KEY)?;
        let path = PathBuf::from(&text);
        let parts: Vec<&str> = text.split('/').collect();
        let clean = !text.starts_with('/')
            && parts.len() >= 2
            && parts
                .iter()
                .all(|p| !p.is_empty() && *p != "." && *p != "..");
        let inside = parts
            .first()
            .is_some_and(|first| dirs.iter().any(|d| d == first));
        if !clean || !inside {
            self.error(
                value.span(),
                KEY,
                format!("{text:?} must be a path relative to cbsd.workdir inside one of the shared dirs, e.g. \"jails-data/dir.id\""),
            );
            return None;
        }
        Some(path)
    }

    // ---- [storage] -------------------------------------------------------

    fn storage(
        &mut self,
        table: &DeTable<'_>,
        span: Range<usize>,
        workdir: Option<&Path>,
    ) -> Option<Storage> {
        self.unknown_keys(table, "storage", STORAGE_KEYS);
        let kind_value = self.required_in(
            table,
            "storage",
            "kind",
            &span,
            "one of \"none\", \"hast\", \"zfs\"",
        );
        let kind_text = kind_value.and_then(|v| self.string(v, "storage.kind"));
        let root = self.clean_path(table.get("root"), "storage.root", DEFAULT_STORAGE_ROOT);
        if let (Some(root), Some(workdir)) = (&root, workdir) {
            if root.starts_with(workdir) || workdir.starts_with(root) {
                let at = table.get("root").map_or(span.clone(), |v| v.span());
                self.error(
                    at,
                    "storage.root",
                    format!(
                        "{} overlaps cbsd.workdir {}: the master binds <root>/<dir> onto <workdir>/<dir>, so they must be separate trees (e.g. \"/store\")",
                        root.display(),
                        workdir.display()
                    ),
                );
            }
        }
        let name = |reader: &mut Self, key: &str| -> Option<Option<(String, Range<usize>)>> {
            match table.get(key) {
                None => Some(None),
                Some(value) => {
                    let dotted = format!("storage.{key}");
                    let text = reader.string(value, &dotted)?;
                    if is_plain_name(&text) {
                        Some(Some((text, value.span())))
                    } else {
                        reader.error(
                            value.span(),
                            &dotted,
                            format!(
                                "{text:?} is not a name (A-Z a-z 0-9 - _ ., not starting with -)"
                            ),
                        );
                        None
                    }
                }
            }
        };
        let resource = name(self, "resource");
        let pool = name(self, "pool");
        let fstype = name(self, "fstype");
        let device = match table.get("device") {
            Some(value) => self
                .clean_path(Some(value), "storage.device", "")
                .map(|p| Some((p, value.span()))),
            None => Some(None),
        };
        let kind = match kind_text.as_deref() {
            Some("none") => {
                self.not_for_kind(&resource, "resource", "hast", "none");
                self.not_for_kind(&pool, "pool", "zfs", "none");
                self.not_for_kind(&fstype, "fstype", "hast", "none");
                self.device_not_for_kind(&device, "none");
                Some(StorageKind::None)
            }
            Some("hast") => {
                self.not_for_kind(&pool, "pool", "zfs", "hast");
                match resource.clone() {
                    Some(Some((resource, _))) => Some(StorageKind::Hast {
                        device: device.clone().flatten().map_or_else(
                            || PathBuf::from(format!("/dev/hast/{resource}")),
                            |(d, _)| d,
                        ),
                        resource,
                        fstype: fstype
                            .clone()
                            .flatten()
                            .map_or_else(|| "ufs".to_owned(), |(f, _)| f),
                    }),
                    Some(None) => {
                        self.error(
                            span.clone(),
                            "storage.resource",
                            "missing; kind = \"hast\" needs the HAST resource name (hast.conf), e.g. resource = \"cbsd\"",
                        );
                        None
                    }
                    None => None,
                }
            }
            Some("zfs") => {
                self.not_for_kind(&resource, "resource", "hast", "zfs");
                self.not_for_kind(&fstype, "fstype", "hast", "zfs");
                self.device_not_for_kind(&device, "zfs");
                match pool.clone() {
                    Some(Some((pool, _))) => Some(StorageKind::Zfs { pool }),
                    Some(None) => {
                        self.error(
                            span.clone(),
                            "storage.pool",
                            "missing; kind = \"zfs\" needs the pool on the shared disks, e.g. pool = \"cbsdpool\"",
                        );
                        None
                    }
                    None => None,
                }
            }
            Some(other) => {
                let at = kind_value.map_or(span.clone(), |v| v.span());
                self.error(
                    at,
                    "storage.kind",
                    format!(
                        "{other:?} is not a storage kind (accepted: \"none\", \"hast\", \"zfs\")"
                    ),
                );
                None
            }
            None => None,
        };
        Some(Storage {
            root: root?,
            kind: kind?,
        })
    }

    fn device_not_for_kind(&mut self, value: &Option<Option<(PathBuf, Range<usize>)>>, kind: &str) {
        if let Some(Some((_, span))) = value {
            self.error(
                span.clone(),
                "storage.device",
                format!("only for kind = \"hast\" (this storage is kind = \"{kind}\")"),
            );
        }
    }

    fn not_for_kind(
        &mut self,
        value: &Option<Option<(String, Range<usize>)>>,
        key: &str,
        belongs_to: &str,
        kind: &str,
    ) {
        if let Some(Some((_, span))) = value {
            self.error(
                span.clone(),
                &format!("storage.{key}"),
                format!("only for kind = \"{belongs_to}\" (this storage is kind = \"{kind}\")"),
            );
        }
    }

    // ---- [nfs] -----------------------------------------------------------

    fn nfs(
        &mut self,
        table: &DeTable<'_>,
        vips: &[VirtualIp],
        storage_root: Option<&Path>,
        span: Range<usize>,
    ) -> Option<Nfs> {
        let master_candidate = storage_root.is_some();
        self.unknown_keys(table, "nfs", NFS_KEYS);
        let export_network = match table.get("export_network") {
            Some(value) => self.export_network(value, vips).map(Some),
            None => Some(None),
        };
        let export_hosts = match table.get("export_hosts") {
            Some(value) => self.export_hosts(value, vips),
            None => Some(Vec::new()),
        };
        if master_candidate
            && table.get("export_network").is_none()
            && table.get("export_hosts").is_none()
        {
            self.error(
                span,
                "nfs.export_network",
                "missing; a master candidate ([storage]) must say who may mount: set export_network (e.g. \"192.168.10.0/24\") or export_hosts",
            );
        }
        let mount_options = match table.get("mount_options") {
            Some(value) => self.mount_options(value),
            None => Some(DEFAULT_MOUNT_OPTIONS.to_owned()),
        };
        let v4_only = self.optional(table, "v4_only", false, |r, v| r.boolean(v, "nfs.v4_only"));
        let delegations = self.optional(table, "delegations", false, |r, v| {
            r.boolean(v, "nfs.delegations")
        });
        let default_root = storage_root.map_or_else(
            || DEFAULT_STORAGE_ROOT.to_owned(),
            |r| r.display().to_string(),
        );
        let remote_root =
            self.clean_path(table.get("remote_root"), "nfs.remote_root", &default_root);
        if let (Some(remote), Some(local), Some(value)) =
            (&remote_root, storage_root, table.get("remote_root"))
        {
            if remote != local {
                self.error(
                    value.span(),
                    "nfs.remote_root",
                    format!(
                        "{} differs from storage.root {}: every node mounts what the master exports, so both must be the same path on every node",
                        remote.display(),
                        local.display()
                    ),
                );
            }
        }
        let exports_file = self.clean_path(
            table.get("exports_file"),
            "nfs.exports_file",
            DEFAULT_EXPORTS_FILE,
        );
        Some(Nfs {
            export_network: export_network?,
            export_hosts: export_hosts?,
            remote_root: remote_root?,
            mount_options: mount_options?,
            v4_only: v4_only?,
            delegations: delegations?,
            exports_file: exports_file?,
        })
    }

    fn export_network(&mut self, value: &Value<'_>, vips: &[VirtualIp]) -> Option<Ipv4Net> {
        const KEY: &str = "nfs.export_network";
        let text = self.string(value, KEY)?;
        let parsed = text.split_once('/').and_then(|(a, p)| {
            Some(Ipv4Net {
                address: a.parse::<Ipv4Addr>().ok()?,
                prefix_len: p.parse::<u8>().ok().filter(|p| (1..=32).contains(p))?,
            })
        });
        let Some(net) = parsed else {
            self.error(
                value.span(),
                KEY,
                format!("{text:?} is not a network (address/prefix, prefix 1..=32, e.g. \"192.168.10.0/24\")"),
            );
            return None;
        };
        if !net.is_network_address() {
            self.error(
                value.span(),
                KEY,
                format!(
                    "{text} has host bits set; write the network address (exports(5) -network)"
                ),
            );
            return None;
        }
        if let Some(vip) = vips.iter().find(|v| !net.contains(v.address)) {
            self.error(
                value.span(),
                KEY,
                format!(
                    "{net} does not contain the virtual IP {}: the followers mount from the VIP's network, export to it",
                    vip.address
                ),
            );
            return None;
        }
        Some(net)
    }

    fn export_hosts(&mut self, value: &Value<'_>, vips: &[VirtualIp]) -> Option<Vec<Ipv4Addr>> {
        let items = self.string_array(value, "nfs.export_hosts")?;
        let mut hosts: Vec<Ipv4Addr> = Vec::with_capacity(items.len());
        let mut seen: HashMap<Ipv4Addr, Range<usize>> = HashMap::new();
        let mut valid = true;
        for (text, span, item_key) in items {
            let Some(host) = self.unicast_address(&text, span.clone(), &item_key) else {
                valid = false;
                continue;
            };
            if vips.iter().any(|v| v.address == host) {
                self.error(
                    span,
                    &item_key,
                    format!(
                        "{host} is a virtual IP; list the nodes' own addresses (the NFS clients)"
                    ),
                );
                valid = false;
            } else if !self.first_listing(&mut seen, host, &host.to_string(), &span, &item_key, "")
            {
                valid = false;
            } else {
                hosts.push(host);
            }
        }
        valid.then_some(hosts)
    }

    /// Every option checked against what FreeBSD's mount_nfs knows
    /// ([`mount_options::check`]); each problem is reported at its option.
    fn mount_options(&mut self, value: &Value<'_>) -> Option<String> {
        const KEY: &str = "nfs.mount_options";
        let text = self.string(value, KEY)?;
        let problems = mount_options::check(&text);
        if problems.is_empty() {
            return Some(text);
        }
        let span = value.span();
        // The string's characters start one past the quote when the TOML
        // spells it without escapes; otherwise point at the string.
        let raw = self.text.get(span.clone()).unwrap_or_default();
        let verbatim =
            raw.len() == text.len() + 2 && raw.get(1..raw.len() - 1) == Some(text.as_str());
        for problem in problems {
            let at = if verbatim {
                let start = span.start + 1 + problem.offset;
                start..start
            } else {
                span.clone()
            };
            self.error(at, KEY, problem.message);
        }
        None
    }

    // ---- [environments] --------------------------------------------------

    fn environments(&mut self, table: &DeTable<'_>) -> Option<Environments> {
        self.unknown_keys(table, "environments", ENVIRONMENTS_KEYS);
        let mut seen: HashMap<String, Range<usize>> = HashMap::new();
        let jails = match table.get("jails") {
            Some(value) => self.env_patterns(value, "environments.jails", EnvKind::Jail, &mut seen),
            None => Some(Vec::new()),
        };
        let bhyve = match table.get("bhyve") {
            Some(value) => {
                self.env_patterns(value, "environments.bhyve", EnvKind::Bhyve, &mut seen)
            }
            None => Some(Vec::new()),
        };
        let defaults = Environments::default();
        let range = Duration::from_secs(1)..=Duration::from_secs(3600);
        let stop_timeout = self.duration_in(
            table.get("stop_timeout"),
            "environments.stop_timeout",
            defaults.stop_timeout,
            range.clone(),
        );
        let start_timeout = self.duration_in(
            table.get("start_timeout"),
            "environments.start_timeout",
            defaults.start_timeout,
            range,
        );
        let mut patterns = jails?;
        patterns.extend(bhyve?);
        Some(Environments {
            patterns,
            stop_timeout: stop_timeout?,
            start_timeout: start_timeout?,
        })
    }

    fn env_patterns(
        &mut self,
        value: &Value<'_>,
        key: &str,
        kind: EnvKind,
        seen: &mut HashMap<String, Range<usize>>,
    ) -> Option<Vec<EnvPattern>> {
        let items = self.string_array(value, key)?;
        let mut patterns = Vec::with_capacity(items.len());
        let mut valid = true;
        for (text, span, item_key) in items {
            let plain = text.replace(['*', '?'], "x");
            if !is_plain_name(&plain) {
                self.error(
                    span,
                    &item_key,
                    format!("{text:?} is not an environment name or glob (A-Z a-z 0-9 - _ . and the wildcards * ?)"),
                );
                valid = false;
                continue;
            }
            let note = "; an environment is either a jail or a bhyve VM";
            if !self.first_listing(
                seen,
                text.clone(),
                &format!("{text:?}"),
                &span,
                &item_key,
                note,
            ) {
                valid = false;
                continue;
            }
            patterns.push(EnvPattern {
                pattern: text,
                kind,
            });
        }
        valid.then_some(patterns)
    }

    // ---- [runbook] -------------------------------------------------------

    fn runbook(&mut self, table: &DeTable<'_>) -> Option<RunbookSettings> {
        self.unknown_keys(table, "runbook", RUNBOOK_KEYS);
        let d = RunbookSettings::default();
        let hour = Duration::from_secs(3600);
        let dur = |reader: &mut Self, key: &str, default: Duration, min: Duration| {
            reader.duration_in(
                table.get(key),
                &format!("runbook.{key}"),
                default,
                min..=hour,
            )
        };
        let second = Duration::from_secs(1);
        let command_timeout = dur(self, "command_timeout", d.command_timeout, second);
        let umount_timeout = dur(self, "umount_timeout", d.umount_timeout, second);
        let nfs_answer_timeout = self.duration_in(
            table.get("nfs_answer_timeout"),
            "runbook.nfs_answer_timeout",
            d.nfs_answer_timeout,
            second..=Duration::from_secs(60),
        );
        let storage_timeout = dur(self, "storage_timeout", d.storage_timeout, second);
        let device_wait = dur(self, "device_wait", d.device_wait, second);
        let mount_timeout = dur(self, "mount_timeout", d.mount_timeout, second);
        let retry_backoff = dur(self, "retry_backoff", d.retry_backoff, Duration::ZERO);
        let retry_backoff_max = dur(
            self,
            "retry_backoff_max",
            d.retry_backoff_max,
            Duration::ZERO,
        );
        let fault_hold_off = dur(self, "fault_hold_off", d.fault_hold_off, Duration::ZERO);
        let mount_attempts = self.optional(
            table,
            "mount_attempts",
            i128::from(d.mount_attempts),
            |r, v| r.integer(v, "runbook.mount_attempts", 1..=100, "1..=100"),
        );
        if let (Some(backoff), Some(max)) = (retry_backoff, retry_backoff_max) {
            if backoff > max {
                let span = table.get("retry_backoff").map_or(0..0, |v| v.span());
                self.error(
                    span,
                    "runbook.retry_backoff",
                    "is larger than runbook.retry_backoff_max",
                );
            }
        }
        Some(RunbookSettings {
            command_timeout: command_timeout?,
            umount_timeout: umount_timeout?,
            nfs_answer_timeout: nfs_answer_timeout?,
            storage_timeout: storage_timeout?,
            device_wait: device_wait?,
            mount_timeout: mount_timeout?,
            mount_attempts: u32::try_from(mount_attempts?).ok()?,
            retry_backoff: retry_backoff?,
            retry_backoff_max: retry_backoff_max?,
            fault_hold_off: fault_hold_off?,
        })
    }

    // ---- [tools] ---------------------------------------------------------

    fn tools(&mut self, table: &DeTable<'_>) -> Option<Tools> {
        let keys: Vec<&str> = TOOL_DEFAULTS.iter().map(|(k, _)| *k).collect();
        self.unknown_keys(table, "tools", &keys);
        let mut tools = Tools::default();
        let mut valid = true;
        for (key, default) in TOOL_DEFAULTS {
            let dotted = format!("tools.{key}");
            match self.clean_path(table.get(*key), &dotted, default) {
                Some(path) => {
                    tools.set(key, path);
                }
                None => valid = false,
            }
        }
        valid.then_some(tools)
    }
}
