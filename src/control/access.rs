//! Who may do what on the control socket: root may send every request; a
//! member of `node.status_group` may only read `status`; anyone else is
//! turned away at connect.
//!
//! The rule is default deny: [`read_only`] lists what a status reader may
//! send, so a request added to the protocol later needs root until someone
//! decides otherwise here. Pure: the caller supplies the peer's credentials
//! ([`super::peer`]) and gets a decision.

use std::fmt;

use super::peer::Peer;
use super::protocol::Request;

/// The group whose members may read `status` (`node.status_group`), with
/// its gid resolved once when the socket is bound.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusGroup {
    /// The group's name as configured.
    pub name: String,
    /// Its numeric gid.
    pub gid: u32,
}

/// The access rule of one control socket.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    /// `None`: root only.
    pub status_group: Option<StatusGroup>,
}

/// What a connected peer may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Root,
    StatusReader,
}

/// Requests a status reader may send: those that change nothing.
fn read_only(request: &Request) -> bool {
    matches!(request, Request::Status)
}

impl Policy {
    /// Whether deciding about `peer` needs its user's groups (a lookup
    /// that may block, see [`super::peer::with_groups`]).
    pub fn needs_groups(&self, peer: &Peer) -> bool {
        !peer.is_root() && self.status_group.is_some()
    }

    fn role(&self, peer: &Peer) -> Option<Role> {
        if peer.is_root() {
            return Some(Role::Root);
        }
        match &self.status_group {
            Some(group) if peer.in_group(group.gid) => Some(Role::StatusReader),
            _ => None,
        }
    }

    /// Whether `peer` may use the socket at all.
    pub fn admit(&self, peer: &Peer) -> Result<(), Denial> {
        match self.role(peer) {
            Some(_) => Ok(()),
            None => Err(self.denial(peer, None)),
        }
    }

    /// Whether `peer` may send `request`.
    pub fn authorize(&self, peer: &Peer, request: &Request) -> Result<(), Denial> {
        match self.role(peer) {
            Some(Role::Root) => Ok(()),
            Some(Role::StatusReader) if read_only(request) => Ok(()),
            _ => Err(self.denial(peer, Some(request))),
        }
    }

    fn denial(&self, peer: &Peer, request: Option<&Request>) -> Denial {
        let needed = match (&self.status_group, request) {
            (Some(group), None) => format!("root or membership of group {}", group.name),
            (Some(group), Some(request)) if read_only(request) => {
                format!("root or membership of group {}", group.name)
            }
            _ => "root".to_owned(),
        };
        Denial {
            uid: peer.uid,
            gid: peer.gid,
            request: request.map_or_else(|| "connect".to_owned(), command_name),
            needed,
            reader_of: self
                .status_group
                .as_ref()
                .filter(|group| peer.in_group(group.gid))
                .map(|group| group.name.clone()),
        }
    }
}

