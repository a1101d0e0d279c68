//! The effective priority: what the node advertises and elects with, derived
//! from the configured priority and everything that may override it.

use serde::{Deserialize, Serialize};

/// An operator's standing instruction, stored in `state_dir` so it survives a
/// restart (a node demoted for maintenance stays demoted after a reboot).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Override {
    /// No instruction: the node elects with its configured priority.
    #[default]
    None,
    /// Become master now: priority 254 (or 255 if configured) with preemption.
    Promote,
    /// Give up mastership and do not take it until cleared.
    Demote,
}

impl Override {
    /// The lowercase name used in `status` and in the `override_*` events
    /// (the same as the serde form).
    pub fn as_str(self) -> &'static str {
        match self {
            Override::None => "none",
            Override::Promote => "promote",
            Override::Demote => "demote",
        }
    }
}

/// The address owner's priority (RFC 5798 §5.2.4): never adjusted.
pub const OWNER: u8 = 255;

/// The priority a promoted node advertises: the highest a non-owner may use
/// (RFC 5798 §5.2.4 reserves 255 for the address owner).
pub const PROMOTED: u8 = 254;

/// Everything that decides the advertised priority; the core only ever
/// sees the resulting number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Inputs {
    /// The `priority` from the configuration, 1..=255 (255 = address owner).
    pub configured: u8,
    /// The operator's standing instruction, if any.
    pub override_: Override,
    /// False for a node that may never be master (e.g. no storage configured).
    pub may_be_master: bool,
    /// This node hears a strict majority of `[cluster] nodes` (always true
    /// without `[cluster]`): a node without quorum may not become master,
    /// and a master that loses it resigns.
    pub quorum: bool,
    /// Added by the health checks while they fail (`[[track]]` weights and
    /// `health.track_file`, keepalived's weight): the result stays in
    /// 1..=254, and an address owner (255) keeps 255.
    pub health_delta: i32,
}

/// The effective priority: 0 means ineligible (never become master; resign
/// if master).
pub fn effective(inputs: Inputs) -> u8 {
    if !inputs.may_be_master || !inputs.quorum {
        return 0;
    }
    match inputs.override_ {
        Override::None if inputs.configured == OWNER => OWNER,
        Override::None => {
            let adjusted = i32::from(inputs.configured) + inputs.health_delta;
            u8::try_from(adjusted.clamp(1, i32::from(PROMOTED))).unwrap_or(PROMOTED)
        }
        Override::Promote => inputs.configured.max(PROMOTED),
        Override::Demote => 0,
    }
}

/// Whether preemption is on: `promote` forces it, so the promoted node takes
/// over from a running lower-priority master.
pub fn preempt(configured: bool, override_: Override) -> bool {
    configured || override_ == Override::Promote
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(configured: u8, override_: Override) -> Inputs {
        Inputs {
            configured,
            override_,
            may_be_master: true,
            quorum: true,
            health_delta: 0,
        }
    }

    #[test]
    fn a_health_delta_moves_the_priority_within_1_to_254_but_not_the_owners() {
        let with = |configured, delta| {
            effective(Inputs {
                health_delta: delta,
                ..inputs(configured, Override::None)
            })
        };
        assert_eq!(with(100, -50), 50);
        assert_eq!(with(100, -200), 1, "still eligible, lowest");
        assert_eq!(with(200, 100), 254, "never the owner's 255");
        assert_eq!(with(255, -100), 255, "the address owner keeps 255");
        let promoted = effective(Inputs {
            health_delta: -100,
            ..inputs(100, Override::Promote)
        });
        assert_eq!(promoted, 254, "promote wins over the weights");
    }

    #[test]
    fn no_override_keeps_configured_priority() {
        assert_eq!(effective(inputs(100, Override::None)), 100);
    }

    #[test]
    fn promote_raises_to_254_but_keeps_owner_at_255() {
        assert_eq!(effective(inputs(100, Override::Promote)), 254);
        assert_eq!(effective(inputs(255, Override::Promote)), 255);
    }

    #[test]
    fn demote_and_ineligible_mean_zero() {
        assert_eq!(effective(inputs(255, Override::Demote)), 0);
        let mut i = inputs(200, Override::Promote);
        i.may_be_master = false;
        assert_eq!(effective(i), 0);
    }

    #[test]
    fn no_quorum_means_zero_even_when_promoted() {
        let mut i = inputs(255, Override::Promote);
        i.quorum = false;
        assert_eq!(effective(i), 0);
    }

    #[test]
    fn promote_forces_preemption() {
        assert!(preempt(false, Override::Promote));
        assert!(!preempt(false, Override::Demote));
        assert!(preempt(true, Override::None));
    }
}
