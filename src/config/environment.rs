//! `[[environment]]`: which nodes may run each CBSD jail or VM, most
//! preferred first (read and checked in `load/environment.rs`). Meant to
//! be identical on every node; [`super::Config::cluster_hash`] lets the
//! nodes compare them. Only with `[cluster]`.

use super::EnvKind;

/// One `[[environment]]`: a CBSD jail or VM and the nodes that may run it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PlacedEnvironment {
    /// The CBSD name, literal (no globs).
    pub name: String,
    /// `kind`: jail or bhyve VM (default jail).
    pub kind: EnvKind,
    /// Members of `cluster.nodes`, unique, most preferred first; never empty.
    pub nodes: Vec<String>,
    /// Whether the environment moves back to a more preferred node when it
    /// returns (otherwise only `rcbsd-failover move` does that).
    pub failback: bool,
}

impl PlacedEnvironment {
    /// `node`'s place in the preference list (0 = most preferred); `None`
    /// when `node` may not run this environment.
    pub fn preference(&self, node: &str) -> Option<usize> {
        self.nodes.iter().position(|candidate| candidate == node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preference_is_the_position_in_the_node_list() {
        let web = PlacedEnvironment {
            name: "web1".into(),
            kind: EnvKind::Jail,
            nodes: vec!["node3".into(), "node1".into()],
            failback: false,
        };
        assert_eq!(web.preference("node3"), Some(0));
        assert_eq!(web.preference("node1"), Some(1));
        assert_eq!(web.preference("node2"), None);
    }
}
