//! The cluster heartbeat (issue 5 point 1): one UDP datagram that every
//! node sends to every other node of `[cluster] nodes`, carrying what the
//! quorum and placement logic needs to know about its sender.
//!
//! ```text
//! magic "RCHB" (4) | version 2 (1) | flags (1, bit 0 = authenticated)
//! node (name) | incarnation (u64) | seq (u64)
//! state (u8: 0 initialize, 1 backup, 2 master, 3 fault) | priority (u8)
//! status (u8: bit 0 quorum, bit 1 handing over, bit 2 quiesced, bit 3 serving,
//!     bit 4 reclaimable)
//! following (u8 0 = none, 1 + IPv4 address (4), or 2 + IPv6 address (16))
//! config_hash (u64) | quorum_hash (u64)
//! acks:    count (u16), each: node (name) | incarnation (u64) | seq (u64)
//! claims:  count (u16), each: resource
//! grants:  count (u16), each: resource | holder (name)
//! running: count (u16), each: name
//! handoffs: count (u16), each: environment (name) | to (name)
//! [tag (32): HMAC-SHA256 over every byte before it, when authenticated]
//! ```
//!
//! The status byte was the quorum flag (0 or 1) before planned hand-overs;
//! an agent that knows only that rejects a heartbeat with bit 1 or 2 set
//! ("status value out of range") as it rejects any unknown bit. Bit 3
//! (serving, issue 14) is set only by a master whose configuration asks
//! for ride-through (`follow.on_master_change`), so that a cluster not
//! using it keeps talking to agents that predate the bit; ride-through is
//! turned on once every node runs an agent that knows it. Bit 4
//! (reclaimable, issue 14) likewise: only a serving master with
//! ride-through configured sets it, when its nfsd started with the stable
//! restart records on the storage.
//!
//! Integers are big-endian. A name is a length byte then 1 to 63 bytes of
//! `[A-Za-z0-9._-]`. A resource is a kind byte, 0 = master, or 1 = an
//! environment followed by its name. Nothing may follow the last field
//! (but the tag). The datagram is at most [`MAX_DATAGRAM`] bytes.
//!
//! Decoding never panics; every error names the field and its offset. With
//! authentication on, the tag is checked before the body is parsed, so
//! forged datagrams cost one HMAC and no allocation.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use thiserror::Error;

use crate::auth::{Keyring, TAG_LEN};
use crate::wire::VrrpState;

/// First bytes of every heartbeat.
pub const MAGIC: [u8; 4] = *b"RCHB";
/// The format version this codec speaks (2: `quorum_hash` added).
pub const VERSION: u8 = 2;
/// Status bits (one byte after the priority).
const STATUS_QUORUM: u8 = 1;
const STATUS_HANDING_OVER: u8 = 1 << 1;
const STATUS_QUIESCED: u8 = 1 << 2;
const STATUS_SERVING: u8 = 1 << 3;
const STATUS_RECLAIMABLE: u8 = 1 << 4;
const STATUS_KNOWN: u8 =
    STATUS_QUORUM | STATUS_HANDING_OVER | STATUS_QUIESCED | STATUS_SERVING | STATUS_RECLAIMABLE;

fn status_bits(hb: &Heartbeat) -> u8 {
    let bit = |set: bool, bit: u8| if set { bit } else { 0 };
    bit(hb.quorum, STATUS_QUORUM)
        | bit(hb.handing_over, STATUS_HANDING_OVER)
        | bit(hb.quiesced, STATUS_QUIESCED)
        | bit(hb.serving, STATUS_SERVING)
        | bit(hb.reclaimable, STATUS_RECLAIMABLE)
}

/// `following` tags: the IPv4 one is the original layout, byte for byte, so
/// an IPv4 cluster keeps talking to agents that predate IPv6; an agent that
/// knows only tag 1 refuses tag 2 cleanly ("following value out of range"),
/// as it refuses any unknown tag, so no version bump is needed. Only a node
/// whose VRRP router is IPv6 sends tag 2.
const FOLLOWING_IPV4: u8 = 1;
const FOLLOWING_IPV6: u8 = 2;

/// Flag bit: the datagram ends with an HMAC-SHA256 tag.
pub const FLAG_AUTHENTICATED: u8 = 0x01;
/// Largest datagram sent or accepted.
pub const MAX_DATAGRAM: usize = 16384;
/// Longest node or environment name.
pub const MAX_NAME_LEN: usize = 63;
/// Most acknowledgements in one heartbeat (one per other node).
pub const MAX_ACKS: usize = 64;
/// Most claims, grants or running environments in one heartbeat.
pub const MAX_ITEMS: usize = 512;

/// Length of magic, version and flags.
const PREAMBLE_LEN: usize = MAGIC.len() + 2;

/// Something a node may hold, and that at most one node may hold at a time.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Resource {
    /// The VIP and the storage: being master.
    Master,
    /// Running the named CBSD environment.
    Environment(String),
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Resource::Master => f.write_str("master"),
            Resource::Environment(name) => write!(f, "env:{name}"),
        }
    }
}

