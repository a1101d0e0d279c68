//! Random scenarios: a seed gives the nodes (priorities, intervals, preempt),
//! the network and a schedule of chaos; `run` plays it in three phases and
//! checks the invariants.
//!
//! 1. Chaos: every node starts at a random time; loss, delay, partitions,
//!    crashes, clean stops, restarts, faults, demote/promote/resume.
//! 2. Heal: no loss, one segment, every node up, no fault, no override; run
//!    quiet for 2 x Master_Down_Interval (largest interval, lowest priority)
//!    plus the longest preempt_delay plus a margin, then check: exactly one
//!    master; with preempt on everywhere, one of the highest priority (RFC
//!    5798 keeps an equal-priority master: §6.4.2 accepts ">=", so among
//!    equals the address only breaks ties between two masters, §6.4.3).
//! 3. Quiet: nothing changes for another stretch; no state change at all, no
//!    gratuitous-ARP resend, and every backup knows the master.

use std::fmt;
use std::net::Ipv4Addr;
use std::time::Duration;

use rcbsd_failover::election::timers::master_down_interval;
use rcbsd_failover::election::{Input, Params};
use rcbsd_failover::wire::{Centis, VrrpState};

use super::rng::Rng;
use super::world::{Network, World};

/// Promote's priority (`priority::PROMOTED`).
const PROMOTED: u8 = 254;

#[derive(Clone, Debug)]
pub enum Chaos {
    Start(usize),
    Crash(usize),
    Stop(usize),
    Partition(Vec<u32>),
    Heal,
    Loss(u64),
    Fault(usize, bool),
    Demote(usize),
    Promote(usize),
    Resume(usize),
}

pub struct Scenario {
    pub seed: u64,
    pub nodes: Vec<Params>,
    pub network: Network,
    pub chaos_for: Duration,
    pub chaos: Vec<(Duration, Chaos)>,
}

impl Scenario {
    pub fn generate(seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let n = rng.range(2, 7) as usize;
        let base = rng.pick(&[2u16, 5, 10, 25, 50, 100]);
        let priorities = priorities(&mut rng, n);
        let preempt_mode = rng.range(0, 99);
        let with_delays = rng.chance(30);
        let mut addresses: Vec<u8> = (1..=n as u8).collect();
        shuffle(&mut rng, &mut addresses);
        let nodes: Vec<Params> = (0..n)
            .map(|i| {
                let interval = if rng.chance(70) {
                    base
                } else {
                    base * rng.pick(&[2u16, 3])
                };
                let preempt = match preempt_mode {
                    0..=59 => true,
                    60..=74 => false,
                    _ => rng.chance(50),
                };
                let preempt_delay = if with_delays && rng.chance(50) {
                    Centis(interval).to_duration() * rng.range(1, 5) as u32
                } else {
                    Duration::ZERO
                };
                Params {
                    vrid: 51,
                    priority: priorities[i],
                    advert_interval: Centis(interval),
                    preempt,
                    preempt_delay,
                    primary_address: Ipv4Addr::new(198, 18, 0, addresses[i]).into(),
                }
            })
            .collect();
        let min_interval = nodes
            .iter()
            .map(|p| p.advert_interval)
            .min()
            .unwrap_or(Centis(base));
        let max_interval = max_interval(&nodes);
        let network = Network {
            loss_percent: rng.range(0, 30),
            max_delay: rng.duration_up_to(min_interval.to_duration() / 2),
        };
        let chaos_for = max_interval.to_duration() * rng.range(40, 150) as u32;
        let mut chaos: Vec<(Duration, Chaos)> = (0..n)
            .map(|i| {
                let at = rng.duration_up_to(max_interval.to_duration() * 2);
                (at, Chaos::Start(i))
            })
            .collect();
        for _ in 0..rng.range(5, 40) {
            let at = rng.duration_up_to(chaos_for);
            let node = rng.range(0, n as u64 - 1) as usize;
            let what = match rng.range(0, 11) {
                0 => Chaos::Crash(node),
                1 => Chaos::Stop(node),
                2 | 3 => Chaos::Start(node),
                4 => {
                    let groups = rng.range(2, 3);
                    Chaos::Partition((0..n).map(|_| rng.range(0, groups - 1) as u32).collect())
                }
                5 => Chaos::Heal,
                6 => Chaos::Loss(rng.range(0, 30)),
                7 => Chaos::Fault(node, rng.chance(50)),
                8 => Chaos::Demote(node),
                9 => Chaos::Promote(node),
                _ => Chaos::Resume(node),
            };
            chaos.push((at, what));
        }
        chaos.sort_by_key(|(at, _)| *at);
        Scenario {
            seed,
            nodes,
            network,
            chaos_for,
            chaos,
        }
    }

