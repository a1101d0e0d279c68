//! Reading a TOML file into a validated [`Config`].
//!
//! The document is parsed with `toml`'s span-preserving tree ([`DeTable`])
//! and walked by hand rather than through serde: serde stops at the first
//! wrong type or unknown key, while an operator fixing a file wants every
//! problem at once, each with its `file:line:col` and dotted key.
//!
//! [`parse_with_hostname`] is pure (text in, config or diagnostics out); only
//! [`load`] touches the file system and [`parse`] reads the hostname.
//!
//! This file reads the document, `[node]` and `[vrrp]`, and holds the
//! helpers every reader shares (keys, scalar types, paths). Every other
//! section has a reader in `load/` named after it; the checks that tie
//! sections together are in `load/cross_checks.rs`.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::ops::{Range, RangeInclusive};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::error::{ConfigError, Diagnostic};
use super::{duration, Config, Health, Node, VirtualIp, Vrrp};
use vrrp6::{Source, Vips};

mod auth;
mod cbsd;
mod cluster;
mod cross_checks;
mod environment;
mod environments;
mod fence;
mod follow;
mod health;
mod metrics;
mod nfs;
mod notify;
mod runbook;
mod storage;
mod tools;
mod track;
mod vrrp6;

/// Every table accepted at the top level.
const TOP_LEVEL_KEYS: &[&str] = &[
    "node",
    "vrrp",
    "vrrp6",
    "cluster",
    "environment",
    "auth",
    "cbsd",
    "storage",
    "nfs",
    "environments",
    "runbook",
    "tools",
    "notify",
    "metrics",
    "fence",
    "health",
    "track",
    "follow",
];
use crate::wire::Centis;
use crate::wire::ChecksumMode;

/// Default `node.control_socket`.
pub const DEFAULT_CONTROL_SOCKET: &str = "/var/run/rcbsd-failover.sock";
/// Default `node.state_dir`.
pub const DEFAULT_STATE_DIR: &str = "/var/db/rcbsd-failover";

/// RFC 5798 §5.2.5: "Count IPvX Addr" is an 8-bit field.
const MAX_VIRTUAL_IPS: usize = 255;
/// IFNAMSIZ is 16 on Linux and FreeBSD, including the terminating NUL.
const MAX_INTERFACE_LEN: usize = 15;
/// `sun_path` holds 104 bytes on FreeBSD (108 on Linux), including the NUL.
const MAX_SOCKET_PATH_LEN: usize = 103;
const MAX_NODE_NAME_LEN: usize = 64;
/// FreeBSD's MAXLOGNAME (33) less the NUL; Linux accepts 32 too.
const MAX_GROUP_NAME_LEN: usize = 32;

const NODE_KEYS: &[&str] = &["name", "control_socket", "state_dir", "status_group"];
const VRRP_KEYS: &[&str] = &[
    "interface",
    "vrid",
    "priority",
    "advert_interval",
    "virtual_ips",
    "preempt",
    "preempt_delay",
    "unicast_peers",
    "checksum",
    "source_address",
    "garp_master_repeat",
    "garp_interval",
    "garp_master_delay",
];

/// Read and validate the configuration file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let bytes = std::fs::read(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    match String::from_utf8(bytes) {
        Ok(text) => parse(&text, path),
        Err(error) => {
            let valid_up_to = error.utf8_error().valid_up_to();
            let text = String::from_utf8_lossy(error.as_bytes()).into_owned();
            let prefix_len =
                String::from_utf8_lossy(error.as_bytes().get(..valid_up_to).unwrap_or(&[])).len();
            Err(ConfigError::Invalid(vec![Diagnostic::at(
                &text,
                path,
                prefix_len..prefix_len,
                None,
                "the file is not valid UTF-8 (TOML files must be UTF-8)".to_string(),
            )]))
        }
    }
}

/// Validate configuration text; `path` is only used in messages and stored
/// in [`Config::path`]. `node.name` defaults to this machine's hostname.
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    parse_with_hostname(text, path, hostname().as_deref())
}

/// This machine's hostname, if it can be read and is UTF-8.
fn hostname() -> Option<String> {
    nix::unistd::gethostname().ok()?.into_string().ok()
}