/// The newest heartbeat the sender received from `node`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ack {
    /// The node whose heartbeat is acknowledged.
    pub node: String,
    /// The incarnation of that heartbeat (grows at each start of `node`).
    pub incarnation: u64,
    /// The sequence number of that heartbeat within its incarnation.
    pub seq: u64,
}

/// The sender is handing `environment` over to node `to` (`rcbsd-failover
/// move`): it stops it, then `to` starts it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handoff {
    /// The CBSD environment being moved.
    pub environment: String,
    /// The node that starts it once the sender has stopped it.
    pub to: String,
}

/// The sender supports `holder` for `resource`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// What is granted.
    pub resource: Resource,
    /// The node the sender supports as its holder.
    pub holder: String,
}

/// One heartbeat datagram, decoded: what its sender says about itself and
/// what it has seen of the others (the layout is in the module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Heartbeat {
    /// The sender's name, as in `[cluster] nodes`.
    pub node: String,
    /// Grows at every start of the sender ([`crate::auth::next_incarnation`]).
    pub incarnation: u64,
    /// Grows with every heartbeat the sender sends within one incarnation.
    pub seq: u64,
    /// The sender's VRRP state.
    pub state: VrrpState,
    /// The sender's effective VRRP priority (RFC 5798 §5.2.4), 0..=255.
    pub priority: u8,
    /// The sender believes it has a quorum (status bit 0).
    pub quorum: bool,
    /// The sender is the master and is handing over on purpose (operator
    /// demote, SIGTERM, preemption): it keeps serving NFS until the
    /// followers have quiesced, then drops the VIP.
    pub handing_over: bool,
    /// The sender has quiesced for a hand-over: nothing mounted from the
    /// old master, no environment running on such mounts.
    pub quiesced: bool,
    /// The sender is the master and its promote has finished: it holds
    /// the master resources and its NFS server serves (status bit 3).
    /// Followers riding through a master change wait for it before they
    /// probe their mounts.
    pub serving: bool,
    /// With `serving`: the sender's nfsd started with NFSv4 stable restart
    /// records on the shared storage (the file its promote linked was
    /// there and not empty), so its clients can reclaim their state
    /// (status bit 4). Serving without it, a follower's ride-through would
    /// lose its opens and locks silently: it follows in full instead.
    pub reclaimable: bool,
    /// The primary address of the VRRP master the sender sees (its own
    /// when it is master), or `None` when it knows none.
    pub following: Option<IpAddr>,
    /// The sender's cluster-wide config fingerprint (alerts only).
    pub config_hash: u64,
    /// The sender's quorum fingerprint: peers count it toward a majority
    /// only when it equals theirs (`Config::quorum_hash`).
    pub quorum_hash: u64,
    /// The newest heartbeat received from each other node, at most
    /// [`MAX_ACKS`].
    pub acks: Vec<Ack>,
    /// Resources the sender holds or is acquiring.
    pub claims: Vec<Resource>,
    /// Which node the sender supports as the holder of each resource.
    pub grants: Vec<Grant>,
    /// Names of the CBSD environments running on the sender.
    pub running: Vec<String>,
    /// Environments the sender is handing over to another node.
    pub handoffs: Vec<Handoff>,
}

/// Why a heartbeat cannot be encoded, or why a datagram is not one.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum HeartbeatError {
    /// The datagram (encoded or received) exceeds [`MAX_DATAGRAM`].
    #[error("heartbeat of {len} bytes, the limit is {MAX_DATAGRAM}")]
    TooLarge {
        /// Its length in bytes.
        len: usize,
    },
    /// The datagram ends inside a field.
    #[error("heartbeat truncated in {field} at offset {offset}")]
    Truncated {
        /// Name of the field being read.
        field: &'static str,
        /// Byte offset of the read that ran past the end.
        offset: usize,
    },
    /// The first 4 bytes are not [`MAGIC`].
    #[error("not a heartbeat: magic at offset 0 is not \"RCHB\"")]
    BadMagic,
    /// The version byte is not [`VERSION`]; holds the version seen.
    #[error("heartbeat version {0} at offset 4, this agent speaks version {VERSION}")]
    UnsupportedVersion(u8),
    /// The flags byte has bits other than [`FLAG_AUTHENTICATED`]; holds it.
    #[error("heartbeat flags {0:#04x} at offset 5 has unknown bits set")]
    UnknownFlags(u8),
    /// A name is empty, too long or has a character outside `[A-Za-z0-9._-]`.
    #[error(
        "heartbeat {field} at offset {offset}: a name is 1 to {MAX_NAME_LEN} bytes \
         of A-Z a-z 0-9 . _ -"
    )]
    BadName {
        /// Name of the field holding the name.
        field: &'static str,
        /// Byte offset of the name's length byte.
        offset: usize,
    },
    /// A one-byte field holds a value the format does not define.
    #[error("heartbeat {field} at offset {offset}: value {value} is out of range")]
    BadValue {
        /// Name of the field.
        field: &'static str,
        /// Byte offset of the field.
        offset: usize,
        /// The byte found.
        value: u8,
    },
    /// A list is longer than its limit ([`MAX_ACKS`] or [`MAX_ITEMS`]).
    #[error("heartbeat {field} at offset {offset}: {count} entries, at most {max}")]
    TooMany {
        /// Name of the list.
        field: &'static str,
        /// Byte offset of the list's count.
        offset: usize,
        /// Entries announced (or given, when encoding).
        count: usize,
        /// The limit for that list.
        max: usize,
    },
    /// Bytes follow the last field (and are not the tag).
    #[error("heartbeat has {len} unexpected bytes at offset {offset} after its last field")]
    TrailingBytes {
        /// Byte offset where the extra bytes start.
        offset: usize,
        /// How many there are.
        len: usize,
    },
    /// Authentication is configured here and the sender did not sign.
    #[error("unauthenticated heartbeat, and [auth] is configured here")]
    AuthMissing,
    /// The tag verifies with none of our keys.
    #[error("heartbeat authentication tag matches none of our keys")]
    AuthBad,
    /// The sender signs, and `[auth]` is not configured here: the nodes'
    /// configurations differ.
    #[error("authenticated heartbeat, and [auth] is not configured here")]
    AuthUnexpected,
}