    /// Play the three phases; `Err` says which invariant broke and when.
    pub fn run(&self) -> Result<(), Failure> {
        let mut world = World::new(self.nodes.clone(), self.network, self.seed);
        let result = self.play(&mut world);
        result.map_err(|reason| Failure {
            reason,
            recent: world.recent_transitions(30),
        })
    }

    fn play(&self, world: &mut World) -> Result<(), String> {
        for (at, what) in &self.chaos {
            world.run_until(*at)?;
            self.apply(world, what)?;
        }
        world.run_until(self.chaos_for)?;

        // Phase 2: heal everything, then wait for the bound.
        world.set_network(Network {
            loss_percent: 0,
            ..self.network
        });
        world.heal();
        for i in 0..world.len() {
            if world.is_up(i) {
                world.input(i, Input::SetFault(false))?;
                let configured = world.configured(i).clone();
                let priority = configured.priority;
                world.reload(i, configured, priority)?;
            } else {
                world.start(i)?;
            }
        }
        let healed = world.now();
        world.run_until(healed + self.settle_bound())?;
        self.check_settled(world)?;

        // Phase 3: nothing changes, so nothing may move.
        let settled_at = world.now();
        let transitions = world.transitions.len();
        let garps = world.garps.len();
        world.run_until(settled_at + self.quiet_stretch())?;
        if world.transitions.len() != transitions {
            let first = &world.transitions[transitions];
            return Err(format!(
                "flapping: n{} {} -> {} ({}) at {:?} with nothing changing",
                first.node,
                first.from,
                first.to,
                first.reason.as_str(),
                first.at
            ));
        }
        if world.garps.len() != garps {
            return Err("gratuitous ARPs re-sent while stable".to_owned());
        }
        let master = self.check_settled(world)?;
        let address = self.nodes[master].primary_address;
        for i in 0..world.len() {
            let known = world.router(i).and_then(|r| r.master());
            if known != Some(address) {
                return Err(format!(
                    "n{i} thinks the master is {known:?}, not n{master}"
                ));
            }
        }
        Ok(())
    }

    fn apply(&self, world: &mut World, what: &Chaos) -> Result<(), String> {
        match what {
            Chaos::Start(i) => world.start(*i),
            Chaos::Crash(i) => {
                world.crash(*i);
                Ok(())
            }
            Chaos::Stop(i) => world.stop(*i),
            Chaos::Partition(groups) => {
                world.partition(groups.clone());
                Ok(())
            }
            Chaos::Heal => {
                world.heal();
                Ok(())
            }
            Chaos::Loss(percent) => {
                world.set_network(Network {
                    loss_percent: *percent,
                    ..self.network
                });
                Ok(())
            }
            Chaos::Fault(i, on) => world.input(*i, Input::SetFault(*on)),
            Chaos::Demote(i) => world.input(*i, Input::SetPriority(0)),
            Chaos::Promote(i) => {
                // As the agent does it: preempt forced on, priority 254
                // (an address owner keeps 255).
                let mut params = self.nodes[*i].clone();
                params.preempt = true;
                let priority = params.priority.max(PROMOTED);
                world.reload(*i, params, priority)
            }
            Chaos::Resume(i) => {
                let params = self.nodes[*i].clone();
                let priority = params.priority;
                world.reload(*i, params, priority)
            }
        }
    }

