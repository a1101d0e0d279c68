//! Field values the codecs carry and the layers above share: the
//! centisecond intervals of VRRPv3 and a node's VRRP state. They live at
//! the bottom layer so that [`crate::wire`] depends on nothing above it;
//! [`crate::election`] computes with them.

use std::time::Duration;

/// A time interval in centiseconds, as carried by the 12-bit Max Adver Int
/// field (RFC 5798 §5.2.7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Centis(pub u16);

impl Centis {
    /// Largest value the 12-bit field can carry: 40.95 s.
    pub const MAX: Centis = Centis(4095);

    /// The interval as a [`Duration`] (1 cs = 10 ms).
    pub fn to_duration(self) -> Duration {
        Duration::from_millis(u64::from(self.0) * 10)
    }
}

/// A virtual router's state: RFC 5798 §6.4's three, plus `Fault`, a backup
/// that may not become master (a failed runbook or an unusable interface)
/// and says so in `status`. Heartbeats carry it as one byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VrrpState {
    /// Starting up, not yet backup or master (RFC 5798 §6.4.1).
    Initialize,
    /// Watching the master's adverts, ready to take over (RFC 5798 §6.4.2).
    Backup,
    /// Holding the virtual addresses and sending adverts (RFC 5798 §6.4.3).
    Master,
    /// A backup barred from becoming master (not in RFC 5798).
    Fault,
}

impl VrrpState {
    /// The lowercase name used in `status`, logs and the config: `"master"` etc.
    pub fn as_str(self) -> &'static str {
        match self {
            VrrpState::Initialize => "initialize",
            VrrpState::Backup => "backup",
            VrrpState::Master => "master",
            VrrpState::Fault => "fault",
        }
    }
}

impl std::fmt::Display for VrrpState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
