//! The client's view of the VIP: an ICMP (or ICMPv6) echo prober (1 kHz by
//! default) running in the client namespace, recording when each reply
//! arrived and when its request was sent.
//!
//! An outage is measured from the link cut to the first reply *whose request
//! was sent after the cut*: replies already in flight (or requests queued)
//! before the cut say nothing about the new master.

use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::cancel::Cancel;
use super::netns::enter_netns;
use super::LabError;
use rcbsd_failover::wire::checksum::internet_checksum;

const ICMP_ECHO_REPLY: u8 = 0;
const ICMP_ECHO_REQUEST: u8 = 8;
/// ICMPv6 echo (RFC 4443 §4.1, §4.2).
const ICMPV6_ECHO_REQUEST: u8 = 128;
const ICMPV6_ECHO_REPLY: u8 = 129;
/// Sequence numbers are 16 bits on the wire: the send log remembers the
/// last 65536 requests (65 s at 1 kHz, far beyond any reply's lifetime).
const SEQ_SPACE: usize = 1 << 16;

/// One echo reply: when its request left and when the reply came back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reply {
    pub sent: Instant,
    pub received: Instant,
}

#[derive(Debug)]
struct Shared {
    stop: AtomicBool,
    /// Send time of each request, indexed by its 16-bit sequence number.
    sent: Mutex<Vec<Option<Instant>>>,
    /// Replies in arrival order (so `received` is non-decreasing).
    replies: Mutex<Vec<Reply>>,
    requests: AtomicU64,
    /// All replies ever received (`replies` may have been pruned).
    answered: AtomicU64,
    send_errors: AtomicU64,
}

/// A running prober; stops on drop.
#[derive(Debug)]
pub struct Prober {
    target: IpAddr,
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl Prober {
    /// Starts pinging `target` (IPv4 or IPv6) from namespace `ns` at
    /// `rate_hz` requests per second (1..=10_000).
    pub fn start(ns: &str, target: impl Into<IpAddr>, rate_hz: u32) -> Result<Prober, LabError> {
        let target = target.into();
        let period = Duration::from_secs(1) / rate_hz.clamp(1, 10_000);
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            sent: Mutex::new(vec![None; SEQ_SPACE]),
            replies: Mutex::new(Vec::new()),
            requests: AtomicU64::new(0),
            answered: AtomicU64::new(0),
            send_errors: AtomicU64::new(0),
        });
        // The ICMP identifier tells our replies from anyone else's.
        let noise = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let ident = (std::process::id() ^ noise) as u16;
        let (ready_tx, ready_rx) = mpsc::channel();
        let ns_owned = ns.to_owned();
        let sender_shared = Arc::clone(&shared);
        let sender = std::thread::Builder::new()
            .name("lab-ping-send".into())
            .spawn(move || {
                let socket = match open_socket(&ns_owned, target) {
                    Ok(socket) => socket,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let receiver = socket.try_clone().map_err(|source| LabError::Io {
                    what: "cloning the ICMP socket".into(),
                    source,
                });
                let ok = receiver.is_ok();
                let _ = ready_tx.send(receiver);
                if ok {
                    send_loop(&socket, target, ident, period, &sender_shared);
                }
            })
            .map_err(|source| LabError::Io {
                what: "spawning the prober".into(),
                source,
            })?;
        let mut prober = Prober {
            target,
            shared: Arc::clone(&shared),
            threads: vec![sender],
        };
        let socket = ready_rx
            .recv()
            .map_err(|_| LabError::ThreadPanicked("prober"))??;
        let receiver = std::thread::Builder::new()
            .name("lab-ping-recv".into())
            .spawn(move || receive_loop(&socket, target, ident, &shared))
            .map_err(|source| LabError::Io {
                what: "spawning the prober".into(),
                source,
            })?;
        prober.threads.push(receiver);
        Ok(prober)
    }

    /// The address pinged.
    pub fn target(&self) -> IpAddr {
        self.target
    }

    /// When the first reply to a request sent at or after `t` arrived.
    pub fn first_reply_after(&self, t: Instant) -> Option<Instant> {
        let replies = lock(&self.shared.replies);
        // A reply to a request sent after `t` was received after `t`.
        let start = replies.partition_point(|r| r.received < t);
        replies
            .get(start..)?
            .iter()
            .find(|r| r.sent >= t)
            .map(|r| r.received)
    }

