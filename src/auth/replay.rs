//! Replay protection: each sender's messages carry (incarnation, sequence),
//! and only a counter newer than the last one accepted passes.

use std::collections::BTreeMap;

/// A sender's message counter: the incarnation changes (grows) at every
/// start of the sender, the sequence grows with every message within it.
/// Ordered lexicographically, which is the order [`ReplayGuard`] requires.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct Counter {
    /// Grows at every start of the sender ([`super::next_incarnation`]),
    /// even when its clock steps back.
    pub incarnation: u64,
    /// Grows with every message the sender sends within one incarnation.
    pub seq: u64,
}

/// Why a counter was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    /// The counter is not greater than the last one accepted from the
    /// sender: a replayed, duplicated or reordered message.
    #[error(
        "replayed or reordered message: counter {}/{} is not newer than {}/{} \
         already accepted from this sender",
        got.incarnation, got.seq, last.incarnation, last.seq
    )]
    NotNewer {
        /// The counter the refused message carried.
        got: Counter,
        /// The newest counter already accepted from that sender.
        last: Counter,
    },
    /// The sender is new and the guard already tracks `capacity` senders;
    /// it refuses rather than forgets one (see [`ReplayGuard`]).
    #[error("replay guard full ({capacity} senders tracked); a new sender is refused")]
    TooManySenders {
        /// The most senders the guard tracks.
        capacity: usize,
    },
}

/// The newest counter accepted from each sender.
///
/// Memory bound: at most `capacity` senders are tracked (one key and one
/// [`Counter`] each). Only messages whose tag verified reach the guard, so
/// only a key holder can add senders; once full, new senders are refused
/// rather than old ones forgotten, since forgetting a sender would let its
/// recorded messages be replayed.
///
/// The guard lives in memory: after the *receiver* restarts, one recorded
/// message per sender can be replayed until that sender's next message
/// arrives. Heartbeats bound the harm: a lease needs acknowledgements of
/// the holder's *current* sequence, which a recording cannot contain.
#[derive(Clone, Debug)]
pub struct ReplayGuard<K> {
    last: BTreeMap<K, Counter>,
    capacity: usize,
    /// When each sender's last counter was accepted (for [`ReplayGuard::accept_at`]).
    accepted_at: BTreeMap<K, std::time::Instant>,
    /// Per sender, incarnations superseded since we started: never taken
    /// again.
    retired: BTreeMap<K, std::collections::VecDeque<u64>>,
}

/// How many superseded incarnations are remembered per sender.
const RETIRED_INCARNATIONS: usize = 16;

impl<K: Ord> ReplayGuard<K> {
    /// A guard tracking at most `capacity` senders.
    pub fn new(capacity: usize) -> Self {
        ReplayGuard {
            last: BTreeMap::new(),
            capacity,
            accepted_at: BTreeMap::new(),
            retired: BTreeMap::new(),
        }
    }

    /// Whether `counter` from `sender` would be accepted, without recording
    /// it (to check before other work that may still refuse the message).
    pub fn check(&self, sender: &K, counter: Counter) -> Result<(), ReplayError> {
        match self.last.get(sender) {
            Some(&last) if counter <= last => Err(ReplayError::NotNewer { got: counter, last }),
            Some(_) => Ok(()),
            None if self.last.len() >= self.capacity => Err(ReplayError::TooManySenders {
                capacity: self.capacity,
            }),
            None => Ok(()),
        }
    }

    /// Accepts `counter` from `sender` if it is newer than the last one
    /// accepted (a higher incarnation, or the same one and a higher
    /// sequence), and records it.
    pub fn accept(&mut self, sender: K, counter: Counter) -> Result<(), ReplayError> {
        self.check(&sender, counter)?;
        self.last.insert(sender, counter);
        Ok(())
    }

