//! The flooder: sender threads inside the flooder's namespace, each with a
//! raw IPv4 socket (`IP_HDRINCL`, so junk can carry any TTL) and a UDP
//! socket, cycling through the prepared junk as fast as `sendto` returns.
//! Counts stay thread-local in the hot loop and are summed when it stops.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Instant;

use serde::Serialize;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::junk::{self, Destination, JunkKind, Target, SCHEDULE};
use crate::netns::enter_netns;
use crate::rng::Rng;
use crate::LabError;

/// The interface every lab namespace has on the bridge.
const INTERFACE: &[u8] = b"eth0";

/// What was sent of one kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct KindTally {
    /// Datagrams the kernel accepted (`sendto` succeeded).
    pub packets: u64,
    /// Their IP bytes (header included; UDP adds 28 bytes of headers).
    pub bytes: u64,
}

/// What the flooder sent in total.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Sent {
    pub seconds: f64,
    pub packets: u64,
    pub bytes: u64,
    /// `sendto` failures (e.g. ENOBUFS when the flooder outruns its queue).
    pub send_errors: u64,
    pub by_kind: Vec<(&'static str, KindTally)>,
}

impl Sent {
    pub fn packets_per_second(&self) -> f64 {
        per_second(self.packets as f64, self.seconds)
    }

    pub fn megabits_per_second(&self) -> f64 {
        per_second(self.bytes as f64 * 8.0 / 1e6, self.seconds)
    }
}

fn per_second(amount: f64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        amount / seconds
    } else {
        0.0
    }
}

/// One thread's tally, one slot per [`SCHEDULE`] entry.
#[derive(Debug, Default)]
struct ThreadTally {
    slots: [KindTally; SCHEDULE.len()],
    send_errors: u64,
}

/// UDP headers the kernel adds to a heartbeat payload: IPv4 (20) + UDP (8).
const UDP_OVERHEAD: u64 = 28;

/// A running flood; [`Flooder::stop`] ends it and sums up.
#[derive(Debug)]
pub struct Flooder {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<ThreadTally>>,
    started: Instant,
}

impl Flooder {
    /// Starts `threads` sender threads in namespace `ns` and returns once
    /// every one of them has its sockets and is sending.
    pub fn start(ns: &str, threads: usize, target: Target) -> Result<Flooder, LabError> {
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = mpsc::channel();
        let mut flooder = Flooder {
            stop: Arc::clone(&stop),
            threads: Vec::new(),
            started: Instant::now(),
        };
        for index in 0..threads {
            let ns = ns.to_owned();
            let stop = Arc::clone(&stop);
            let ready = ready_tx.clone();
            let seed = 0x5eed_0000 + index as u64;
            let thread = std::thread::Builder::new()
                .name(format!("lab-flood-{index}"))
                .spawn(move || {
                    let sockets = enter_netns(&ns).and_then(|()| Sockets::open(&target));
                    match sockets {
                        Ok(sockets) => {
                            let _ = ready.send(Ok(()));
                            send_loop(&sockets, &target, seed, &stop)
                        }
                        Err(e) => {
                            let _ = ready.send(Err(e));
                            ThreadTally::default()
                        }
                    }
                })
                .map_err(|source| LabError::Io {
                    what: "spawning a flood sender".into(),
                    source,
                })?;
            flooder.threads.push(thread);
        }
        drop(ready_tx);
        for _ in 0..threads {
            // A thread that failed to start stops the others (via Drop).
            ready_rx
                .recv()
                .map_err(|_| LabError::ThreadPanicked("flood sender"))??;
        }
        flooder.started = Instant::now();
        Ok(flooder)
    }

    /// Stops every sender and returns what they sent.
    pub fn stop(mut self) -> Result<Sent, LabError> {
        self.stop.store(true, Ordering::Relaxed);
        let seconds = self.started.elapsed().as_secs_f64();
        let mut slots = [KindTally::default(); SCHEDULE.len()];
        let mut send_errors = 0;
        for thread in std::mem::take(&mut self.threads) {
            let tally = thread
                .join()
                .map_err(|_| LabError::ThreadPanicked("flood sender"))?;
            for (sum, slot) in slots.iter_mut().zip(tally.slots) {
                sum.packets += slot.packets;
                sum.bytes += slot.bytes;
            }
            send_errors += tally.send_errors;
        }
        Ok(summarise(seconds, &slots, send_errors))
    }
}

impl Drop for Flooder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in std::mem::take(&mut self.threads) {
            let _ = thread.join();
        }
    }
}

