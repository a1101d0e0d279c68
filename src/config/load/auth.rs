//! Reading `[auth]`: `key_file` (required) and `accept_key_file` are
//! clean absolute paths, and not the same file. Ownership and mode are
//! checked when the agent starts, not here.

use toml::de::DeTable;

use super::Reader;
use crate::config::auth::Auth;

const AUTH_KEYS: &[&str] = &["key_file", "accept_key_file"];

impl Reader<'_> {
    /// `[auth]`: `Some(None)` when absent, `None` when invalid.
    pub(super) fn auth_section(&mut self, root: &DeTable<'_>) -> Option<Option<Auth>> {
        let Some(value) = root.get("auth") else {
            return Some(None);
        };
        let table = self.table(value, "auth")?;
        self.unknown_keys(table, "auth", AUTH_KEYS);
        let key_file = match table.get("key_file") {
            Some(key_file) => self.clean_path(Some(key_file), "auth.key_file", ""),
            None => {
                self.error(
                    value.span(),
                    "auth.key_file",
                    "missing; the file holding the cluster's shared key, e.g. key_file = \"/usr/local/etc/rcbsd-failover.key\" (owned by root, mode 0600)",
                );
                None
            }
        };
        let accept_key_file = match table.get("accept_key_file") {
            Some(accept) => self
                .clean_path(Some(accept), "auth.accept_key_file", "")
                .map(Some),
            None => Some(None),
        };
        if let (Some(signing), Some(Some(accepted)), Some(accept)) =
            (&key_file, &accept_key_file, table.get("accept_key_file"))
        {
            if signing == accepted {
                self.error(
                    accept.span(),
                    "auth.accept_key_file",
                    "is key_file again; it names the *other* key accepted during a rotation (the new one before it signs, or the old one after)",
                );
                return None;
            }
        }
        Some(Some(Auth {
            key_file: key_file?,
            accept_key_file: accept_key_file?,
        }))
    }
}