/// [`parse`] with the hostname given: a pure function of its arguments.
pub fn parse_with_hostname(
    text: &str,
    path: &Path,
    hostname: Option<&str>,
) -> Result<Config, ConfigError> {
    let document = DeTable::parse(text).map_err(|error| {
        let span = error.span().unwrap_or(0..0);
        ConfigError::Invalid(vec![Diagnostic::at(
            text,
            path,
            span,
            None,
            format!("TOML syntax error: {}", error.message().trim_end()),
        )])
    })?;
    let mut reader = Reader {
        text,
        path,
        diagnostics: Vec::new(),
    };
    let config = reader.document(document.get_ref(), hostname);
    match config {
        Some(config) if reader.diagnostics.is_empty() => Ok(config),
        _ => {
            if reader.diagnostics.is_empty() {
                // Every rejection records why; this keeps the error non-empty
                // should a future check forget to.
                reader.error(
                    0..0,
                    "",
                    "rejected without a reason (a bug: please report it)",
                );
            }
            // In file order, as an editor would walk through them.
            reader
                .diagnostics
                .sort_by_key(|diagnostic| (diagnostic.line, diagnostic.column));
            Err(ConfigError::Invalid(reader.diagnostics))
        }
    }
}

type Value<'i> = Spanned<DeValue<'i>>;

/// Walks the document, collecting every problem as a diagnostic.
struct Reader<'t> {
    text: &'t str,
    path: &'t Path,
    diagnostics: Vec<Diagnostic>,
}

