//! The fake network: who can reach whom (partitions, asymmetric cuts), and
//! what happens to each message (loss, duplication, delay, hence
//! reordering). Adverts (the multicast segment) and heartbeats (unicast)
//! share the links: a cut node hears neither.

use std::time::Duration;

use crate::rng::Rng;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conditions {
    /// Chance, in percent, that one copy to one receiver is lost.
    pub loss_percent: u64,
    /// Chance, in percent, that a message is delivered twice.
    pub duplicate_percent: u64,
    /// Each copy is delayed uniformly in `0..=max_delay`.
    pub max_delay: Duration,
}

pub struct Links {
    /// `cut[from][to]`: nothing sent by `from` reaches `to`.
    cut: Vec<Vec<bool>>,
}

impl Links {
    pub fn new(nodes: usize) -> Self {
        Links {
            cut: vec![vec![false; nodes]; nodes],
        }
    }

    pub fn heal(&mut self) {
        for row in &mut self.cut {
            row.fill(false);
        }
    }

    /// Nodes reach each other only within their group.
    pub fn partition(&mut self, groups: &[u8]) {
        for (from, row) in self.cut.iter_mut().enumerate() {
            for (to, cut) in row.iter_mut().enumerate() {
                *cut = groups[from] != groups[to];
            }
        }
    }

    /// One direction only: `from` is no longer heard by `to`.
    pub fn cut_one_way(&mut self, from: usize, to: usize) {
        self.cut[from][to] = true;
    }

    pub fn reaches(&self, from: usize, to: usize) -> bool {
        !self.cut[from][to]
    }
}

/// The delays of the copies of one message that arrive (none, one or two).
pub fn deliveries(rng: &mut Rng, conditions: &Conditions) -> Vec<Duration> {
    let copies = if rng.chance(conditions.duplicate_percent) {
        2
    } else {
        1
    };
    let mut delays = Vec::new();
    for _ in 0..copies {
        if !rng.chance(conditions.loss_percent) {
            delays.push(rng.duration_up_to(conditions.max_delay));
        }
    }
    delays
}
