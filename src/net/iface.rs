//! Interface queries: index, IPv4 and IPv6 addresses, Ethernet address,
//! link state.
//!
//! Everything goes through `getifaddrs(3)` and `if_nametoindex(3)`, which
//! exist with the same meaning on FreeBSD and Linux; only the link-layer
//! entry differs (`AF_LINK` with a `sockaddr_dl` on FreeBSD, `AF_PACKET`
//! with a `sockaddr_ll` on Linux), and nix hides that behind `LinkAddr`.
//! Results are read fresh on every call: addresses change under us (the
//! VIP comes and goes, an operator adds an alias).

use std::net::{Ipv4Addr, Ipv6Addr};

use nix::errno::Errno;
use nix::ifaddrs::{getifaddrs, InterfaceAddress};

use super::error::NetError;

/// The interface's index, as the kernel reports it in `IP_PKTINFO`
/// (Linux) or `IP_RECVIF` (FreeBSD) for received packets.
pub fn interface_index(name: &str) -> Result<u32, NetError> {
    nix::net::if_::if_nametoindex(name).map_err(|errno| NetError::NoSuchInterface {
        interface: name.to_owned(),
        errno,
    })
}

/// The IPv4 addresses of the interface with their prefix lengths, in the
/// order the kernel lists them (on both systems: the primary first, then
/// aliases/secondaries in the order they were added).
pub fn ipv4_addresses(name: &str) -> Result<Vec<(Ipv4Addr, u8)>, NetError> {
    let mut found = Vec::new();
    for entry in entries_of(name)? {
        let Some(address) = entry.address.as_ref().and_then(|a| a.as_sockaddr_in()) else {
            continue;
        };
        let prefix = entry
            .netmask
            .as_ref()
            .and_then(|m| m.as_sockaddr_in())
            .map_or(32, |m| prefix_len(m.ip()));
        found.push((address.ip(), prefix));
    }
    Ok(found)
}

/// The IPv6 addresses of the interface with their prefix lengths, in the
/// order the kernel lists them; link-local ones included (their scope is
/// this interface). Tentative addresses (DAD still running) are listed too:
/// getifaddrs(3) does not say.
pub fn ipv6_addresses(name: &str) -> Result<Vec<(Ipv6Addr, u8)>, NetError> {
    let mut found = Vec::new();
    for entry in entries_of(name)? {
        let Some(address) = entry.address.as_ref().and_then(|a| a.as_sockaddr_in6()) else {
            continue;
        };
        let prefix = entry
            .netmask
            .as_ref()
            .and_then(|m| m.as_sockaddr_in6())
            .map_or(128, |m| ones(u128::from(m.ip()).count_ones()));
        found.push((address.ip(), prefix));
    }
    Ok(found)
}

/// The source of IPv6 adverts (RFC 5798 §5.1.2.1: "the IPv6 link-local
/// address of the interface the packet is being sent from") and of our
/// Neighbor Advertisements: the interface's first link-local address that
/// is not a virtual one (the virtual router's link-local address is on the
/// interface while we are master).
pub fn link_local_address(name: &str, virtual_ips: &[Ipv6Addr]) -> Result<Ipv6Addr, NetError> {
    let link_local: Vec<_> = ipv6_addresses(name)?
        .into_iter()
        .filter(|(address, _)| address.is_unicast_link_local())
        .collect();
    first_non_virtual(&link_local, virtual_ips).ok_or_else(|| NetError::NoLinkLocalAddress {
        interface: name.to_owned(),
    })
}

/// The interface's Ethernet address: the sender hardware address of our
/// gratuitous ARPs.
pub fn mac_address(name: &str) -> Result<[u8; 6], NetError> {
    entries_of(name)?
        .iter()
        .filter_map(|entry| entry.address.as_ref()?.as_link_addr()?.addr())
        // A link entry with an all-zero address (loopback, tunnels) has no
        // Ethernet address we could announce.
        .find(|mac| mac.iter().any(|&b| b != 0))
        .ok_or_else(|| NetError::NoMacAddress {
            interface: name.to_owned(),
        })
}

/// Whether the interface is administratively up *and* has a carrier: a
/// link without carrier carries no advertisements, so for failover it is as
/// good as down.
pub fn is_up(name: &str) -> Result<bool, NetError> {
    CarrierProbe::open(name)?.is_up()
}

/// Reads one interface's carrier again and again: the agent's loop asks
/// after every link message and on its slow safety poll. On Linux it keeps
/// the socket its ioctl needs (one `SIOCGIFFLAGS` per look, not a socket,
/// an ioctl and a close); on FreeBSD it reads `getifaddrs(3)`.
pub struct CarrierProbe {
    name: String,
    #[cfg(target_os = "linux")]
    socket: std::os::fd::OwnedFd,
}