    /// 2 x Master_Down_Interval for the largest interval and the lowest
    /// priority, plus the longest preempt_delay, plus two intervals and two
    /// network delays of margin.
    pub fn settle_bound(&self) -> Duration {
        let max_interval = max_interval(&self.nodes);
        let lowest = self.nodes.iter().map(|p| p.priority).min().unwrap_or(1);
        let longest_delay = self
            .nodes
            .iter()
            .map(|p| p.preempt_delay)
            .max()
            .unwrap_or_default();
        master_down_interval(lowest, max_interval) * 2
            + longest_delay
            + max_interval.to_duration() * 2
            + self.network.max_delay * 2
    }

    fn quiet_stretch(&self) -> Duration {
        let max_interval = max_interval(&self.nodes);
        let lowest = self.nodes.iter().map(|p| p.priority).min().unwrap_or(1);
        master_down_interval(lowest, max_interval) + max_interval.to_duration() * 2
    }

    /// Exactly one master, of the highest priority when everybody preempts;
    /// nobody in Fault or down. Returns the master.
    fn check_settled(&self, world: &World) -> Result<usize, String> {
        for i in 0..world.len() {
            match world.state(i) {
                VrrpState::Fault | VrrpState::Initialize => {
                    return Err(format!("n{i} is in {} after the heal", world.state(i)));
                }
                VrrpState::Backup | VrrpState::Master => {}
            }
        }
        let masters = world.masters();
        let [master] = masters[..] else {
            return Err(format!(
                "{} masters {masters:?} at {:?}, {:?} after the heal",
                masters.len(),
                world.now(),
                world.now().saturating_sub(self.chaos_for)
            ));
        };
        if self.nodes.iter().all(|p| p.preempt) {
            let highest = self.nodes.iter().map(|p| p.priority).max().unwrap_or(0);
            if self.nodes[master].priority != highest {
                return Err(format!(
                    "n{master} (priority {}) is master but the highest priority is {highest}",
                    self.nodes[master].priority
                ));
            }
        }
        Ok(master)
    }
}

/// Why a scenario failed, with the transitions that led there.
pub struct Failure {
    pub reason: String,
    pub recent: String,
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} nodes, loss {}%, delay up to {:?}, chaos for {:?}, settle bound {:?}",
            self.nodes.len(),
            self.network.loss_percent,
            self.network.max_delay,
            self.chaos_for,
            self.settle_bound()
        )?;
        for (i, p) in self.nodes.iter().enumerate() {
            writeln!(
                f,
                "  n{i}: {} priority {} interval {}0 ms preempt {} preempt_delay {:?}",
                p.primary_address, p.priority, p.advert_interval.0, p.preempt, p.preempt_delay
            )?;
        }
        for (at, what) in &self.chaos {
            writeln!(f, "  {at:>10.3?} {what:?}")?;
        }
        Ok(())
    }
}

/// Distinct (half the seeds), with ties, or distinct with one address owner.
fn priorities(rng: &mut Rng, n: usize) -> Vec<u8> {
    match rng.range(0, 3) {
        0 | 1 => {
            let mut all: Vec<u8> = (1..=254).collect();
            shuffle(rng, &mut all);
            all.truncate(n);
            all
        }
        2 => (0..n).map(|_| rng.pick(&[50u8, 100, 150])).collect(),
        _ => {
            let mut all: Vec<u8> = (1..=254).collect();
            shuffle(rng, &mut all);
            all.truncate(n);
            if let Some(first) = all.first_mut() {
                *first = 255;
            }
            all
        }
    }
}

fn shuffle<T>(rng: &mut Rng, items: &mut [T]) {
    for i in (1..items.len()).rev() {
        let j = rng.range(0, i as u64) as usize;
        items.swap(i, j);
    }
}

fn max_interval(nodes: &[Params]) -> Centis {
    nodes
        .iter()
        .map(|p| p.advert_interval)
        .max()
        .unwrap_or(Centis(100))
}