impl HeartbeatError {
    /// Whether the caller counts this as an authentication failure
    /// (`auth_failed`) rather than a malformed datagram.
    pub fn is_auth_failure(&self) -> bool {
        matches!(
            self,
            HeartbeatError::AuthMissing | HeartbeatError::AuthBad | HeartbeatError::AuthUnexpected
        )
    }
}

/// Encodes `hb`, signed with the send key of `signer` when given.
pub fn encode(hb: &Heartbeat, signer: Option<&Keyring>) -> Result<Vec<u8>, HeartbeatError> {
    let mut out = Writer::default();
    out.bytes(&MAGIC);
    out.u8(VERSION);
    out.u8(if signer.is_some() {
        FLAG_AUTHENTICATED
    } else {
        0
    });
    out.name("node", &hb.node)?;
    out.u64(hb.incarnation);
    out.u64(hb.seq);
    out.u8(state_code(hb.state));
    out.u8(hb.priority);
    out.u8(status_bits(hb));
    match hb.following {
        None => out.u8(0),
        Some(IpAddr::V4(address)) => {
            out.u8(FOLLOWING_IPV4);
            out.bytes(&address.octets());
        }
        Some(IpAddr::V6(address)) => {
            out.u8(FOLLOWING_IPV6);
            out.bytes(&address.octets());
        }
    }
    out.u64(hb.config_hash);
    out.u64(hb.quorum_hash);
    out.count("acks", hb.acks.len(), MAX_ACKS)?;
    for ack in &hb.acks {
        out.name("ack node", &ack.node)?;
        out.u64(ack.incarnation);
        out.u64(ack.seq);
    }
    out.count("claims", hb.claims.len(), MAX_ITEMS)?;
    for claim in &hb.claims {
        out.resource("claim", claim)?;
    }
    out.count("grants", hb.grants.len(), MAX_ITEMS)?;
    for grant in &hb.grants {
        out.resource("grant resource", &grant.resource)?;
        out.name("grant holder", &grant.holder)?;
    }
    out.count("running", hb.running.len(), MAX_ITEMS)?;
    for name in &hb.running {
        out.name("running", name)?;
    }
    out.count("handoffs", hb.handoffs.len(), MAX_ITEMS)?;
    for handoff in &hb.handoffs {
        out.name("handoff environment", &handoff.environment)?;
        out.name("handoff to", &handoff.to)?;
    }
    let mut datagram = out.buf;
    if let Some(keys) = signer {
        let tag = keys.sign(&[&datagram]);
        datagram.extend_from_slice(&tag);
    }
    if datagram.len() > MAX_DATAGRAM {
        return Err(HeartbeatError::TooLarge {
            len: datagram.len(),
        });
    }
    Ok(datagram)
}

