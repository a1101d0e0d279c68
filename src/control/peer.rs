//! Who is on the other end of a control connection: the peer's uid and gid
//! as the kernel recorded them at `connect(2)`, and the groups its user
//! belongs to.
//!
//! The kernel's record cannot be forged by the client, unlike anything it
//! sends. Linux gives it with `SO_PEERCRED`, FreeBSD with getpeereid(3)
//! (unix(4) `LOCAL_PEERCRED` underneath); both are the effective ids at
//! connect time, which is what we want: a process that drops privileges
//! after connecting keeps the rights it connected with, and no more.

use std::io;
use std::os::fd::AsFd;

use nix::unistd::{Gid, Uid, User};

/// The credentials of a connected peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    /// The peer process's effective uid at connect(2).
    pub uid: u32,
    /// The peer process's effective gid.
    pub gid: u32,
    /// Every group the peer's user belongs to (primary and supplementary,
    /// from the group database), plus `gid`. Empty when not looked up.
    pub groups: Vec<u32>,
}

impl Peer {
    /// Whether the peer is uid 0.
    pub fn is_root(&self) -> bool {
        self.uid == 0
    }

    /// Whether the peer is in group `gid`, by its own gid or its user's
    /// groups.
    pub fn in_group(&self, gid: u32) -> bool {
        self.gid == gid || self.groups.contains(&gid)
    }
}

/// The uid and gid the kernel recorded for the peer of a connected Unix
/// stream socket. `groups` is left empty: see [`with_groups`].
pub fn credentials(socket: impl AsFd) -> io::Result<Peer> {
    let (uid, gid) = peer_ids(socket)?;
    Ok(Peer {
        uid,
        gid,
        groups: Vec::new(),
    })
}

#[cfg(target_os = "linux")]
fn peer_ids(socket: impl AsFd) -> io::Result<(u32, u32)> {
    use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
    let credentials = getsockopt(&socket, PeerCredentials)?;
    Ok((credentials.uid(), credentials.gid()))
}

#[cfg(target_os = "freebsd")]
fn peer_ids(socket: impl AsFd) -> io::Result<(u32, u32)> {
    let (uid, gid) = nix::unistd::getpeereid(socket)?;
    Ok((uid.as_raw(), gid.as_raw()))
}

#[cfg(not(any(target_os = "linux", target_os = "freebsd")))]
fn peer_ids(_socket: impl AsFd) -> io::Result<(u32, u32)> {
    // Without the peer's identity every non-root request must be refused,
    // and root cannot be told apart either: refuse everything.
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "peer credentials of a Unix socket are not implemented on this platform",
    ))
}

/// `peer` with `groups` filled from the group database, so that a user who
/// is in a group only as a supplementary member counts as a member.
///
/// This reads the user and group databases (files, or NIS/LDAP through
/// nsswitch), which may block: call it off the async runtime. A uid with
/// no user entry, or a failed lookup, leaves only the peer's own gid: a
/// lookup failure can only narrow what the peer may do, never widen it.
pub fn with_groups(mut peer: Peer) -> Peer {
    peer.groups = user_groups(peer.uid).unwrap_or_default();
    if !peer.groups.contains(&peer.gid) {
        peer.groups.push(peer.gid);
    }
    peer
}

fn user_groups(uid: u32) -> Option<Vec<u32>> {
    let user = User::from_uid(Uid::from_raw(uid)).ok()??;
    let name = std::ffi::CString::new(user.name).ok()?;
    let groups = nix::unistd::getgrouplist(&name, user.gid).ok()?;
    Some(groups.into_iter().map(Gid::as_raw).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;

    #[test]
    fn the_peer_of_a_socket_pair_is_this_process() {
        let (ours, _theirs) = UnixStream::pair().unwrap();
        let peer = credentials(&ours).unwrap();
        assert_eq!(peer.uid, nix::unistd::geteuid().as_raw());
        assert_eq!(peer.gid, nix::unistd::getegid().as_raw());
        assert!(peer.groups.is_empty());
    }

    #[test]
    fn with_groups_includes_the_user_primary_group_and_the_peer_gid() {
        let uid = nix::unistd::geteuid();
        let peer = with_groups(Peer {
            uid: uid.as_raw(),
            gid: 4_000_000,
            groups: Vec::new(),
        });
        assert!(peer.groups.contains(&4_000_000), "{:?}", peer.groups);
        let user = User::from_uid(uid)
            .unwrap()
            .expect("the test user has an entry in the user database");
        assert!(
            peer.groups.contains(&user.gid.as_raw()),
            "{:?}",
            peer.groups
        );
    }

    #[test]
    fn a_uid_without_a_user_entry_has_only_its_own_gid() {
        // Far above any uid a system allocates.
        let peer = with_groups(Peer {
            uid: 3_999_999_999,
            gid: 4242,
            groups: Vec::new(),
        });
        assert_eq!(peer.groups, vec![4242]);
    }

    #[test]
    fn membership_counts_the_own_gid_and_the_user_groups() {
        let peer = Peer {
            uid: 1001,
            gid: 1001,
            groups: vec![1001, 5],
        };
        assert!(peer.in_group(1001));
        assert!(peer.in_group(5));
        assert!(!peer.in_group(0));
        assert!(!peer.is_root());
    }
}
