//! Reading `[storage]`: the kind (`none`, `hast`, `zfs`) with the keys it
//! needs and no keys of another kind, a clean absolute root, plain resource,
//! pool and file system names. That the root stays apart from
//! `cbsd.workdir` is checked in `cross_checks.rs`.

use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::de::DeTable;

use super::{is_plain_name, Reader};
use crate::config::storage::{Storage, StorageKind, DEFAULT_STORAGE_ROOT};

const STORAGE_KEYS: &[&str] = &["kind", "root", "resource", "fstype", "device", "pool"];

impl Reader<'_> {
    /// `[storage]`: `Some(None)` when absent, `None` when invalid.
    /// `workdir`: `cbsd.workdir`, when `[cbsd]` is valid.
    pub(super) fn storage_section(
        &mut self,
        root: &DeTable<'_>,
        workdir: Option<&Path>,
    ) -> Option<Option<Storage>> {
        self.section(root, "storage", |r, t, span| r.storage(t, span, workdir))
    }

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
            self.storage_root_apart_from_workdir(table, &span, root, workdir);
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
}