    /// Polls [`Prober::first_reply_after`] until it answers, `timeout`
    /// passes, or `cancel` is set.
    pub fn wait_first_reply_after(
        &self,
        t: Instant,
        timeout: Duration,
        cancel: &Cancel,
    ) -> Option<Instant> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(at) = self.first_reply_after(t) {
                return Some(at);
            }
            if Instant::now() >= deadline || cancel.is_cancelled() {
                return None;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// The arrival time of the latest reply.
    pub fn last_reply(&self) -> Option<Instant> {
        lock(&self.shared.replies).last().map(|r| r.received)
    }

    /// The longest stretch without a reply inside `[from, to]`, counting the
    /// edges of the window (so a window with no reply at all yields its
    /// whole length).
    pub fn longest_gap(&self, from: Instant, to: Instant) -> Duration {
        let replies = lock(&self.shared.replies);
        let start = replies.partition_point(|r| r.received < from);
        let mut previous = from;
        let mut longest = Duration::ZERO;
        for reply in replies.get(start..).unwrap_or_default() {
            if reply.received > to {
                break;
            }
            longest = longest.max(reply.received.saturating_duration_since(previous));
            previous = reply.received;
        }
        longest.max(to.saturating_duration_since(previous))
    }

    /// Requests sent so far.
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::Relaxed)
    }

    /// Replies received so far.
    pub fn replies(&self) -> u64 {
        self.shared.answered.load(Ordering::Relaxed)
    }

    /// Requests the kernel refused to send (e.g. no route or neighbour).
    pub fn send_errors(&self) -> u64 {
        self.shared.send_errors.load(Ordering::Relaxed)
    }

    /// Drops replies received before `t` (keeps memory flat on long runs).
    pub fn forget_before(&self, t: Instant) {
        let mut replies = lock(&self.shared.replies);
        let keep_from = replies.partition_point(|r| r.received < t);
        replies.drain(..keep_from);
    }

    /// Stops both threads and waits for them.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A poisoned lock only means another prober thread panicked; the data
/// (timestamps) is still meaningful.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn open_socket(ns: &str, target: IpAddr) -> Result<Socket, LabError> {
    enter_netns(ns)?;
    let (domain, protocol) = match target {
        IpAddr::V4(_) => (Domain::IPV4, Protocol::ICMPV4),
        IpAddr::V6(_) => (Domain::IPV6, Protocol::ICMPV6),
    };
    let socket = Socket::new(domain, Type::RAW, Some(protocol)).map_err(|source| LabError::Io {
        what: format!("opening a raw ICMP socket in {ns}"),
        source,
    })?;
    if target.is_ipv6() {
        // A raw IPv6 socket hands over the ICMPv6 message without the IP
        // header, so the source cannot be read off the datagram: connected,
        // the socket receives only what `target` sends (Linux
        // net/ipv6/raw.c, raw_v6_match).
        socket
            .connect(&SockAddr::from(SocketAddr::new(target, 0)))
            .map_err(|source| LabError::Io {
                what: format!("connecting the ICMPv6 socket to {target}"),
                source,
            })?;
    }
    // Short timeout so the receiver notices `stop` promptly.
    socket
        .set_read_timeout(Some(Duration::from_millis(50)))
        .map_err(|source| LabError::Io {
            what: "setting SO_RCVTIMEO".into(),
            source,
        })?;
    Ok(socket)
}

fn echo_request(ident: u16, seq: u16) -> [u8; 16] {
    let mut packet = [0u8; 16];
    packet[0] = ICMP_ECHO_REQUEST;
    packet[4..6].copy_from_slice(&ident.to_be_bytes());
    packet[6..8].copy_from_slice(&seq.to_be_bytes());
    packet[8..16].copy_from_slice(b"rcbsdlab");
    let checksum = internet_checksum(&packet);
    packet[2..4].copy_from_slice(&checksum.to_be_bytes());
    packet
}

/// The ICMPv6 echo request: the same message with type 128 and the
/// checksum left zero, as the kernel fills it in over the IPv6
/// pseudo-header for every raw ICMPv6 socket (RFC 3542 §3.1).
fn echo_request6(ident: u16, seq: u16) -> [u8; 16] {
    let mut packet = echo_request(ident, seq);
    packet[0] = ICMPV6_ECHO_REQUEST;
    packet[2..4].copy_from_slice(&[0, 0]);
    packet
}

fn send_loop(socket: &Socket, target: IpAddr, ident: u16, period: Duration, shared: &Shared) {
    let destination = SockAddr::from(SocketAddr::new(target, 0));
    let mut next = Instant::now();
    let mut seq: u16 = 0;
    while !shared.stop.load(Ordering::Relaxed) {
        let packet = match target {
            IpAddr::V4(_) => echo_request(ident, seq),
            IpAddr::V6(_) => echo_request6(ident, seq),
        };
        // Record before sending: the reply may beat us back otherwise.
        let now = Instant::now();
        if let Some(slot) = lock(&shared.sent).get_mut(usize::from(seq)) {
            *slot = Some(now);
        }
        if socket.send_to(&packet, &destination).is_err() {
            shared.send_errors.fetch_add(1, Ordering::Relaxed);
        }
        shared.requests.fetch_add(1, Ordering::Relaxed);
        seq = seq.wrapping_add(1);
        next += period;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else if now - next > period * 10 {
            // Far behind (machine busy): do not burst to catch up.
            next = now;
        }
    }
}

