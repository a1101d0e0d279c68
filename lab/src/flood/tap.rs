//! Counting the master's adverts on the wire: a packet socket in the switch
//! namespace, on the bridge port that faces the master, records the kernel
//! timestamp of every advert the master put on its link.
//!
//! Why there and not in a backup: a backup under the same flood may drop
//! packets itself, and a receiver there would blame the master for its own
//! losses. The port's ingress carries only what the master sent, and a BPF
//! filter keeps the flood (which leaves through the same port) out of the
//! socket's queue, so the tap sees the sender's behaviour alone.

use std::io::IoSliceMut;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use nix::sys::socket::{recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags};
use serde::Serialize;
use socket2::{Domain, Protocol, SockFilter, Socket, Type};

use crate::netns::enter_netns;
use crate::LabError;
use rcbsd_failover::wire::{ipv4, vrrp};

/// Ethernet header length; IPv4 starts right after it.
const ETHERNET_LEN: usize = 14;
const ETHERTYPE_IPV4: u32 = 0x0800;
/// How often the capture thread looks at its stop flag.
const POLL: Duration = Duration::from_millis(100);

/// One advert seen on the master's link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seen {
    /// Kernel receive time (CLOCK_REALTIME): only differences are used.
    pub at: Duration,
    pub priority: u8,
}

/// A running capture; [`AdvertTap::stop`] returns what it saw.
#[derive(Debug)]
pub struct AdvertTap {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Vec<Seen>>>,
}

impl AdvertTap {
    /// Starts capturing, in namespace `switch_ns`, the VRRP adverts for
    /// `vrid` that `master` sends into bridge port `port`. Returns once the
    /// socket is open and filtering.
    pub fn start(
        switch_ns: &str,
        port: &str,
        master: Ipv4Addr,
        vrid: u8,
    ) -> Result<AdvertTap, LabError> {
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = mpsc::channel();
        let (ns, port) = (switch_ns.to_owned(), port.to_owned());
        let thread_stop = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("lab-flood-tap".into())
            .spawn(move || {
                let socket = enter_netns(&ns).and_then(|()| open(&port, master));
                match socket {
                    Ok(socket) => {
                        let _ = ready_tx.send(Ok(()));
                        capture(&socket, master, vrid, &thread_stop)
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        Vec::new()
                    }
                }
            })
            .map_err(|source| LabError::Io {
                what: "spawning the advert tap".into(),
                source,
            })?;
        let tap = AdvertTap {
            stop,
            thread: Some(thread),
        };
        ready_rx
            .recv()
            .map_err(|_| LabError::ThreadPanicked("advert tap"))??;
        Ok(tap)
    }

    /// Stops the capture; the adverts seen, oldest first.
    pub fn stop(mut self) -> Result<Vec<Seen>, LabError> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().map_or(Ok(Vec::new()), |thread| {
            thread
                .join()
                .map_err(|_| LabError::ThreadPanicked("advert tap"))
        })
    }
}

impl Drop for AdvertTap {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn open(port: &str, master: Ipv4Addr) -> Result<Socket, LabError> {
    let io = |what: String| move |source| LabError::Io { what, source };
    let ifindex = nix::net::if_::if_nametoindex(port).map_err(|errno| LabError::Io {
        what: format!("finding bridge port {port}"),
        source: errno.into(),
    })?;
    // ETH_P_ALL, not ETH_P_IP: on a bridge port the bridge takes the frame
    // before protocol-specific handlers; only "all" taps run first.
    let all = i32::from(u16::try_from(libc::ETH_P_ALL).unwrap_or(3).to_be());
    let socket = Socket::new(Domain::PACKET, Type::RAW, Some(Protocol::from(all)))
        .map_err(io("opening the advert tap's packet socket".into()))?;
    socket
        .attach_filter(&filter(ifindex, master))
        .map_err(io("attaching the advert tap's filter".into()))?;
    setsockopt(&socket, sockopt::ReceiveTimestampns, &true).map_err(|errno| LabError::Io {
        what: "asking for receive timestamps".into(),
        source: errno.into(),
    })?;
    socket
        .set_read_timeout(Some(POLL))
        .map_err(io("setting the advert tap's timeout".into()))?;
    Ok(socket)
}

/// Classic BPF: accept IPv4 protocol-112 frames from `master` *received*
/// on interface `ifindex`; drop everything else in the kernel.
fn filter(ifindex: u32, master: Ipv4Addr) -> Vec<SockFilter> {
    const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    const LD_H_ABS: u16 = (libc::BPF_LD | libc::BPF_H | libc::BPF_ABS) as u16;
    const LD_B_ABS: u16 = (libc::BPF_LD | libc::BPF_B | libc::BPF_ABS) as u16;
    const JEQ: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const RET: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    // Ancillary loads live at negative offsets (SKF_AD_OFF + field).
    let ancillary = |field: i32| (libc::SKF_AD_OFF + field) as u32;
    let outgoing = u32::from(libc::PACKET_OUTGOING);
    // Jump offsets count from the next instruction: `drop` is the last one.
    vec![
        SockFilter::new(LD_W_ABS, 0, 0, ancillary(libc::SKF_AD_IFINDEX)),
        SockFilter::new(JEQ, 0, 9, ifindex),
        SockFilter::new(LD_W_ABS, 0, 0, ancillary(libc::SKF_AD_PKTTYPE)),
        SockFilter::new(JEQ, 7, 0, outgoing),
        SockFilter::new(LD_H_ABS, 0, 0, 12),
        SockFilter::new(JEQ, 0, 5, ETHERTYPE_IPV4),
        SockFilter::new(LD_B_ABS, 0, 0, (ETHERNET_LEN + 9) as u32),
        SockFilter::new(JEQ, 0, 3, u32::from(vrrp::PROTOCOL)),
        SockFilter::new(LD_W_ABS, 0, 0, (ETHERNET_LEN + 12) as u32),
        SockFilter::new(JEQ, 0, 1, u32::from(master)),
        SockFilter::new(RET, 0, 0, 0xffff),
        SockFilter::new(RET, 0, 0, 0),
    ]
}

fn capture(socket: &Socket, master: Ipv4Addr, vrid: u8, stop: &AtomicBool) -> Vec<Seen> {
    let mut seen = Vec::new();
    let mut frame = [0u8; 2048];
    let mut control = nix::cmsg_space!(nix::sys::time::TimeSpec);
    while !stop.load(Ordering::Relaxed) {
        let mut iov = [IoSliceMut::new(&mut frame)];
        let Ok(message) = recvmsg::<()>(
            socket.as_raw_fd(),
            &mut iov,
            Some(&mut control),
            MsgFlags::empty(),
        ) else {
            continue; // the poll timeout, or a signal: look at `stop` again
        };
        let len = message.bytes;
        let at = message.cmsgs().ok().and_then(|mut cmsgs| {
            cmsgs.find_map(|cmsg| match cmsg {
                ControlMessageOwned::ScmTimestampns(ts) => Some(Duration::from(ts)),
                _ => None,
            })
        });
        let Some(at) = at else { continue };
        if let Some(priority) = frame
            .get(..len)
            .and_then(|f| advert_priority(f, master, vrid))
        {
            seen.push(Seen { at, priority });
        }
    }
    seen
}

/// The priority of `frame` if it is a valid advert for `vrid` from `master`.
fn advert_priority(frame: &[u8], master: Ipv4Addr, vrid: u8) -> Option<u8> {
    let ip = frame.get(ETHERNET_LEN..)?;
    // Short frames may be padded: cut the datagram at its Total Length.
    let total = usize::from(u16::from_be_bytes([*ip.get(2)?, *ip.get(3)?]));
    let header = ipv4::Header::parse(ip.get(..total)?).ok()?;
    if header.src != master || header.ttl != vrrp::TTL {
        return None;
    }
    let (packet, _) = vrrp::parse(header.payload, header.src, header.dst).ok()?;
    (packet.vrid() == vrid).then(|| packet.priority())
}

/// Gaps between consecutive adverts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Gaps {
    /// Adverts seen in the window.
    pub adverts: usize,
    /// Gaps longer than 1.5 × the advert interval: at least one advert
    /// missing (or late by half an interval).
    pub missed: usize,
    pub max_gap_ms: f64,
}

