//! Reading `[[environment]]`: each a literal environment name (listed
//! once), its kind and the nodes that may run it, most preferred first,
//! each listed once. What ties it to `[cluster]` (it needs one; the nodes
//! are members) and to `[node]` and `[cbsd]` (this node runs it only with
//! `[cbsd]`) is checked in `cross_checks.rs`.

use std::collections::HashMap;
use std::ops::Range;

use toml::de::{DeTable, DeValue};

use super::{is_plain_name, Reader, Value};
use crate::config::cluster::Cluster;
use crate::config::environment::PlacedEnvironment;
use crate::config::EnvKind;

const ENVIRONMENT_KEYS: &[&str] = &["name", "kind", "nodes", "failback"];

/// CBSD's own limit on jail names is not documented; 64 matches node names
/// and keeps `status` lines readable.
const MAX_ENVIRONMENT_NAME_LEN: usize = 64;

impl Reader<'_> {
    /// Every `[[environment]]`, checked against `[cluster]` (`cluster_given`:
    /// the table is present, even if invalid; `cluster`: its valid content).
    pub(super) fn placement_section(
        &mut self,
        root: &DeTable<'_>,
        cluster_given: bool,
        cluster: Option<&Cluster>,
        this_node: Option<&str>,
        has_cbsd: bool,
    ) -> Option<Vec<PlacedEnvironment>> {
        let Some(value) = root.get("environment") else {
            return Some(Vec::new());
        };
        let DeValue::Array(items) = value.get_ref() else {
            self.wrong_type(
                value.span(),
                "environment",
                "an array of tables (one [[environment]] per jail or VM)",
                value.get_ref(),
            );
            return None;
        };
        if !cluster_given {
            let span = items.first().map_or(value.span(), |first| first.span());
            self.placement_without_cluster(span);
            return None;
        }
        let mut placed = Vec::with_capacity(items.len());
        let mut names: HashMap<String, Range<usize>> = HashMap::new();
        let mut valid = true;
        for (index, item) in items.iter().enumerate() {
            let key = format!("environment[{index}]");
            let Some((environment, name_span)) = self.placed_environment(item, &key, cluster)
            else {
                valid = false;
                continue;
            };
            let shown = format!("{:?}", environment.name);
            valid &= self.first_listing(
                &mut names,
                environment.name.clone(),
                &shown,
                &name_span,
                &format!("{key}.name"),
                "; one [[environment]] per jail or VM",
            );
            if let Some(name) = this_node {
                if !self.this_node_can_run(&environment, name, has_cbsd, item.span(), &key, &shown)
                {
                    valid = false;
                }
            }
            placed.push(environment);
        }
        valid.then_some(placed)
    }

    fn placed_environment(
        &mut self,
        item: &Value<'_>,
        key: &str,
        cluster: Option<&Cluster>,
    ) -> Option<(PlacedEnvironment, Range<usize>)> {
        let DeValue::Table(table) = item.get_ref() else {
            self.wrong_type(item.span(), key, "a table", item.get_ref());
            return None;
        };
        self.unknown_keys(table, key, ENVIRONMENT_KEYS);
        let name_key = format!("{key}.name");
        let name = match table.get("name") {
            Some(value) => self
                .string(value, &name_key)
                .and_then(|name| self.environment_name(name, value.span(), &name_key))
                .map(|name| (name, value.span())),
            None => {
                self.error(
                    item.span(),
                    &name_key,
                    "missing; the CBSD name of the jail or VM",
                );
                None
            }
        };
        let kind = self.optional(table, "kind", EnvKind::Jail, |r, v| {
            r.environment_kind(v, &format!("{key}.kind"))
        });
        let nodes_key = format!("{key}.nodes");
        let nodes = match table.get("nodes") {
            Some(value) => self.environment_nodes(value, &nodes_key, cluster),
            None => {
                self.error(
                    item.span(),
                    &nodes_key,
                    "missing; the nodes that may run it, most preferred first, e.g. nodes = [\"node1\", \"node3\"]",
                );
                None
            }
        };
        let failback = self.optional(table, "failback", false, |r, v| {
            r.boolean(v, &format!("{key}.failback"))
        });
        let (name, name_span) = name?;
        Some((
            PlacedEnvironment {
                name,
                kind: kind?,
                nodes: nodes?,
                failback: failback?,
            },
            name_span,
        ))
    }

    fn environment_name(&mut self, name: String, span: Range<usize>, key: &str) -> Option<String> {
        let problem = if name.contains(['*', '?']) {
            Some("is a glob; placement names each environment literally (one [[environment]] per jail or VM)")
        } else if !is_plain_name(&name) || name.chars().count() > MAX_ENVIRONMENT_NAME_LEN {
            Some("is not an environment name (1..=64 characters from A-Z a-z 0-9 - _ ., not starting with '-')")
        } else {
            None
        };
        match problem {
            Some(problem) => {
                self.error(span, key, format!("{name:?} {problem}"));
                None
            }
            None => Some(name),
        }
    }

    fn environment_kind(&mut self, value: &Value<'_>, key: &str) -> Option<EnvKind> {
        const ACCEPTED: &str = "\"jail\" or \"bhyve\"";
        let DeValue::String(text) = value.get_ref() else {
            self.wrong_type(value.span(), key, ACCEPTED, value.get_ref());
            return None;
        };
        match text.as_ref() {
            "jail" => Some(EnvKind::Jail),
            "bhyve" => Some(EnvKind::Bhyve),
            other => {
                self.error(
                    value.span(),
                    key,
                    format!("{other:?} is not an environment kind (accepted: {ACCEPTED})"),
                );
                None
            }
        }
    }

    fn environment_nodes(
        &mut self,
        value: &Value<'_>,
        key: &str,
        cluster: Option<&Cluster>,
    ) -> Option<Vec<String>> {
        let items = self.string_array(value, key)?;
        if items.is_empty() {
            self.error(
                value.span(),
                key,
                "empty; list the nodes that may run it, most preferred first",
            );
            return None;
        }
        let mut nodes = Vec::with_capacity(items.len());
        let mut seen: HashMap<String, Range<usize>> = HashMap::new();
        let mut valid = true;
        for (name, span, item_key) in items {
            // Without a valid [cluster] there is nothing to check membership
            // against; its own errors already say why.
            if let Some(cluster) = cluster {
                if !self.is_cluster_member(cluster, &name, span.clone(), &item_key) {
                    valid = false;
                    continue;
                }
            }
            if !self.first_listing(
                &mut seen,
                name.clone(),
                &format!("{name:?}"),
                &span,
                &item_key,
                "",
            ) {
                valid = false;
                continue;
            }
            nodes.push(name);
        }
        valid.then_some(nodes)
    }
}