/// The command name as it appears on the wire (`promote`, ...), taken from
/// the protocol's own serialization so that there is one spelling.
fn command_name(request: &Request) -> String {
    serde_json::to_value(request)
        .ok()
        .and_then(|value| value.get("command")?.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{request:?}").to_lowercase())
}

/// A refused connection or request: the reply's error text and the fields
/// of the `control_denied` log event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Denial {
    /// The peer's effective uid.
    pub uid: u32,
    /// The peer's effective gid.
    pub gid: u32,
    /// The command refused, or `connect` when the peer may send nothing.
    pub request: String,
    /// What the peer would need, in words (`root`, `root or membership
    /// of group operator`).
    pub needed: String,
    /// The status group the peer is a member of, if it is one.
    pub reader_of: Option<String>,
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Denial {
            uid,
            gid,
            request,
            needed,
            reader_of,
        } = self;
        if request == "connect" {
            return write!(
                f,
                "permission denied: peer uid {uid} (gid {gid}) may not use the control socket; it needs {needed}"
            );
        }
        write!(
            f,
            "permission denied: {request} needs {needed}; peer uid {uid} (gid {gid})"
        )?;
        match reader_of {
            Some(group) => write!(f, " is in group {group}, which may only run status"),
            None => write!(f, " is not root"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_request() -> [Request; 7] {
        [
            Request::Status,
            Request::Promote,
            Request::Demote,
            Request::Resume,
            Request::Move {
                environment: "web1".into(),
                node: "node2".into(),
            },
            Request::Hold {
                environment: "web1".into(),
            },
            Request::Release {
                environment: "web1".into(),
            },
        ]
    }

    fn operators() -> Policy {
        Policy {
            status_group: Some(StatusGroup {
                name: "operator".into(),
                gid: 5,
            }),
        }
    }

    fn peer(uid: u32, gid: u32, groups: &[u32]) -> Peer {
        Peer {
            uid,
            gid,
            groups: groups.to_vec(),
        }
    }

    #[test]
    fn root_may_send_every_request_with_or_without_a_status_group() {
        for policy in [Policy::default(), operators()] {
            let root = peer(0, 0, &[]);
            assert_eq!(policy.admit(&root), Ok(()));
            for request in every_request() {
                assert_eq!(policy.authorize(&root, &request), Ok(()), "{request:?}");
            }
        }
    }

    #[test]
    fn a_member_through_a_supplementary_group_may_read_status_only() {
        let policy = operators();
        let member = peer(1001, 1001, &[1001, 5]);
        assert_eq!(policy.admit(&member), Ok(()));
        assert_eq!(policy.authorize(&member, &Request::Status), Ok(()));
        for request in [Request::Promote, Request::Demote, Request::Resume] {
            let denial = policy.authorize(&member, &request).unwrap_err();
            assert_eq!(denial.needed, "root");
            assert_eq!(denial.reader_of.as_deref(), Some("operator"));
        }
    }

    #[test]
    fn a_member_through_its_effective_gid_may_read_status() {
        let member = peer(1001, 5, &[]);
        assert_eq!(operators().authorize(&member, &Request::Status), Ok(()));
    }

    #[test]
    fn a_non_member_is_refused_at_connect_and_for_every_request() {
        let policy = operators();
        let stranger = peer(1001, 1001, &[1001, 20]);
        let denial = policy.admit(&stranger).unwrap_err();
        assert_eq!(denial.request, "connect");
        for request in every_request() {
            assert!(
                policy.authorize(&stranger, &request).is_err(),
                "{request:?}"
            );
        }
    }

    #[test]
    fn without_a_status_group_only_root_gets_in() {
        let policy = Policy::default();
        let user = peer(1001, 5, &[5]);
        let denial = policy.admit(&user).unwrap_err();
        assert_eq!(denial.needed, "root");
        assert!(policy.authorize(&user, &Request::Status).is_err());
    }

    #[test]
    fn a_refused_request_names_itself_the_peer_and_what_is_needed() {
        let member = peer(1001, 1001, &[5]);
        let denial = operators()
            .authorize(&member, &Request::Promote)
            .unwrap_err();
        assert_eq!(
            denial.to_string(),
            "permission denied: promote needs root; peer uid 1001 (gid 1001) is in group operator, which may only run status"
        );
    }

    #[test]
    fn a_refused_connection_names_the_peer_and_what_is_needed() {
        let stranger = peer(1001, 1001, &[]);
        let denial = operators().admit(&stranger).unwrap_err();
        assert_eq!(
            denial.to_string(),
            "permission denied: peer uid 1001 (gid 1001) may not use the control socket; it needs root or membership of group operator"
        );
    }

    #[test]
    fn command_names_are_the_wire_spelling() {
        let names: Vec<String> = every_request().iter().map(command_name).collect();
        assert_eq!(
            names,
            ["status", "promote", "demote", "resume", "move", "hold", "release"]
        );
    }
}