/// Gaps between the adverts of `seen` whose time lies in `window`.
pub fn gaps(seen: &[Seen], window: std::ops::Range<Duration>, interval: Duration) -> Gaps {
    let times: Vec<Duration> = seen
        .iter()
        .map(|s| s.at)
        .filter(|at| window.contains(at))
        .collect();
    let threshold = interval.mul_f64(1.5);
    let mut result = Gaps {
        adverts: times.len(),
        ..Gaps::default()
    };
    for pair in times.windows(2) {
        if let [earlier, later] = pair {
            let gap = later.saturating_sub(*earlier);
            result.max_gap_ms = result.max_gap_ms.max(gap.as_secs_f64() * 1000.0);
            if gap > threshold {
                result.missed += 1;
            }
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcbsd_failover::wire::Centis;
    use rcbsd_failover::wire::ChecksumMode;

    fn at(ms: u64) -> Seen {
        Seen {
            at: Duration::from_millis(ms),
            priority: 150,
        }
    }

    #[test]
    fn a_gap_over_one_and_a_half_intervals_is_a_miss() {
        let seen: Vec<Seen> = [0, 100, 200, 349, 500, 600].into_iter().map(at).collect();
        let all = Duration::ZERO..Duration::from_secs(1);
        let result = gaps(&seen, all, Duration::from_millis(100));
        assert_eq!(result.adverts, 6);
        assert_eq!(result.missed, 1); // 349 -> 500 is 151 ms
        assert!((result.max_gap_ms - 151.0).abs() < 1e-6);
        let late = Duration::from_millis(450)..Duration::from_secs(1);
        assert_eq!(gaps(&seen, late, Duration::from_millis(100)).missed, 0);
    }

    #[test]
    fn reads_an_advert_out_of_a_padded_frame() {
        let master = Ipv4Addr::new(198, 18, 0, 11);
        let addresses = [Ipv4Addr::new(198, 18, 0, 100)];
        let advert = vrrp::Advertisement {
            vrid: 51,
            priority: 150,
            max_advert_interval: Centis(10),
            addresses: &addresses,
        };
        let mut frame = vec![0u8; 60]; // Ethernet minimum, zero padded
        let len = advert
            .emit(
                &mut frame[ETHERNET_LEN + 20..],
                master,
                vrrp::MULTICAST_GROUP,
                ChecksumMode::PseudoHeader,
            )
            .expect("fits");
        ipv4::emit_header(
            &mut frame[ETHERNET_LEN..],
            master,
            vrrp::MULTICAST_GROUP,
            vrrp::PROTOCOL,
            vrrp::TTL,
            len,
        )
        .expect("fits");
        assert_eq!(advert_priority(&frame, master, 51), Some(150));
        assert_eq!(advert_priority(&frame, master, 52), None);
        assert_eq!(
            advert_priority(&frame, Ipv4Addr::new(198, 18, 0, 12), 51),
            None
        );
        assert_eq!(advert_priority(&frame[..20], master, 51), None);
    }
}