impl Reader<'_> {
    fn error(&mut self, span: Range<usize>, key: &str, message: impl Into<String>) {
        let key = (!key.is_empty()).then(|| key.to_string());
        self.diagnostics.push(Diagnostic::at(
            self.text,
            self.path,
            span,
            key,
            message.into(),
        ));
    }

    fn document(&mut self, root: &DeTable<'_>, hostname: Option<&str>) -> Option<Config> {
        self.unknown_keys(root, "", TOP_LEVEL_KEYS);
        let empty = DeTable::new();
        let node_table = match root.get("node") {
            Some(value) => self.table(value, "node"),
            None => Some(&empty),
        };
        let node = node_table.and_then(|table| self.node(table, hostname));
        let vrrp = match root.get("vrrp") {
            Some(value) => self
                .table(value, "vrrp")
                .and_then(|table| self.vrrp(table, value.span())),
            None => {
                self.error(
                    0..0,
                    "vrrp",
                    "missing table [vrrp] (required keys: interface, vrid, virtual_ips)",
                );
                None
            }
        };
        let vips: Vec<VirtualIp> = vrrp
            .as_ref()
            .map(|v| v.virtual_ips.clone())
            .unwrap_or_default();
        let vrrp6 = self.vrrp6_section(root, vrrp.as_ref());
        let vips6 = self.all_virtual_ips6(vrrp.as_ref(), vrrp6.as_ref());
        if root.get("cbsd").is_some() {
            self.a_mount_address_exists(root, vrrp.as_ref());
        }
        let cbsd = self.cbsd_section(root);
        self.sections_needing_cbsd(root);
        let workdir = cbsd
            .as_ref()
            .and_then(|c| c.as_ref())
            .map(|c| c.workdir.clone());
        let storage = self.storage_section(root, workdir.as_deref());
        let storage_root = match &storage {
            Some(Some(s)) => Some(s.root.clone()),
            _ => None,
        };
        let shared_dirs: Vec<String> = cbsd
            .as_ref()
            .and_then(|c| c.as_ref())
            .map(|c| c.shared_dirs.clone())
            .unwrap_or_default();
        let nfs = self.nfs_section(root, &vips, &vips6, storage_root.as_deref(), &shared_dirs);
        // `storage` is None when [storage] was invalid (said already),
        // Some(None) on a follower-only node.
        if let (Some(asked), Some(storage), Some(nfs)) =
            (cross_checks::ride_through_asked(root), &storage, &nfs)
        {
            self.exports_keep_file_handles(root, asked, storage.as_ref(), nfs, workdir.as_deref());
        }
        let environments = self.environments_section(root);
        let runbook = self.runbook_section(root);
        let tools = self.tools_section(root);
        let this_node = node.as_ref().map(|n| n.name.as_str());
        let fence = self.fence_section(root);
        let watchdog = fence.as_ref().and_then(|f| f.watchdog.as_ref());
        let cluster = self.cluster_section(root, this_node, &vips, &vips6, watchdog);
        let placement = self.placement_section(
            root,
            root.get("cluster").is_some(),
            cluster.as_ref().and_then(Option::as_ref),
            this_node,
            root.get("cbsd").is_some(),
        );
        if root.get("cluster").is_some() {
            self.refuse_per_node_environments(root, this_node);
        }
        let follow = self.follow_section(root);
        let auth = self.auth_section(root);
        let notify = self.notify_section(root);
        let metrics = self.metrics_section(root);
        let vrrp_interface = vrrp.as_ref().map(|v| v.interface.as_str());
        let health = self.health_section(root, vrrp_interface);
        // An invalid [health] has said why; its tracks are still checked,
        // against the defaults.
        let tracks = self.track_section(root, health.as_ref().unwrap_or(&Health::default()));
        let health = match (health, tracks) {
            (Some(health), Some(tracks)) => Some(Health { tracks, ..health }),
            _ => None,
        };
        Some(Config {
            path: self.path.to_path_buf(),
            node: node?,
            vrrp: vrrp?,
            vrrp6: vrrp6?,
            cbsd: cbsd?,
            storage: storage?,
            nfs: nfs?,
            environments: environments?,
            runbook: runbook?,
            tools: tools?,
            notify: notify?,
            metrics: metrics?,
            cluster: cluster?,
            placement: placement?,
            auth: auth?,
            fence: fence?,
            health: health?,
            follow: follow?,
        })
    }

    fn node(&mut self, table: &DeTable<'_>, hostname: Option<&str>) -> Option<Node> {
        self.unknown_keys(table, "node", NODE_KEYS);
        let name = match table.get("name") {
            Some(value) => self
                .string(value, "node.name")
                .and_then(|name| self.node_name(&name, value.span(), "node.name", false)),
            None => match hostname {
                Some(hostname) => self.node_name(hostname, 0..0, "node.name", true),
                None => {
                    self.error(
                        0..0,
                        "node.name",
                        "not set and the hostname could not be read; set node.name",
                    );
                    None
                }
            },
        };
        let control_socket = self.path_value(
            table.get("control_socket"),
            "node.control_socket",
            DEFAULT_CONTROL_SOCKET,
            Some(MAX_SOCKET_PATH_LEN),
        );
        let state_dir = self.path_value(
            table.get("state_dir"),
            "node.state_dir",
            DEFAULT_STATE_DIR,
            None,
        );
        let status_group = match table.get("status_group") {
            Some(value) => self.status_group(value).map(Some),
            None => Some(None),
        };
        Some(Node {
            name: name?,
            control_socket: control_socket?,
            state_dir: state_dir?,
            status_group: status_group?,
        })
    }

    fn vrrp(&mut self, table: &DeTable<'_>, table_span: Range<usize>) -> Option<Vrrp> {
        self.unknown_keys(table, "vrrp", VRRP_KEYS);
        let interface = self
            .required(table, "interface", &table_span)
            .and_then(|value| self.interface(value));
        let vrid = self
            .required(table, "vrid", &table_span)
            .and_then(|value| self.integer(value, "vrrp.vrid", 1..=255, "1..=255"));
        // RFC 5798 §5.2.4: 0 is reserved for a master that resigns, 255 for
        // the router that owns the virtual addresses.
        let priority = self.optional(table, "priority", 100, |reader, value| {
            reader.integer(
                value,
                "vrrp.priority",
                1..=255,
                "1..=254, or 255 for the address owner",
            )
        });
        let advert_interval =
            self.advert_interval(table.get("advert_interval"), "vrrp.advert_interval");
        let virtual_ips = self
            .required(table, "virtual_ips", &table_span)
            .and_then(|value| self.virtual_ips_any(value, "vrrp.virtual_ips", false));
        let ipv6 = match &virtual_ips {
            Some(Vips::V6(_)) => Some(true),
            Some(Vips::V4(_)) => Some(false),
            None => None,
        };
        let preempt = self.optional(table, "preempt", true, |reader, value| {
            reader.boolean(value, "vrrp.preempt")
        });
        let preempt_delay = self.duration_in(
            table.get("preempt_delay"),
            "vrrp.preempt_delay",
            Duration::ZERO,
            Duration::ZERO..=Duration::from_secs(3600),
        );
        let unicast_peers = match table.get("unicast_peers") {
            Some(value) if ipv6 == Some(true) => {
                self.no_unicast_over_ipv6(value);
                None
            }
            Some(value) => self.unicast_peers(value),
            None => Some(Vec::new()),
        };
        let checksum = self.optional(table, "checksum", ChecksumMode::PseudoHeader, |r, v| {
            r.checksum(v)
        });
        if let (Some(true), Some(ChecksumMode::NoPseudoHeader), Some(value)) =
            (ipv6, checksum, table.get("checksum"))
        {
            self.no_checksum_choice_over_ipv6(value);
        }
        let source_address = match table.get("source_address") {
            Some(value) => self
                .source_address(value, "vrrp.source_address", ipv6)
                .map(Some),
            None => Some(None),
        };
        let garp_master_repeat = self.optional(table, "garp_master_repeat", 5, |reader, value| {
            reader.integer(value, "vrrp.garp_master_repeat", 1..=100, "1..=100")
        });
        let garp_interval = self.duration_in(
            table.get("garp_interval"),
            "vrrp.garp_interval",
            Duration::from_millis(10),
            Duration::ZERO..=Duration::from_secs(1),
        );
        let garp_master_delay = self.duration_in(
            table.get("garp_master_delay"),
            "vrrp.garp_master_delay",
            Duration::from_secs(5),
            Duration::ZERO..=Duration::from_secs(3600),
        );

        if let (Some(Vips::V4(vips)), Some(peers)) = (&virtual_ips, &unicast_peers) {
            self.peers_are_not_vips(vips, peers);
        }
        match (&virtual_ips, &source_address) {
            (Some(Vips::V4(vips)), Some(Some(Source::V4(source)))) => {
                self.source_is_not_a_vip(table, vips, *source);
            }
            (Some(Vips::V6(vips)), Some(Some(Source::V6(source)))) => {
                self.source_is_not_a_vip6(table, "vrrp", vips, *source);
            }
            _ => {}
        }
        let (virtual_ips, virtual_ips6) = match virtual_ips? {
            Vips::V4(vips) => (vips.into_iter().map(|(vip, _)| vip).collect(), Vec::new()),
            Vips::V6(vips) => (Vec::new(), vips.into_iter().map(|(vip, _)| vip).collect()),
        };
        let (source_address, source_address6) = match source_address? {
            Some(Source::V4(source)) => (Some(source), None),
            Some(Source::V6(source)) => (None, Some(source)),
            None => (None, None),
        };

        Some(Vrrp {
            interface: interface?,
            vrid: u8::try_from(vrid?).ok()?,
            priority: u8::try_from(priority?).ok()?,
            advert_interval: advert_interval?,
            virtual_ips,
            virtual_ips6,
            preempt: preempt?,
            preempt_delay: preempt_delay?,
            unicast_peers: unicast_peers?.into_iter().map(|(peer, _)| peer).collect(),
            checksum: checksum?,
            source_address,
            source_address6,
            garp_master_repeat: u32::try_from(garp_master_repeat?).ok()?,
            garp_interval: garp_interval?,
            garp_master_delay: garp_master_delay?,
        })
    }

    // ---- tables and keys -------------------------------------------------

    fn unknown_keys(&mut self, table: &DeTable<'_>, prefix: &str, accepted: &[&str]) {
        for (key, _) in table.iter() {
            let name: &str = key.get_ref();
            if !accepted.contains(&name) {
                let dotted = dotted(prefix, name);
                let place = if prefix.is_empty() {
                    "at the top level".to_string()
                } else {
                    format!("in [{prefix}]")
                };
                self.error(
                    key.span(),
                    &dotted,
                    format!("unknown key (accepted {place}: {})", accepted.join(", ")),
                );
            }
        }
    }

    fn table<'a, 'i>(&mut self, value: &'a Value<'i>, key: &str) -> Option<&'a DeTable<'i>> {
        match value.get_ref() {
            DeValue::Table(table) => Some(table),
            other => {
                self.wrong_type(value.span(), key, "a table", other);
                None
            }
        }
    }

    fn required<'a, 'i>(
        &mut self,
        table: &'a DeTable<'i>,
        name: &str,
        table_span: &Range<usize>,
    ) -> Option<&'a Value<'i>> {
        let value = table.get(name);
        if value.is_none() {
            self.error(
                table_span.clone(),
                &dotted("vrrp", name),
                "missing; this key is required",
            );
        }
        value
    }

    /// A required key of `[section]`; `why` says what it is for.
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

    /// The value of an optional key, its default when absent, `None` when
    /// present but invalid (the error is recorded).
    fn optional<T>(
        &mut self,
        table: &DeTable<'_>,
        name: &str,
        default: T,
        convert: impl FnOnce(&mut Self, &Value<'_>) -> Option<T>,
    ) -> Option<T> {
        match table.get(name) {
            Some(value) => convert(self, value),
            None => Some(default),
        }
    }

    /// Records that `value` (shown as `shown`) is listed at `span`. When it
    /// was listed before, reports it where it repeats, naming the first
    /// place (plus `note`), and returns false.
    fn first_listing<K: std::hash::Hash + Eq>(
        &mut self,
        seen: &mut HashMap<K, Range<usize>>,
        value: K,
        shown: &str,
        span: &Range<usize>,
        key: &str,
        note: &str,
    ) -> bool {
        if let Some(first) = seen.get(&value) {
            let (line, column) = super::error::line_column(self.text, first.start);
            self.error(
                span.clone(),
                key,
                format!("{shown} is listed twice (first at line {line}, column {column}){note}"),
            );
            return false;
        }
        seen.insert(value, span.clone());
        true
    }

    fn wrong_type(&mut self, span: Range<usize>, key: &str, expected: &str, found: &DeValue<'_>) {
        self.error(
            span,
            key,
            format!("expected {expected}, found {}", article(found.type_str())),
        );
    }

    // ---- scalar types ----------------------------------------------------

    fn string(&mut self, value: &Value<'_>, key: &str) -> Option<String> {
        match value.get_ref() {
            DeValue::String(text) => Some(text.to_string()),
            other => {
                self.wrong_type(value.span(), key, "a string", other);
                None
            }
        }
    }

    fn boolean(&mut self, value: &Value<'_>, key: &str) -> Option<bool> {
        match value.get_ref() {
            DeValue::Boolean(flag) => Some(*flag),
            other => {
                self.wrong_type(value.span(), key, "true or false", other);
                None
            }
        }
    }

    fn integer(
        &mut self,
        value: &Value<'_>,
        key: &str,
        range: RangeInclusive<i128>,
        accepted: &str,
    ) -> Option<i128> {
        let DeValue::Integer(integer) = value.get_ref() else {
            self.wrong_type(
                value.span(),
                key,
                &format!("an integer ({accepted})"),
                value.get_ref(),
            );
            return None;
        };
        match i128::from_str_radix(integer.as_str(), integer.radix()) {
            Ok(number) if range.contains(&number) => Some(number),
            Ok(number) => {
                self.error(
                    value.span(),
                    key,
                    format!("{number} is out of range ({accepted})"),
                );
                None
            }
            Err(_) => {
                self.error(
                    value.span(),
                    key,
                    format!("{integer} is out of range ({accepted})"),
                );
                None
            }
        }
    }

    fn duration(&mut self, value: &Value<'_>, key: &str) -> Option<Duration> {
        let DeValue::String(text) = value.get_ref() else {
            self.wrong_type(
                value.span(),
                key,
                "a duration string such as \"1s\" or \"100ms\"",
                value.get_ref(),
            );
            return None;
        };
        match duration::parse(text) {
            Ok(parsed) => Some(parsed),
            Err(error) => {
                self.error(value.span(), key, error.to_string());
                None
            }
        }
    }

    fn duration_in(
        &mut self,
        value: Option<&Value<'_>>,
        key: &str,
        default: Duration,
        range: RangeInclusive<Duration>,
    ) -> Option<Duration> {
        let Some(value) = value else {
            return Some(default);
        };
        let parsed = self.duration(value, key)?;
        if range.contains(&parsed) {
            Some(parsed)
        } else {
            self.error(
                value.span(),
                key,
                format!(
                    "{} is out of range ({}..={})",
                    duration::format(parsed),
                    duration::format(*range.start()),
                    duration::format(*range.end())
                ),
            );
            None
        }
    }

    // ---- vrrp keys -------------------------------------------------------

    fn interface(&mut self, value: &Value<'_>) -> Option<String> {
        self.interface_at(value, "vrrp.interface")
    }

    /// An interface name at `key` (`vrrp.interface`, `vrrp6.interface`).
    fn interface_at(&mut self, value: &Value<'_>, key: &str) -> Option<String> {
        let name = self.string(value, key)?;
        let usable = !name.is_empty()
            && name.len() <= MAX_INTERFACE_LEN
            && name.bytes().all(|b| b.is_ascii_graphic() && b != b'/');
        if usable {
            Some(name)
        } else {
            self.error(
                value.span(),
                key,
                format!(
                    "{name:?} is not an interface name (1..={MAX_INTERFACE_LEN} printable ASCII characters, no '/' or spaces, e.g. \"em0\")"
                ),
            );
            None
        }
    }

    /// RFC 5798 §5.2.7: the interval is carried in centiseconds in 12 bits.
    fn advert_interval(&mut self, value: Option<&Value<'_>>, key: &str) -> Option<Centis> {
        const ACCEPTED: &str = "10ms..=40.95s, in steps of 10ms";
        let Some(value) = value else {
            return Some(Centis(100));
        };
        let parsed = self.duration(value, key)?;
        let nanos = parsed.as_nanos();
        let centis = nanos / 10_000_000;
        if nanos % 10_000_000 != 0 {
            self.error(
                value.span(),
                key,
                format!(
                    "{} is not a multiple of 10ms ({ACCEPTED})",
                    duration::format(parsed)
                ),
            );
            return None;
        }
        match u16::try_from(centis) {
            Ok(centis) if (1..=Centis::MAX.0).contains(&centis) => Some(Centis(centis)),
            _ => {
                self.error(
                    value.span(),
                    key,
                    format!("{} is out of range ({ACCEPTED})", duration::format(parsed)),
                );
                None
            }
        }
    }

    fn checksum(&mut self, value: &Value<'_>) -> Option<ChecksumMode> {
        const ACCEPTED: &str = "\"pseudo-header\" or \"no-pseudo-header\"";
        let text = match value.get_ref() {
            DeValue::String(text) => text,
            other => {
                self.wrong_type(value.span(), "vrrp.checksum", ACCEPTED, other);
                return None;
            }
        };
        match text.as_ref() {
            "pseudo-header" => Some(ChecksumMode::PseudoHeader),
            "no-pseudo-header" => Some(ChecksumMode::NoPseudoHeader),
            other => {
                self.error(
                    value.span(),
                    "vrrp.checksum",
                    format!("{other:?} is not a checksum form (accepted: {ACCEPTED})"),
                );
                None
            }
        }
    }

    fn string_array(
        &mut self,
        value: &Value<'_>,
        key: &str,
    ) -> Option<Vec<(String, Range<usize>, String)>> {
        let DeValue::Array(items) = value.get_ref() else {
            self.wrong_type(value.span(), key, "an array of strings", value.get_ref());
            return None;
        };
        let mut strings = Vec::with_capacity(items.len());
        let mut all_strings = true;
        for (index, item) in items.iter().enumerate() {
            let item_key = format!("{key}[{index}]");
            match self.string(item, &item_key) {
                Some(text) => strings.push((text, item.span(), item_key)),
                None => all_strings = false,
            }
        }
        all_strings.then_some(strings)
    }

    /// The IPv4 list of [`Self::virtual_ips_any`]: the entries are
    /// already known to be IPv4 (no ':').
    fn virtual_ips(
        &mut self,
        items: Vec<(String, Range<usize>, String)>,
    ) -> Option<Vec<(VirtualIp, Range<usize>)>> {
        self.vip_list(
            items,
            |reader, _, text, span, key| reader.virtual_ip(text, span, key),
            |vip| vip.address,
        )
    }

    /// A list of virtual addresses of one family: each entry read by
    /// `one` (given its index; it reports its own errors), every address
    /// listed once. `None` when any entry was refused.
    fn vip_list<V, A>(
        &mut self,
        items: Vec<(String, Range<usize>, String)>,
        mut one: impl FnMut(&mut Self, usize, &str, Range<usize>, &str) -> Option<V>,
        address: impl Fn(&V) -> A,
    ) -> Option<Vec<(V, Range<usize>)>>
    where
        A: std::hash::Hash + Eq + std::fmt::Display,
    {
        let mut vips = Vec::with_capacity(items.len());
        let mut first_seen: HashMap<A, Range<usize>> = HashMap::new();
        let mut all_valid = true;
        for (index, (text, span, item_key)) in items.into_iter().enumerate() {
            let Some(vip) = one(self, index, &text, span.clone(), &item_key) else {
                all_valid = false;
                continue;
            };
            let addr = address(&vip);
            let shown = addr.to_string();
            if !self.first_listing(&mut first_seen, addr, &shown, &span, &item_key, "") {
                all_valid = false;
                continue;
            }
            vips.push((vip, span));
        }
        all_valid.then_some(vips)
    }

    fn virtual_ip(&mut self, text: &str, span: Range<usize>, key: &str) -> Option<VirtualIp> {
        let (address_text, prefix_text) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let address = self.unicast_address(address_text, span.clone(), key)?;
        let prefix_len = match prefix_text {
            None => 32,
            Some(prefix) => match prefix.parse::<u8>() {
                Ok(len) if (1..=32).contains(&len) => len,
                _ => {
                    self.error(
                        span,
                        key,
                        format!("{text:?}: the prefix length must be 1..=32 (e.g. \"192.168.10.200/24\"; without it, /32)"),
                    );
                    return None;
                }
            },
        };
        // On a /30 or wider the all-ones host address is the subnet's broadcast.
        if prefix_len <= 30 {
            let host_mask = u32::MAX >> prefix_len;
            let host_bits = u32::from(address) & host_mask;
            if host_bits == host_mask || host_bits == 0 {
                let what = if host_bits == 0 {
                    "network"
                } else {
                    "broadcast"
                };
                self.error(
                    span,
                    key,
                    format!("{text} is the {what} address of its /{prefix_len} subnet; use a host address"),
                );
                return None;
            }
        }
        Some(VirtualIp {
            address,
            prefix_len,
        })
    }

    /// An IPv4 address that can be a host's unicast address.
    fn unicast_address(&mut self, text: &str, span: Range<usize>, key: &str) -> Option<Ipv4Addr> {
        let Ok(address) = text.parse::<Ipv4Addr>() else {
            self.error(
                span,
                key,
                format!("{text:?} is not an IPv4 address (dotted quad, e.g. \"192.168.10.201\")"),
            );
            return None;
        };
        let problem = if address.is_unspecified() {
            Some("the unspecified address")
        } else if address.is_broadcast() {
            Some("the broadcast address")
        } else if address.is_multicast() {
            Some("a multicast address")
        } else if address.is_loopback() {
            Some("a loopback address")
        } else {
            None
        };
        match problem {
            Some(problem) => {
                self.error(
                    span,
                    key,
                    format!("{address} is {problem}; a unicast host address is required"),
                );
                None
            }
            None => Some(address),
        }
    }

    fn unicast_peers(&mut self, value: &Value<'_>) -> Option<Vec<(Ipv4Addr, Range<usize>)>> {
        let items = self.string_array(value, "vrrp.unicast_peers")?;
        let mut peers: Vec<(Ipv4Addr, Range<usize>)> = Vec::with_capacity(items.len());
        let mut seen: HashMap<Ipv4Addr, Range<usize>> = HashMap::new();
        let mut all_valid = true;
        for (text, span, item_key) in items {
            let Some(peer) = self.unicast_address(&text, span.clone(), &item_key) else {
                all_valid = false;
                continue;
            };
            if !self.first_listing(&mut seen, peer, &peer.to_string(), &span, &item_key, "") {
                all_valid = false;
                continue;
            }
            peers.push((peer, span));
        }
        all_valid.then_some(peers)
    }

    // ---- checks across keys ----------------------------------------------

    fn peers_are_not_vips(
        &mut self,
        vips: &[(VirtualIp, Range<usize>)],
        peers: &[(Ipv4Addr, Range<usize>)],
    ) {
        for (index, (peer, span)) in peers.iter().enumerate() {
            if vips.iter().any(|(vip, _)| vip.address == *peer) {
                self.error(
                    span.clone(),
                    &format!("vrrp.unicast_peers[{index}]"),
                    format!("{peer} is a virtual IP; peers are the other nodes' own addresses"),
                );
            }
        }
    }

    fn source_is_not_a_vip(
        &mut self,
        table: &DeTable<'_>,
        vips: &[(VirtualIp, Range<usize>)],
        source: Ipv4Addr,
    ) {
        if vips.iter().any(|(vip, _)| vip.address == source) {
            let span = table
                .get("source_address")
                .map_or(0..0, |value| value.span());
            self.error(
                span,
                "vrrp.source_address",
                format!("{source} is a virtual IP; the source must be this node's own address (it moves with no VIP)"),
            );
        }
    }

    // ---- node keys -------------------------------------------------------

    fn node_name(
        &mut self,
        name: &str,
        span: Range<usize>,
        key: &str,
        from_hostname: bool,
    ) -> Option<String> {
        let usable = !name.is_empty()
            && name.chars().count() <= MAX_NODE_NAME_LEN
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if usable {
            return Some(name.to_string());
        }
        let rule = format!("1..={MAX_NODE_NAME_LEN} characters from A-Z a-z 0-9 - _ .");
        let message = if from_hostname {
            format!("not set, and the hostname {name:?} is not a usable node name ({rule}); set node.name")
        } else {
            format!("{name:?} is not a usable node name ({rule})")
        };
        self.error(span, key, message);
        None
    }

    /// `node.status_group`: a group name, as pw(8) accepts it.
    fn status_group(&mut self, value: &Value<'_>) -> Option<String> {
        const KEY: &str = "node.status_group";
        let name = self.string(value, KEY)?;
        let usable = !name.is_empty()
            && name.len() <= MAX_GROUP_NAME_LEN
            && !name.starts_with('-')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if usable {
            Some(name)
        } else {
            self.error(
                value.span(),
                KEY,
                format!("{name:?} is not a group name (1..={MAX_GROUP_NAME_LEN} characters from A-Z a-z 0-9 - _ ., not starting with '-')"),
            );
            None
        }
    }

    fn path_value(
        &mut self,
        value: Option<&Value<'_>>,
        key: &str,
        default: &str,
        max_len: Option<usize>,
    ) -> Option<PathBuf> {
        let Some(value) = value else {
            return Some(PathBuf::from(default));
        };
        let text = self.string(value, key)?;
        let problem = if !text.starts_with('/') {
            Some("must be an absolute path".to_string())
        } else if text.contains('\0') {
            Some("must not contain NUL".to_string())
        } else if text.len() > 1 && text.ends_with('/') && max_len.is_some() {
            Some("must name a file, not a directory".to_string())
        } else {
            max_len.filter(|max| text.len() > *max).map(|max| {
                format!(
                    "is {} bytes long; a Unix socket path holds at most {max}",
                    text.len()
                )
            })
        };
        match problem {
            Some(problem) => {
                self.error(value.span(), key, format!("{text:?} {problem}"));
                None
            }
            None => Some(PathBuf::from(text)),
        }
    }

    /// [`Self::path_value`], also refusing `/`, `.` and `..`.
    fn clean_path(
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
}

/// Names CBSD, HAST and ZFS accept and that need no quoting anywhere
/// (argv, exports(5) lines, paths).
fn is_plain_name(text: &str) -> bool {
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

fn dotted(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

fn article(type_name: &str) -> String {
    match type_name.chars().next() {
        Some('a' | 'e' | 'i' | 'o' | 'u') => format!("an {type_name}"),
        _ => format!("a {type_name}"),
    }
}