fn receive_loop(socket: &Socket, target: IpAddr, ident: u16, shared: &Shared) {
    let mut buf = [0u8; 2048];
    let mut reader = socket;
    while !shared.stop.load(Ordering::Relaxed) {
        let Ok(len) = reader.read(&mut buf) else {
            continue; // timeout or transient error: check `stop` and retry
        };
        let received = Instant::now();
        let datagram = buf.get(..len).unwrap_or_default();
        let seq = match target {
            IpAddr::V4(target) => parse_echo_reply(datagram, target, ident),
            // Connected to `target`: only its messages arrive, header-less.
            IpAddr::V6(_) => parse_echo(datagram, ICMPV6_ECHO_REPLY, ident),
        };
        let Some(seq) = seq else {
            continue;
        };
        let sent = lock(&shared.sent).get(usize::from(seq)).copied().flatten();
        if let Some(sent) = sent {
            shared.answered.fetch_add(1, Ordering::Relaxed);
            lock(&shared.replies).push(Reply { sent, received });
        }
    }
}

/// The sequence number of an echo reply from `target` with our identifier,
/// given a raw IPv4 datagram (header included, length from IHL).
fn parse_echo_reply(datagram: &[u8], target: Ipv4Addr, ident: u16) -> Option<u16> {
    let ihl = usize::from(datagram.first()? & 0x0f) * 4;
    let source: [u8; 4] = datagram.get(12..16)?.try_into().ok()?;
    if Ipv4Addr::from(source) != target {
        return None;
    }
    parse_echo(datagram.get(ihl..)?, ICMP_ECHO_REPLY, ident)
}

/// The sequence number of an ICMP(v6) echo message of type `kind` with
/// our identifier (the same layout in both, RFC 792 and RFC 4443 §4.2).
fn parse_echo(icmp: &[u8], kind: u8, ident: u16) -> Option<u16> {
    if *icmp.first()? != kind || *icmp.get(1)? != 0 {
        return None;
    }
    let id = u16::from_be_bytes(icmp.get(4..6)?.try_into().ok()?);
    let seq = u16::from_be_bytes(icmp.get(6..8)?.try_into().ok()?);
    (id == ident).then_some(seq)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_request_checksum_verifies_to_zero() {
        assert_eq!(internet_checksum(&echo_request(0x1234, 7)), 0);
    }

    #[test]
    fn parses_our_reply_and_ignores_others() {
        let target = Ipv4Addr::new(198, 18, 0, 100);
        let mut datagram = vec![0x45, 0, 0, 36, 0, 0, 0, 0, 64, 1, 0, 0];
        datagram.extend_from_slice(&target.octets());
        datagram.extend_from_slice(&[198, 18, 0, 2]);
        let mut icmp = echo_request(0xbeef, 42);
        icmp[0] = ICMP_ECHO_REPLY;
        datagram.extend_from_slice(&icmp);
        assert_eq!(parse_echo_reply(&datagram, target, 0xbeef), Some(42));
        assert_eq!(parse_echo_reply(&datagram, target, 0xbeee), None);
        assert_eq!(
            parse_echo_reply(&datagram, Ipv4Addr::new(198, 18, 0, 1), 0xbeef),
            None
        );
        assert_eq!(parse_echo_reply(&datagram[..22], target, 0xbeef), None);
        assert_eq!(parse_echo_reply(&[], target, 0xbeef), None);
    }

    #[test]
    fn icmpv6_echo_is_the_same_message_with_its_own_types() {
        let mut reply = echo_request6(0xbeef, 9);
        assert_eq!(reply[0], ICMPV6_ECHO_REQUEST);
        assert_eq!(&reply[2..4], &[0, 0], "the kernel computes it");
        assert_eq!(parse_echo(&reply, ICMPV6_ECHO_REPLY, 0xbeef), None);
        reply[0] = ICMPV6_ECHO_REPLY;
        assert_eq!(parse_echo(&reply, ICMPV6_ECHO_REPLY, 0xbeef), Some(9));
        assert_eq!(parse_echo(&reply, ICMPV6_ECHO_REPLY, 0xbeee), None);
        assert_eq!(parse_echo(&reply[..5], ICMPV6_ECHO_REPLY, 0xbeef), None);
    }
}