impl CarrierProbe {
    /// A probe of the interface `name` (which need not exist yet).
    pub fn open(name: &str) -> Result<CarrierProbe, NetError> {
        #[cfg(target_os = "linux")]
        {
            let socket = nix::sys::socket::socket(
                nix::sys::socket::AddressFamily::Inet,
                nix::sys::socket::SockType::Datagram,
                nix::sys::socket::SockFlag::SOCK_CLOEXEC,
                None,
            )
            .map_err(|errno| NetError::NoSuchInterface {
                interface: name.to_owned(),
                errno,
            })?;
            Ok(CarrierProbe {
                name: name.to_owned(),
                socket,
            })
        }
        #[cfg(not(target_os = "linux"))]
        Ok(CarrierProbe {
            name: name.to_owned(),
        })
    }

    /// Whether the interface is up with a carrier now.
    pub fn is_up(&self) -> Result<bool, NetError> {
        #[cfg(target_os = "linux")]
        {
            linux_is_up(&self.name, &self.socket)
        }
        #[cfg(target_os = "freebsd")]
        {
            freebsd_is_up(&self.name)
        }
    }
}

/// `SIOCGIFFLAGS` on `socket`: up and running (Linux sets `IFF_RUNNING`
/// with the carrier, netdevice(7)).
#[cfg(target_os = "linux")]
fn linux_is_up(name: &str, socket: &std::os::fd::OwnedFd) -> Result<bool, NetError> {
    use std::os::fd::AsRawFd;
    let no_such = |errno| NetError::NoSuchInterface {
        interface: name.to_owned(),
        errno,
    };
    let bytes = name.as_bytes();
    // SAFETY: ifreq is plain old data; all zeroes is a valid value.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    if bytes.is_empty() || bytes.len() >= request.ifr_name.len() || bytes.contains(&0) {
        return Err(no_such(Errno::EINVAL));
    }
    for (slot, byte) in request.ifr_name.iter_mut().zip(bytes) {
        *slot = *byte as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads into the ifreq we own; the socket is open
    // for as long as `socket` is borrowed.
    let result = unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCGIFFLAGS as _, &mut request) };
    if result < 0 {
        return Err(no_such(Errno::last()));
    }
    // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
    let flags = i32::from(unsafe { request.ifr_ifru.ifru_flags });
    Ok(flags & libc::IFF_UP != 0 && flags & libc::IFF_RUNNING != 0)
}

/// Whether the interface is up and its link state is up. On FreeBSD
/// `IFF_RUNNING` only says the driver runs; the carrier is the link state
/// in the `AF_LINK` entry's `if_data` (what ifconfig(8) shows as "status").
/// An unknown link state (some virtual interfaces) counts as up.
#[cfg(target_os = "freebsd")]
fn freebsd_is_up(name: &str) -> Result<bool, NetError> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list freed below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(NetError::NoSuchInterface {
            interface: name.to_owned(),
            errno: Errno::last(),
        });
    }
    let mut found = None;
    let mut cursor = head;
    while !cursor.is_null() {
        // SAFETY: cursor walks the list getifaddrs returned.
        let entry = unsafe { &*cursor };
        cursor = entry.ifa_next;
        // SAFETY: ifa_name is a NUL-terminated string owned by the list.
        let entry_name = unsafe { std::ffi::CStr::from_ptr(entry.ifa_name) };
        if entry_name.to_bytes() != name.as_bytes() || entry.ifa_addr.is_null() {
            continue;
        }
        // SAFETY: ifa_addr is non-null and points to a sockaddr.
        let family = i32::from(unsafe { (*entry.ifa_addr).sa_family });
        if family != libc::AF_LINK || entry.ifa_data.is_null() {
            continue;
        }
        // SAFETY: for AF_LINK entries ifa_data points to a struct if_data.
        let data = unsafe { &*(entry.ifa_data as *const libc::if_data) };
        let up = entry.ifa_flags & (libc::IFF_UP as libc::c_uint) != 0;
        let link = i32::from(data.ifi_link_state);
        found = Some(up && link != libc::LINK_STATE_DOWN);
        break;
    }
    // SAFETY: head came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    found.ok_or_else(|| NetError::NoSuchInterface {
        interface: name.to_owned(),
        errno: Errno::ENODEV,
    })
}