    /// [`ReplayGuard::accept`], and also a sender that restarted with a
    /// *lower* incarnation (its `state_dir` lost while its wall clock is
    /// behind): taken when nothing was accepted from it for `silence` and
    /// that incarnation was never superseded here. Without this, such a
    /// sender would be refused until it outgrew its old incarnation.
    pub fn accept_at(
        &mut self,
        sender: K,
        counter: Counter,
        now: std::time::Instant,
        silence: std::time::Duration,
    ) -> Result<(), ReplayError>
    where
        K: Clone,
    {
        let restarted = match (self.last.get(&sender), self.accepted_at.get(&sender)) {
            (Some(last), Some(at)) => {
                counter.incarnation != last.incarnation
                    && now.saturating_duration_since(*at) > silence
            }
            _ => false,
        };
        let retired = self
            .retired
            .get(&sender)
            .is_some_and(|r| r.contains(&counter.incarnation));
        if retired {
            let last = self.last.get(&sender).copied().unwrap_or_default();
            return Err(ReplayError::NotNewer { got: counter, last });
        }
        if !restarted {
            self.check(&sender, counter)?;
        }
        if let Some(last) = self.last.get(&sender) {
            if last.incarnation != counter.incarnation {
                let retired = self.retired.entry(sender.clone()).or_default();
                if retired.len() == RETIRED_INCARNATIONS {
                    retired.pop_front();
                }
                retired.push_back(last.incarnation);
            }
        }
        self.last.insert(sender.clone(), counter);
        self.accepted_at.insert(sender, now);
        Ok(())
    }

    /// The newest counter accepted from `sender`.
    pub fn last(&self, sender: &K) -> Option<Counter> {
        self.last.get(sender).copied()
    }

    /// Number of senders tracked.
    pub fn len(&self) -> usize {
        self.last.len()
    }

    /// Whether no sender is tracked yet.
    pub fn is_empty(&self) -> bool {
        self.last.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counter(incarnation: u64, seq: u64) -> Counter {
        Counter { incarnation, seq }
    }

    #[test]
    fn a_lower_incarnation_is_taken_after_silence_but_never_a_retired_one() {
        use std::time::{Duration, Instant};
        let silence = Duration::from_secs(10);
        let t0 = Instant::now();
        let mut guard = ReplayGuard::new(8);
        guard
            .accept_at("a", counter(500, 7), t0, silence)
            .expect("first");
        // Restarted with state_dir lost and the clock behind.
        let lower = counter(100, 1);
        assert!(guard
            .accept_at("a", lower, t0 + Duration::from_secs(5), silence)
            .is_err());
        let later = t0 + Duration::from_secs(11);
        assert_eq!(guard.accept_at("a", lower, later, silence), Ok(()));
        // The old incarnation is retired: a recording of it never passes.
        let much_later = later + Duration::from_secs(60);
        assert!(guard
            .accept_at("a", counter(500, 8), much_later, silence)
            .is_err());
    }

    #[test]
    fn a_first_message_is_accepted_then_only_newer_ones() {
        let mut guard = ReplayGuard::new(8);
        assert_eq!(guard.accept("a", counter(5, 10)), Ok(()));
        assert_eq!(guard.accept("a", counter(5, 11)), Ok(()));
        assert_eq!(
            guard.accept("a", counter(5, 11)),
            Err(ReplayError::NotNewer {
                got: counter(5, 11),
                last: counter(5, 11)
            })
        );
        assert!(guard.accept("a", counter(5, 3)).is_err());
        assert_eq!(guard.last(&"a"), Some(counter(5, 11)));
    }

    #[test]
    fn a_new_incarnation_restarts_the_sequence() {
        let mut guard = ReplayGuard::new(8);
        guard.accept("a", counter(5, 1000)).expect("first");
        assert_eq!(guard.accept("a", counter(6, 0)), Ok(()));
        assert!(
            guard.accept("a", counter(5, 1001)).is_err(),
            "older incarnation"
        );
    }

    #[test]
    fn senders_are_tracked_separately() {
        let mut guard = ReplayGuard::new(8);
        guard.accept("a", counter(5, 10)).expect("a");
        assert_eq!(guard.accept("b", counter(1, 1)), Ok(()));
        assert_eq!(guard.len(), 2);
    }

    #[test]
    fn check_does_not_record() {
        let mut guard = ReplayGuard::new(8);
        assert_eq!(guard.check(&"a", counter(1, 1)), Ok(()));
        assert!(guard.is_empty());
        guard.accept("a", counter(1, 1)).expect("a");
        assert!(guard.check(&"a", counter(1, 1)).is_err());
    }

    #[test]
    fn a_full_guard_refuses_new_senders_and_keeps_old_ones() {
        let mut guard = ReplayGuard::new(2);
        guard.accept(1, counter(1, 1)).expect("1");
        guard.accept(2, counter(1, 1)).expect("2");
        assert_eq!(
            guard.accept(3, counter(1, 1)),
            Err(ReplayError::TooManySenders { capacity: 2 })
        );
        assert_eq!(guard.accept(1, counter(1, 2)), Ok(()));
        assert!(guard.accept(1, counter(1, 1)).is_err());
    }
}