/// Folds the schedule's slots into one line per kind, in schedule order.
fn summarise(seconds: f64, slots: &[KindTally], send_errors: u64) -> Sent {
    let mut by_kind: Vec<(&'static str, KindTally)> = Vec::new();
    for ((kind, _), slot) in SCHEDULE.iter().zip(slots) {
        match by_kind.iter_mut().find(|(label, _)| *label == kind.label()) {
            Some((_, sum)) => {
                sum.packets += slot.packets;
                sum.bytes += slot.bytes;
            }
            None => by_kind.push((kind.label(), *slot)),
        }
    }
    Sent {
        seconds,
        packets: by_kind.iter().map(|(_, t)| t.packets).sum(),
        bytes: by_kind.iter().map(|(_, t)| t.bytes).sum(),
        send_errors,
        by_kind,
    }
}

/// One sender thread's sockets, opened inside the flooder's namespace.
struct Sockets {
    raw: Socket,
    udp: Socket,
}

impl Sockets {
    fn open(target: &Target) -> Result<Sockets, LabError> {
        let io = |what: &'static str| {
            move |source| LabError::Io {
                what: what.into(),
                source,
            }
        };
        let raw = Socket::new(
            Domain::IPV4,
            Type::RAW,
            Some(Protocol::from(i32::from(
                rcbsd_failover::wire::vrrp::PROTOCOL,
            ))),
        )
        .map_err(io("opening the flooder's raw socket"))?;
        raw.set_header_included_v4(true)
            .map_err(io("setting IP_HDRINCL on the flooder's socket"))?;
        // 224.0.0.18 has no route in the namespace; the device picks the way.
        raw.bind_device(Some(INTERFACE))
            .map_err(io("binding the flooder's raw socket to eth0"))?;
        let udp = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))
            .map_err(io("opening the flooder's UDP socket"))?;
        udp.bind(&SockAddr::from(SocketAddrV4::new(target.source, 0)))
            .map_err(io("binding the flooder's UDP socket"))?;
        Ok(Sockets { raw, udp })
    }
}

/// Sends the prepared junk round and round until `stop` is set.
fn send_loop(sockets: &Sockets, target: &Target, seed: u64, stop: &AtomicBool) -> ThreadTally {
    let mut rng = Rng::new(seed);
    // variants[slot][i]: the i-th prepared packet of schedule slot `slot`.
    let variants: Vec<Vec<Vec<u8>>> = SCHEDULE
        .iter()
        .map(|&(kind, destination)| {
            (0..junk::VARIANTS)
                .map(|_| junk::build(kind, destination, target, &mut rng))
                .collect()
        })
        .collect();
    let addresses: Vec<SockAddr> = SCHEDULE
        .iter()
        .map(|&(kind, destination)| socket_address(kind, destination, target))
        .collect();
    let mut tally = ThreadTally::default();
    let mut round = 0usize;
    while !stop.load(Ordering::Relaxed) {
        for (slot, (&(kind, _), address)) in SCHEDULE.iter().zip(&addresses).enumerate() {
            let Some(packet) = variants
                .get(slot)
                .and_then(|v| v.get(round % junk::VARIANTS))
            else {
                continue;
            };
            let socket = if kind.is_udp() {
                &sockets.udp
            } else {
                &sockets.raw
            };
            match socket.send_to(packet, address) {
                Ok(_) => {
                    if let Some(count) = tally.slots.get_mut(slot) {
                        count.packets += 1;
                        count.bytes +=
                            packet.len() as u64 + if kind.is_udp() { UDP_OVERHEAD } else { 0 };
                    }
                }
                Err(_) => tally.send_errors += 1,
            }
        }
        round = round.wrapping_add(1);
    }
    tally
}

fn socket_address(kind: JunkKind, destination: Destination, target: &Target) -> SockAddr {
    let address: Ipv4Addr = target.address(destination);
    let port = if kind.is_udp() {
        target.heartbeat_port
    } else {
        0
    };
    SockAddr::from(SocketAddrV4::new(address, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_folds_slots_by_kind() {
        let mut slots = [KindTally::default(); SCHEDULE.len()];
        for (i, slot) in slots.iter_mut().enumerate() {
            slot.packets = 10;
            slot.bytes = 100 * (i as u64 + 1);
        }
        let sent = summarise(2.0, &slots, 3);
        assert_eq!(sent.packets, 10 * SCHEDULE.len() as u64);
        assert_eq!(sent.by_kind.len(), 8);
        let random = sent
            .by_kind
            .iter()
            .find(|(label, _)| *label == "random_vrrp")
            .map(|(_, t)| *t);
        assert_eq!(
            random,
            Some(KindTally {
                packets: 20,
                bytes: 300
            })
        );
        assert_eq!(sent.packets_per_second(), sent.packets as f64 / 2.0);
        assert_eq!(sent.send_errors, 3);
    }
}