/// Decodes a datagram. With `keys`, only a heartbeat whose tag verifies is
/// accepted; without, only an unauthenticated one (a signed heartbeat then
/// means the nodes' `[auth]` sections differ). Replay protection is the
/// caller's: feed (incarnation, seq) to a [`crate::auth::ReplayGuard`].
pub fn decode(datagram: &[u8], keys: Option<&Keyring>) -> Result<Heartbeat, HeartbeatError> {
    if datagram.len() > MAX_DATAGRAM {
        return Err(HeartbeatError::TooLarge {
            len: datagram.len(),
        });
    }
    let mut preamble = Reader::new(datagram);
    if preamble.take("magic", MAGIC.len())? != MAGIC {
        return Err(HeartbeatError::BadMagic);
    }
    let version = preamble.u8("version")?;
    if version != VERSION {
        return Err(HeartbeatError::UnsupportedVersion(version));
    }
    let flags = preamble.u8("flags")?;
    if flags & !FLAG_AUTHENTICATED != 0 {
        return Err(HeartbeatError::UnknownFlags(flags));
    }
    let body = match (flags & FLAG_AUTHENTICATED != 0, keys) {
        (false, None) => datagram,
        (false, Some(_)) => return Err(HeartbeatError::AuthMissing),
        (true, None) => return Err(HeartbeatError::AuthUnexpected),
        (true, Some(keys)) => {
            let signed_len = datagram
                .len()
                .checked_sub(TAG_LEN)
                .filter(|&len| len >= PREAMBLE_LEN)
                .ok_or(HeartbeatError::Truncated {
                    field: "authentication tag",
                    offset: PREAMBLE_LEN,
                })?;
            let (signed, tag) = datagram.split_at(signed_len);
            keys.verify(&[signed], tag)
                .map_err(|_| HeartbeatError::AuthBad)?;
            signed
        }
    };
    let mut input = Reader::new(body);
    input.pos = PREAMBLE_LEN;
    let hb = read_body(&mut input)?;
    if input.remaining() > 0 {
        return Err(HeartbeatError::TrailingBytes {
            offset: input.pos,
            len: input.remaining(),
        });
    }
    Ok(hb)
}

fn read_body(input: &mut Reader<'_>) -> Result<Heartbeat, HeartbeatError> {
    let node = input.name("node")?;
    let incarnation = input.u64("incarnation")?;
    let seq = input.u64("seq")?;
    let state = state_from_code(input.at(), input.u8("state")?)?;
    let priority = input.u8("priority")?;
    let (offset, status) = (input.at(), input.u8("status")?);
    if status & !STATUS_KNOWN != 0 {
        return Err(bad_value("status", offset, status));
    }
    let following = match (input.at(), input.u8("following")?) {
        (_, 0) => None,
        (_, FOLLOWING_IPV4) => Some(IpAddr::V4(input.ipv4("following address")?)),
        (_, FOLLOWING_IPV6) => Some(IpAddr::V6(input.ipv6("following address")?)),
        (offset, value) => return Err(bad_value("following", offset, value)),
    };
    let config_hash = input.u64("config hash")?;
    let quorum_hash = input.u64("quorum hash")?;

    let count = input.count("acks", MAX_ACKS)?;
    let mut acks = Vec::with_capacity(count.min(input.remaining()));
    for _ in 0..count {
        acks.push(Ack {
            node: input.name("ack node")?,
            incarnation: input.u64("ack incarnation")?,
            seq: input.u64("ack seq")?,
        });
    }
    let count = input.count("claims", MAX_ITEMS)?;
    let mut claims = Vec::with_capacity(count.min(input.remaining()));
    for _ in 0..count {
        claims.push(input.resource("claim")?);
    }
    let count = input.count("grants", MAX_ITEMS)?;
    let mut grants = Vec::with_capacity(count.min(input.remaining()));
    for _ in 0..count {
        grants.push(Grant {
            resource: input.resource("grant resource")?,
            holder: input.name("grant holder")?,
        });
    }
    let count = input.count("running", MAX_ITEMS)?;
    let mut running = Vec::with_capacity(count.min(input.remaining()));
    for _ in 0..count {
        running.push(input.name("running")?);
    }
    let count = input.count("handoffs", MAX_ITEMS)?;
    let mut handoffs = Vec::with_capacity(count.min(input.remaining()));
    for _ in 0..count {
        handoffs.push(Handoff {
            environment: input.name("handoff environment")?,
            to: input.name("handoff to")?,
        });
    }
    Ok(Heartbeat {
        node,
        incarnation,
        seq,
        state,
        priority,
        quorum: status & STATUS_QUORUM != 0,
        handing_over: status & STATUS_HANDING_OVER != 0,
        quiesced: status & STATUS_QUIESCED != 0,
        serving: status & STATUS_SERVING != 0,
        reclaimable: status & STATUS_RECLAIMABLE != 0,
        following,
        config_hash,
        quorum_hash,
        acks,
        claims,
        grants,
        running,
        handoffs,
    })
}

const RESOURCE_MASTER: u8 = 0;
const RESOURCE_ENVIRONMENT: u8 = 1;

fn state_code(state: VrrpState) -> u8 {
    match state {
        VrrpState::Initialize => 0,
        VrrpState::Backup => 1,
        VrrpState::Master => 2,
        VrrpState::Fault => 3,
    }
}

fn state_from_code(offset: usize, code: u8) -> Result<VrrpState, HeartbeatError> {
    match code {
        0 => Ok(VrrpState::Initialize),
        1 => Ok(VrrpState::Backup),
        2 => Ok(VrrpState::Master),
        3 => Ok(VrrpState::Fault),
        _ => Err(bad_value("state", offset, code)),
    }
}