/// The address our advertisements are sent from and the tie-breaker of
/// RFC 5798 §6.4.3: the interface's first IPv4 address that is not one of
/// the virtual IPs (a VIP may already be present, e.g. left by a crashed
/// run, and must never be taken for our own address).
pub fn primary_address(name: &str, virtual_ips: &[Ipv4Addr]) -> Result<Ipv4Addr, NetError> {
    first_non_virtual(&ipv4_addresses(name)?, virtual_ips).ok_or_else(|| {
        NetError::NoPrimaryAddress {
            interface: name.to_owned(),
        }
    })
}

fn first_non_virtual<A: Copy + PartialEq>(addresses: &[(A, u8)], virtual_ips: &[A]) -> Option<A> {
    addresses
        .iter()
        .map(|&(address, _)| address)
        .find(|address| !virtual_ips.contains(address))
}

/// Every `getifaddrs` entry of the interface; an interface always has at
/// least its link-layer entry, so none at all means it does not exist.
fn entries_of(name: &str) -> Result<Vec<InterfaceAddress>, NetError> {
    let entries: Vec<InterfaceAddress> = getifaddrs()
        .map_err(NetError::ListAddresses)?
        .filter(|entry| entry.interface_name == name)
        .collect();
    if entries.is_empty() {
        return Err(NetError::NoSuchInterface {
            interface: name.to_owned(),
            errno: Errno::ENODEV,
        });
    }
    Ok(entries)
}

/// Prefix length of a netmask; a non-contiguous mask (never configured by
/// `ip` or `ifconfig`) counts its set bits.
fn prefix_len(mask: Ipv4Addr) -> u8 {
    ones(u32::from(mask).count_ones())
}

/// A count of mask bits (at most 128) as a prefix length.
fn ones(count: u32) -> u8 {
    u8::try_from(count).unwrap_or(u8::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_len_of_usual_masks() {
        assert_eq!(prefix_len(Ipv4Addr::new(255, 255, 255, 0)), 24);
        assert_eq!(prefix_len(Ipv4Addr::new(255, 255, 255, 255)), 32);
        assert_eq!(prefix_len(Ipv4Addr::new(255, 254, 0, 0)), 15);
        assert_eq!(prefix_len(Ipv4Addr::UNSPECIFIED), 0);
    }

    #[test]
    fn primary_skips_virtual_ips_even_when_listed_first() {
        let vip = Ipv4Addr::new(198, 18, 0, 100);
        let own = Ipv4Addr::new(198, 18, 0, 1);
        let listed = [(vip, 32), (own, 24)];
        assert_eq!(first_non_virtual(&listed, &[vip]), Some(own));
    }

    #[test]
    fn primary_is_none_when_only_virtual_ips_are_present() {
        let vip = Ipv4Addr::new(198, 18, 0, 100);
        assert_eq!(first_non_virtual(&[(vip, 24)], &[vip]), None);
        assert_eq!(first_non_virtual(&[], &[vip]), None);
    }

    #[test]
    fn loopback_is_found_with_its_address() {
        // `lo` exists on every Linux machine and network namespace.
        if cfg!(target_os = "linux") {
            let addresses = ipv4_addresses("lo").expect("lo has addresses");
            assert!(addresses.contains(&(Ipv4Addr::LOCALHOST, 8)));
            assert!(interface_index("lo").expect("lo has an index") > 0);
        }
    }

    #[test]
    fn loopback_has_its_ipv6_address_and_no_link_local() {
        // `lo` has ::1/128 wherever IPv6 is enabled, and never a link-local.
        if cfg!(target_os = "linux") && std::path::Path::new("/proc/net/if_inet6").exists() {
            let addresses = ipv6_addresses("lo").expect("lo has addresses");
            if addresses.iter().any(|&(a, _)| a == Ipv6Addr::LOCALHOST) {
                assert!(addresses.contains(&(Ipv6Addr::LOCALHOST, 128)));
                assert!(matches!(
                    link_local_address("lo", &[]),
                    Err(NetError::NoLinkLocalAddress { .. })
                ));
            }
        }
    }

    #[test]
    fn the_link_local_source_skips_the_virtual_link_local() {
        let virtual_ll = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0x51);
        let own = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
        let listed = [(virtual_ll, 64), (own, 64)];
        assert_eq!(first_non_virtual(&listed, &[virtual_ll]), Some(own));
    }

    #[test]
    fn unknown_interface_is_a_clear_error() {
        let err = interface_index("rcbsd-nonexist").unwrap_err();
        assert!(err.to_string().contains("rcbsd-nonexist"), "{err}");
        assert!(matches!(
            ipv4_addresses("rcbsd-nonexist"),
            Err(NetError::NoSuchInterface { .. })
        ));
    }
}