fn bad_value(field: &'static str, offset: usize, value: u8) -> HeartbeatError {
    HeartbeatError::BadValue {
        field,
        offset,
        value,
    }
}

/// Whether `name` may appear in a heartbeat: node and environment names
/// are short identifiers, never paths or shell words.
pub fn is_valid_name(name: &[u8]) -> bool {
    (1..=MAX_NAME_LEN).contains(&name.len())
        && name
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[derive(Default)]
struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    fn bytes(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    fn u8(&mut self, value: u8) {
        self.buf.push(value);
    }

    fn u64(&mut self, value: u64) {
        self.bytes(&value.to_be_bytes());
    }

    fn name(&mut self, field: &'static str, name: &str) -> Result<(), HeartbeatError> {
        let offset = self.buf.len();
        let len = u8::try_from(name.len())
            .ok()
            .filter(|_| is_valid_name(name.as_bytes()))
            .ok_or(HeartbeatError::BadName { field, offset })?;
        self.u8(len);
        self.bytes(name.as_bytes());
        Ok(())
    }

    fn count(
        &mut self,
        field: &'static str,
        count: usize,
        max: usize,
    ) -> Result<(), HeartbeatError> {
        let offset = self.buf.len();
        let too_many = HeartbeatError::TooMany {
            field,
            offset,
            count,
            max,
        };
        let encoded = u16::try_from(count)
            .ok()
            .filter(|_| count <= max)
            .ok_or(too_many)?;
        self.bytes(&encoded.to_be_bytes());
        Ok(())
    }

    fn resource(&mut self, field: &'static str, resource: &Resource) -> Result<(), HeartbeatError> {
        match resource {
            Resource::Master => {
                self.u8(RESOURCE_MASTER);
                Ok(())
            }
            Resource::Environment(name) => {
                self.u8(RESOURCE_ENVIRONMENT);
                self.name(field, name)
            }
        }
    }
}

/// A cursor over received bytes; every read is bounds-checked and reports
/// the field it was reading and where.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, pos: 0 }
    }

    fn at(&self) -> usize {
        self.pos
    }

    fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.pos)
    }

    fn take(&mut self, field: &'static str, len: usize) -> Result<&'a [u8], HeartbeatError> {
        let truncated = HeartbeatError::Truncated {
            field,
            offset: self.pos,
        };
        let end = self.pos.checked_add(len).ok_or(truncated.clone())?;
        let slice = self.bytes.get(self.pos..end).ok_or(truncated)?;
        self.pos = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], HeartbeatError> {
        let offset = self.pos;
        self.take(field, N)?
            .try_into()
            .map_err(|_| HeartbeatError::Truncated { field, offset })
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, HeartbeatError> {
        let [value] = self.array(field)?;
        Ok(value)
    }

    fn u64(&mut self, field: &'static str) -> Result<u64, HeartbeatError> {
        Ok(u64::from_be_bytes(self.array(field)?))
    }

    fn ipv4(&mut self, field: &'static str) -> Result<Ipv4Addr, HeartbeatError> {
        Ok(Ipv4Addr::from(self.array::<4>(field)?))
    }

    fn ipv6(&mut self, field: &'static str) -> Result<Ipv6Addr, HeartbeatError> {
        Ok(Ipv6Addr::from(self.array::<16>(field)?))
    }

    fn count(&mut self, field: &'static str, max: usize) -> Result<usize, HeartbeatError> {
        let offset = self.pos;
        let count = usize::from(u16::from_be_bytes(self.array(field)?));
        if count > max {
            return Err(HeartbeatError::TooMany {
                field,
                offset,
                count,
                max,
            });
        }
        Ok(count)
    }

    fn name(&mut self, field: &'static str) -> Result<String, HeartbeatError> {
        let offset = self.pos;
        let len = usize::from(self.u8(field)?);
        let bytes = self.take(field, len)?;
        if !is_valid_name(bytes) {
            return Err(HeartbeatError::BadName { field, offset });
        }
        // Valid names are ASCII, hence UTF-8.
        String::from_utf8(bytes.to_vec()).map_err(|_| HeartbeatError::BadName { field, offset })
    }

    fn resource(&mut self, field: &'static str) -> Result<Resource, HeartbeatError> {
        let offset = self.pos;
        match self.u8(field)? {
            RESOURCE_MASTER => Ok(Resource::Master),
            RESOURCE_ENVIRONMENT => Ok(Resource::Environment(self.name(field)?)),
            kind => Err(bad_value(field, offset, kind)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Heartbeat {
        Heartbeat {
            node: "node1".into(),
            incarnation: 1_700_000_000_000_000,
            seq: 42,
            state: VrrpState::Master,
            priority: 150,
            quorum: true,
            handing_over: true,
            quiesced: false,
            serving: true,
            reclaimable: true,
            following: Some(IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1))),
            config_hash: 0x0123_4567_89ab_cdef,
            quorum_hash: 0x0fed_cba9_8765_4321,
            acks: vec![
                Ack {
                    node: "node2".into(),
                    incarnation: 7,
                    seq: 9,
                },
                Ack {
                    node: "node3".into(),
                    incarnation: 8,
                    seq: 10,
                },
            ],
            claims: vec![Resource::Master, Resource::Environment("web1".into())],
            grants: vec![Grant {
                resource: Resource::Environment("db.1".into()),
                holder: "node3".into(),
            }],
            running: vec!["web1".into(), "vm-2_b".into()],
            handoffs: vec![Handoff {
                environment: "web1".into(),
                to: "node2".into(),
            }],
        }
    }

    fn minimal() -> Heartbeat {
        Heartbeat {
            node: "n".into(),
            incarnation: 0,
            seq: 0,
            state: VrrpState::Initialize,
            priority: 0,
            quorum: false,
            handing_over: false,
            quiesced: false,
            serving: false,
            reclaimable: false,
            following: None,
            config_hash: 0,
            quorum_hash: 0,
            acks: vec![],
            claims: vec![],
            grants: vec![],
            running: vec![],
            handoffs: vec![],
        }
    }

    fn keys() -> Keyring {
        Keyring::from_secrets(b"0123456789abcdef0123456789abcdef", None)
    }

    /// The layout of the module comment, byte by byte.
    #[test]
    fn minimal_heartbeat_bytes() {
        let bytes = encode(&minimal(), None).expect("encodes");
        let expected: Vec<u8> = [
            &b"RCHB"[..],
            &[2, 0],       // version, flags
            &[1, b'n'],    // node
            &[0; 8],       // incarnation
            &[0; 8],       // seq
            &[0, 0, 0, 0], // state, priority, status, following
            &[0; 8],       // config hash
            &[0; 8],       // quorum hash
            &[0; 10],      // five empty lists
        ]
        .concat();
        assert_eq!(bytes, expected);
    }

    #[test]
    fn round_trip_unauthenticated_and_authenticated() {
        for hb in [sample(), minimal()] {
            let plain = encode(&hb, None).expect("encodes");
            assert_eq!(decode(&plain, None), Ok(hb.clone()));
            let signed = encode(&hb, Some(&keys())).expect("encodes");
            assert_eq!(signed.len(), plain.len() + TAG_LEN);
            assert_eq!(signed.get(5), Some(&FLAG_AUTHENTICATED));
            assert_eq!(decode(&signed, Some(&keys())), Ok(hb));
        }
    }

    /// Bit 4 is `reclaimable`; a heartbeat without it (an agent that knows
    /// only bit 3) decodes as serving but not reclaimable, and the bit is
    /// 0 unless set.
    #[test]
    fn the_reclaimable_bit_is_bit_4_and_absent_means_not_reclaimable() {
        let older = minimal_with(26, 0b1111);
        let hb = decode(&older, None).expect("a heartbeat with bits 0 to 3");
        assert!(hb.serving && !hb.reclaimable);
        let reclaimable = Heartbeat {
            serving: true,
            reclaimable: true,
            ..minimal()
        };
        let bytes = encode(&reclaimable, None).expect("encodes");
        assert_eq!(bytes.get(26), Some(&0b1_1000));
        assert_eq!(
            decode(&bytes, None).map(|hb| (hb.serving, hb.reclaimable)),
            Ok((true, true))
        );
        let serving = Heartbeat {
            serving: true,
            ..minimal()
        };
        let bytes = encode(&serving, None).expect("encodes");
        assert_eq!(
            bytes.get(26),
            Some(&0b1000),
            "unset: what bit-3 agents take"
        );
    }

    /// An IPv6 master travels as tag 2 and 16 bytes; an IPv4 one keeps the
    /// original tag 1 and 4 bytes, so IPv4 clusters talk to older agents.
    #[test]
    fn following_an_ipv6_master_round_trips_and_ipv4_keeps_its_layout() {
        let v6 = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
        let hb = Heartbeat {
            following: Some(IpAddr::V6(v6)),
            ..minimal()
        };
        let bytes = encode(&hb, None).expect("encodes");
        assert_eq!(bytes.get(27), Some(&FOLLOWING_IPV6));
        assert_eq!(bytes.get(28..44), Some(&v6.octets()[..]));
        assert_eq!(
            bytes.len(),
            encode(&minimal(), None).expect("encodes").len() + 16
        );
        assert_eq!(decode(&bytes, None), Ok(hb.clone()));
        let signed = encode(&hb, Some(&keys())).expect("encodes");
        assert_eq!(decode(&signed, Some(&keys())), Ok(hb));

        let v4 = Heartbeat {
            following: Some(IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1))),
            ..minimal()
        };
        let bytes = encode(&v4, None).expect("encodes");
        assert_eq!(bytes.get(27..32), Some(&[1, 198, 18, 0, 1][..]));
    }

    /// What an agent that predates IPv6 does with tag 2: its decoder
    /// accepted only 0 and 1, so it refuses the heartbeat with "following
    /// value out of range" (a clean drop, counted), never misreads it. Here
    /// the same rule stands for any tag beyond 2, and a cut IPv6 address is
    /// a truncation error naming the field.
    #[test]
    fn unknown_following_tags_and_cut_ipv6_addresses_are_refused() {
        assert_eq!(
            decode(&minimal_with(27, 3), None),
            Err(bad_value("following", 27, 3))
        );
        let hb = Heartbeat {
            following: Some(IpAddr::V6(Ipv6Addr::LOCALHOST)),
            ..minimal()
        };
        let bytes = encode(&hb, None).expect("encodes");
        let cut = bytes.get(..36).expect("long enough");
        assert!(decode(cut, None).is_err());
    }

    /// Bit 3 is `serving`; a heartbeat without it (every agent before
    /// issue 14) decodes as not serving, and the bit is 0 unless set, so
    /// an older agent, which refuses unknown bits, still takes ours.
    #[test]
    fn the_serving_bit_is_bit_3_and_absent_means_not_serving() {
        let old = minimal_with(26, 0b111);
        let hb = decode(&old, None).expect("an older agent's heartbeat");
        assert!(hb.quorum && hb.handing_over && hb.quiesced && !hb.serving);
        let serving = Heartbeat {
            serving: true,
            ..minimal()
        };
        let bytes = encode(&serving, None).expect("encodes");
        assert_eq!(bytes.get(26), Some(&0b1000));
        assert_eq!(decode(&bytes, None).map(|hb| hb.serving), Ok(true));
        let quiet = encode(&minimal(), None).expect("encodes");
        assert_eq!(
            quiet.get(26),
            Some(&0),
            "unset: nothing an older agent refuses"
        );
    }

    #[test]
    fn every_state_round_trips() {
        for state in [
            VrrpState::Initialize,
            VrrpState::Backup,
            VrrpState::Master,
            VrrpState::Fault,
        ] {
            let hb = Heartbeat { state, ..minimal() };
            let bytes = encode(&hb, None).expect("encodes");
            assert_eq!(decode(&bytes, None).map(|hb| hb.state), Ok(state));
        }
    }

    #[test]
    fn resource_display_names() {
        assert_eq!(Resource::Master.to_string(), "master");
        assert_eq!(Resource::Environment("web1".into()).to_string(), "env:web1");
    }

    #[test]
    fn auth_mismatches_have_their_own_errors() {
        let plain = encode(&sample(), None).expect("encodes");
        let signed = encode(&sample(), Some(&keys())).expect("encodes");
        assert_eq!(
            decode(&plain, Some(&keys())),
            Err(HeartbeatError::AuthMissing)
        );
        assert_eq!(decode(&signed, None), Err(HeartbeatError::AuthUnexpected));
        let other = Keyring::from_secrets(b"another key, another key, another", None);
        assert_eq!(decode(&signed, Some(&other)), Err(HeartbeatError::AuthBad));
        for error in [
            HeartbeatError::AuthMissing,
            HeartbeatError::AuthBad,
            HeartbeatError::AuthUnexpected,
        ] {
            assert!(error.is_auth_failure());
        }
        assert!(!HeartbeatError::BadMagic.is_auth_failure());
    }

    #[test]
    fn any_change_to_a_signed_heartbeat_breaks_the_tag() {
        let signed = encode(&sample(), Some(&keys())).expect("encodes");
        // From the node name on: the preamble has its own errors.
        for index in PREAMBLE_LEN..signed.len() {
            let mut altered = signed.clone();
            altered[index] ^= 0x01;
            assert_eq!(
                decode(&altered, Some(&keys())),
                Err(HeartbeatError::AuthBad),
                "byte {index}"
            );
        }
        let mut shortened = signed.clone();
        shortened.pop();
        assert_eq!(
            decode(&shortened, Some(&keys())),
            Err(HeartbeatError::AuthBad)
        );
    }

    #[test]
    fn a_signed_datagram_too_short_for_a_tag_is_truncated() {
        let bytes = [&b"RCHB"[..], &[VERSION, FLAG_AUTHENTICATED], &[0; 10]].concat();
        assert_eq!(
            decode(&bytes, Some(&keys())),
            Err(HeartbeatError::Truncated {
                field: "authentication tag",
                offset: 6
            })
        );
    }

    #[test]
    fn preamble_errors() {
        assert_eq!(
            decode(b"", None),
            Err(HeartbeatError::Truncated {
                field: "magic",
                offset: 0
            })
        );
        assert_eq!(decode(b"RCHX\x01\x00", None), Err(HeartbeatError::BadMagic));
        assert_eq!(
            decode(b"RCHB\x03\x00", None),
            Err(HeartbeatError::UnsupportedVersion(3))
        );
        // Version 1 had no quorum hash: a mixed cluster must not mix them.
        assert_eq!(
            decode(b"RCHB\x01\x00", None),
            Err(HeartbeatError::UnsupportedVersion(1))
        );
        assert_eq!(
            decode(b"RCHB\x02\x02", None),
            Err(HeartbeatError::UnknownFlags(2))
        );
        assert_eq!(
            decode(b"RCHB\x02", None),
            Err(HeartbeatError::Truncated {
                field: "flags",
                offset: 5
            })
        );
    }

    /// `minimal()` encoded, with byte `index` replaced.
    fn minimal_with(index: usize, value: u8) -> Vec<u8> {
        let mut bytes = encode(&minimal(), None).expect("encodes");
        bytes[index] = value;
        bytes
    }

    // Offsets in minimal(): node 6..8, incarnation 8..16, seq 16..24,
    // state 24, priority 25, status 26, following 27, hash 28..36,
    // acks 36..38, claims 38..40, grants 40..42, running 42..44,
    // handoffs 44..46.

    #[test]
    fn out_of_range_values_name_field_and_offset() {
        assert_eq!(
            decode(&minimal_with(24, 4), None),
            Err(bad_value("state", 24, 4))
        );
        assert_eq!(
            decode(&minimal_with(26, 32), None),
            Err(bad_value("status", 26, 32))
        );
        assert_eq!(
            decode(&minimal_with(27, 3), None),
            Err(bad_value("following", 27, 3))
        );
    }

    #[test]
    fn bad_names_are_refused_on_both_sides() {
        assert_eq!(
            decode(&minimal_with(7, b'/'), None),
            Err(HeartbeatError::BadName {
                field: "node",
                offset: 6
            })
        );
        assert_eq!(
            decode(&minimal_with(6, 0), None),
            Err(HeartbeatError::BadName {
                field: "node",
                offset: 6
            })
        );
        for bad in ["", "a b", "x;rm", "é", &"a".repeat(64)] {
            let hb = Heartbeat {
                running: vec![bad.to_owned()],
                ..minimal()
            };
            assert!(
                matches!(
                    encode(&hb, None),
                    Err(HeartbeatError::BadName {
                        field: "running",
                        ..
                    })
                ),
                "{bad:?}"
            );
        }
        assert!(is_valid_name("a".repeat(63).as_bytes()));
    }

    #[test]
    fn counts_are_bounded_on_both_sides() {
        let hb = Heartbeat {
            acks: vec![
                Ack {
                    node: "n".into(),
                    incarnation: 0,
                    seq: 0
                };
                MAX_ACKS + 1
            ],
            ..minimal()
        };
        assert_eq!(
            encode(&hb, None),
            Err(HeartbeatError::TooMany {
                field: "acks",
                offset: 44,
                count: 65,
                max: 64
            })
        );
        let mut bytes = encode(&minimal(), None).expect("encodes");
        bytes[50..52].copy_from_slice(&513u16.to_be_bytes());
        assert_eq!(
            decode(&bytes, None),
            Err(HeartbeatError::TooMany {
                field: "running",
                offset: 50,
                count: 513,
                max: 512
            })
        );
    }

    #[test]
    fn a_count_larger_than_the_data_is_truncated() {
        let mut bytes = encode(&minimal(), None).expect("encodes");
        bytes[53] = 1; // one handoff announced, none present
        assert_eq!(
            decode(&bytes, None),
            Err(HeartbeatError::Truncated {
                field: "handoff environment",
                offset: 54
            })
        );
    }

    #[test]
    fn an_unknown_resource_kind_is_refused() {
        let mut bytes = encode(&minimal(), None).expect("encodes");
        bytes[47] = 1;
        bytes.insert(48, 7);
        assert_eq!(decode(&bytes, None), Err(bad_value("claim", 48, 7)));
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let mut bytes = encode(&minimal(), None).expect("encodes");
        bytes.push(0);
        assert_eq!(
            decode(&bytes, None),
            Err(HeartbeatError::TrailingBytes { offset: 54, len: 1 })
        );
    }

    #[test]
    fn the_datagram_size_is_bounded_on_both_sides() {
        let long_name = "e".repeat(MAX_NAME_LEN);
        let hb = Heartbeat {
            claims: vec![Resource::Environment(long_name.clone()); MAX_ITEMS],
            running: vec![long_name; MAX_ITEMS],
            ..minimal()
        };
        assert!(matches!(
            encode(&hb, None),
            Err(HeartbeatError::TooLarge { .. })
        ));
        assert_eq!(
            decode(&vec![0; MAX_DATAGRAM + 1], None),
            Err(HeartbeatError::TooLarge {
                len: MAX_DATAGRAM + 1
            })
        );
    }

    #[test]
    fn truncation_at_every_length_is_an_error() {
        let bytes = encode(&sample(), None).expect("encodes");
        for len in 0..bytes.len() {
            assert!(decode(&bytes[..len], None).is_err(), "length {len}");
        }
    }
}
