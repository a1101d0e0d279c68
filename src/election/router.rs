//! The RFC 5798 §6.4 state machine of one virtual router, with the
//! clarifications of RFC 9568 (which obsoletes it; same section numbers).
//!
//! One [`Router`] is one VRRP router for one VRID. Inputs are events with the
//! time they happened; outputs are [`Action`]s in the order the edges must
//! carry them out. Two timers exist in the RFC (§6.2): the Adver_Timer, armed
//! only in Master, and the Master_Down_Timer, armed only in Backup (and in our
//! Fault state, which is a backup that may not take over). A router therefore
//! runs at most one timer at a time, modelled as [`Timer`].
//!
//! Beyond the RFC (each documented at its rule, and in `docs/election.md`):
//! - the *effective priority* (0 = ineligible) and the Fault state, which both
//!   keep the node tracking the master without ever taking over;
//! - `preempt_delay`, as keepalived does it;
//! - a master that hears a lower-priority master answers at once and asks the
//!   edges to re-send its gratuitous ARPs (a healed partition).

use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::timers::{master_down_interval, skew_time};
use super::{Action, Input, Params, Reason, ReceivedAdvert};
use crate::wire::{Centis, VrrpState};

/// The priority the address owner uses (RFC 5798 §5.2.4, §6.4.1).
const OWNER_PRIORITY: u8 = 255;

/// A master answers a lower-priority master (advert + gratuitous-ARP burst) at
/// most once per Advertisement_Interval, and never more often than this: at
/// 20 ms adverts, a peer that cannot hear us would otherwise cost us fifty
/// ARP bursts a second. The first answer is always immediate.
const MIN_OTHER_MASTER_ANSWER_SPACING: Duration = Duration::from_secs(1);

/// The one timer a router runs (RFC 5798 §6.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Timer {
    /// Initialize: nothing runs.
    Idle,
    /// Master: send the next advertisement at this time.
    Adver(Instant),
    /// Backup/Fault: the master is presumed down at this time.
    MasterDown {
        at: Instant,
        /// Armed with Skew_Time by a priority-0 advert (§6.4.2): the master
        /// resigned, so the takeover's reason is `MasterResigned`.
        after_resign: bool,
    },
}

/// One virtual router's election state. See the module documentation.
#[derive(Debug, Clone)]
pub struct Router {
    params: Params,
    state: VrrpState,
    /// The priority given by [`Input::SetPriority`]; until then, the
    /// configured one. It survives [`Router::set_params`]: the caller owns
    /// the effective priority (configuration, override, fault, quorum).
    priority_set: Option<u8>,
    /// Whether the caller asked for the Fault state (also remembered while
    /// in Initialize, so that Startup enters Fault).
    fault: bool,
    timer: Timer,
    /// Master_Adver_Interval (§6.1): learned from the master's adverts in
    /// Backup (§6.4.2); our own Advertisement_Interval otherwise.
    master_adver_interval: Centis,
    /// The master's primary address as last heard in Backup/Fault.
    known_master: Option<IpAddr>,
    /// When this backup first heard a lower-priority master it would preempt
    /// were it not for `preempt_delay`; cleared by a higher or equal advert
    /// and by every transition.
    preempt_hold_since: Option<Instant>,
    /// When this master last answered a lower-priority master.
    last_other_master_answer: Option<Instant>,
    /// When this master last heard another master (lower, or resigning).
    last_other_master_heard: Option<Instant>,
}

impl Router {
    /// A router in the Initialize state with no timer armed; it starts
    /// electing on [`Input::Startup`] (§6.4.1).
    pub fn new(params: Params) -> Self {
        let master_adver_interval = clamp_interval(params.advert_interval);
        Router {
            params,
            state: VrrpState::Initialize,
            priority_set: None,
            fault: false,
            timer: Timer::Idle,
            master_adver_interval,
            known_master: None,
            preempt_hold_since: None,
            last_other_master_answer: None,
            last_other_master_heard: None,
        }
    }

    /// Handle one input that happened at `now`; returns the actions to carry
    /// out, in order.
    pub fn handle(&mut self, input: Input, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        match input {
            Input::Startup => self.startup(now, &mut out),
            Input::Shutdown => self.shutdown(&mut out),
            Input::Advert(advert) => self.advert(advert, now, &mut out),
            Input::Timeout => self.timeout(now, &mut out),
            Input::SetPriority(priority) => self.set_priority(priority, now, &mut out),
            Input::SetFault(fault) => self.set_fault(fault, now, &mut out),
        }
        out
    }

    /// When the caller must deliver [`Input::Timeout`]: the armed timer, if any.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.timer {
            Timer::Idle => None,
            Timer::Adver(at) | Timer::MasterDown { at, .. } => Some(at),
        }
    }

    /// The current §6.4 state (Initialize, Backup, Master, or our Fault).
    pub fn state(&self) -> VrrpState {
        self.state
    }

    /// The parameters in force: those given to [`Router::new`] or the last
    /// [`Router::set_params`].
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Apply a reloaded configuration, keeping the role where it stays valid.
    ///
    /// The effective priority set by [`Input::SetPriority`] is kept (the
    /// caller recomputes it and sends it right after); until the first
    /// `SetPriority` it follows the configured priority. Preempt_Mode and
    /// `preempt_delay` take effect with the next advertisement heard. A
    /// master whose advertised fields changed (priority, interval, address)
    /// sends one advertisement at once so that backups learn them now. A new
    /// VRID is a different virtual router: Shutdown, then Startup.
    pub fn set_params(&mut self, params: Params, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        let old_priority = self.effective_priority();
        let old = std::mem::replace(&mut self.params, params);
        if self.state == VrrpState::Initialize {
            self.master_adver_interval = self.advertisement_interval();
            return out;
        }
        if old.vrid != self.params.vrid {
            self.shutdown(&mut out);
            self.startup(now, &mut out);
            return out;
        }
        let priority = self.effective_priority();
        match self.state {
            VrrpState::Master if priority == 0 => self.resign(now, &mut out),
            VrrpState::Master => {
                let advertised_changed = priority != old_priority
                    || old.advert_interval != self.params.advert_interval
                    || old.primary_address != self.params.primary_address;
                if advertised_changed {
                    self.send_advert_now(now, &mut out);
                }
            }
            // Backup/Fault: a new priority changes Skew_Time, which is used
            // from the next reset of the Master_Down_Timer on (§6.4.2).
            VrrpState::Backup | VrrpState::Fault | VrrpState::Initialize => {}
        }
        out
    }

    /// Become Master now, from Backup, as if the Master_Down_Timer had fired
    /// (§6.4.2: advert, Adver_Timer, Master) but for `reason`: used by
    /// [`super::SyncedRouter`] when the node becomes `[vrrp]` master. Does
    /// nothing outside Backup or with effective priority 0.
    pub fn take_over(&mut self, reason: Reason, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        if self.state == VrrpState::Backup && self.effective_priority() > 0 {
            self.become_master(reason, now, &mut out);
        }
        out
    }

    /// The priority this router elects and advertises with; 0 = ineligible.
    pub fn effective_priority(&self) -> u8 {
        self.priority_set.unwrap_or(self.params.priority)
    }

    /// The current master's address: ours when master, the last one heard in
    /// Backup/Fault, `None` when unknown (Initialize, or the master went
    /// silent or resigned).
    pub fn master(&self) -> Option<IpAddr> {
        match self.state {
            VrrpState::Master => Some(self.params.primary_address),
            VrrpState::Backup | VrrpState::Fault => self.known_master,
            VrrpState::Initialize => None,
        }
    }

    /// Master_Adver_Interval (§6.1): our own Advertisement_Interval when
    /// master, the one learned from the master otherwise.
    pub fn master_advert_interval(&self) -> Centis {
        match self.state {
            VrrpState::Master => self.advertisement_interval(),
            _ => self.master_adver_interval,
        }
    }

    /// Master_Down_Interval (§6.1) for the current Master_Adver_Interval and
    /// effective priority.
    pub fn master_down_interval(&self) -> Duration {
        master_down_interval(self.effective_priority(), self.master_adver_interval)
    }

    // ----- §6.4.1 Initialize ------------------------------------------------

    fn startup(&mut self, now: Instant, out: &mut Vec<Action>) {
        if self.state != VrrpState::Initialize {
            return;
        }
        if self.fault {
            self.follow_as_backup(self.advertisement_interval(), None, now);
            self.transition(VrrpState::Fault, Reason::Fault, out);
        } else if self.effective_priority() == OWNER_PRIORITY {
            // §6.4.1: the address owner becomes master at once.
            self.become_master(Reason::AddressOwner, now, out);
        } else {
            // §6.4.1: Master_Adver_Interval := Advertisement_Interval,
            // Master_Down_Timer := Master_Down_Interval.
            self.follow_as_backup(self.advertisement_interval(), None, now);
            self.transition(VrrpState::Backup, Reason::Startup, out);
        }
    }

    // ----- §6.4.2 Backup / §6.4.3 Master: Shutdown --------------------------

    fn shutdown(&mut self, out: &mut Vec<Action>) {
        if self.state == VrrpState::Initialize {
            return;
        }
        if self.state == VrrpState::Master {
            // §6.4.3: cancel the Adver_Timer, send a priority-0 advert.
            out.push(Action::SendAdvert { priority: 0 });
        }
        self.timer = Timer::Idle;
        self.known_master = None;
        self.preempt_hold_since = None;
        self.transition(VrrpState::Initialize, Reason::Shutdown, out);
    }

    // ----- Timers -----------------------------------------------------------

    fn timeout(&mut self, now: Instant, out: &mut Vec<Action>) {
        match self.timer {
            Timer::Idle => {}
            Timer::Adver(at) => {
                if now >= at {
                    // §6.4.3: Adver_Timer fires → send, reset the timer.
                    self.send_advert_now(now, out);
                }
            }
            Timer::MasterDown { at, after_resign } => {
                if now < at {
                    return;
                }
                if self.state == VrrpState::Backup && self.effective_priority() > 0 {
                    // §6.4.2: Master_Down_Timer fires → become master.
                    let reason = if after_resign {
                        Reason::MasterResigned
                    } else {
                        Reason::MasterDown
                    };
                    self.become_master(reason, now, out);
                } else {
                    // Ineligible (priority 0 or Fault): no master is known any
                    // more, but we may not take over; keep watching.
                    self.follow_as_backup(self.master_adver_interval, None, now);
                }
            }
        }
    }

    // ----- Advertisements ---------------------------------------------------

    fn advert(&mut self, advert: ReceivedAdvert, now: Instant, out: &mut Vec<Action>) {
        // Our own advert looped back (or a peer misconfigured with our
        // address): it says nothing about another router.
        if advert.source == self.params.primary_address {
            return;
        }
        match self.state {
            VrrpState::Initialize => {}
            VrrpState::Backup | VrrpState::Fault => self.advert_as_backup(advert, now),
            VrrpState::Master => self.advert_as_master(advert, now, out),
        }
    }

    /// §6.4.2, "If an ADVERTISEMENT is received".
    fn advert_as_backup(&mut self, advert: ReceivedAdvert, now: Instant) {
        if advert.priority == 0 {
            // The master resigned: take over after Skew_Time, not
            // Master_Down_Interval.
            let skew = skew_time(self.effective_priority(), self.master_adver_interval);
            self.timer = Timer::MasterDown {
                at: deadline(now, skew),
                after_resign: true,
            };
            self.known_master = None;
            return;
        }
        // A node in Fault never preempts: it only tracks the master.
        let local = match self.state {
            VrrpState::Fault => 0,
            _ => self.effective_priority(),
        };
        let accept = if !self.params.preempt || advert.priority >= local {
            // keepalived: a master at least as good as us ends any preempt hold.
            self.preempt_hold_since = None;
            true
        } else {
            self.preempt_delay_holds(now)
        };
        if accept {
            self.follow_as_backup(
                clamp_interval(advert.max_advert_interval),
                Some(advert.source),
                now,
            );
        }
        // Otherwise discard (§6.4.2): the Master_Down_Timer runs out and we
        // preempt the lower-priority master.
    }

    /// `preempt_delay` (keepalived's meaning): from the first lower-priority
    /// advert heard, keep following that master as if it were not lower for
    /// `preempt_delay`; after that, discard its adverts so the
    /// Master_Down_Timer runs out. Preemption thus happens about
    /// `preempt_delay + Master_Down_Interval` after the lower master is first
    /// heard (e.g. after our startup).
    fn preempt_delay_holds(&mut self, now: Instant) -> bool {
        let delay = self.params.preempt_delay;
        if delay.is_zero() {
            return false;
        }
        let since = *self.preempt_hold_since.get_or_insert(now);
        now.saturating_duration_since(since) < delay
    }

    /// §6.4.3, "If an ADVERTISEMENT is received".
    fn advert_as_master(&mut self, advert: ReceivedAdvert, now: Instant, out: &mut Vec<Action>) {
        if advert.priority == 0 {
            // Another router resigned: advertise at once so that backups
            // which armed Skew_Time hear the master that is still here.
            self.send_advert_now(now, out);
            // Only a master resigns, so there were two masters (a healed
            // partition whose other master just yielded to us, or shut
            // down): clients may still hold its MAC for the VIP. Re-announce.
            if self.may_answer_other_master(now) {
                out.push(Action::ResendGarp {
                    other_master: advert.source,
                });
            }
            return;
        }
        let ours = self.effective_priority();
        let theirs_wins = advert.priority > ours
            || (advert.priority == ours
                && super::address_wins_tie(advert.source, self.params.primary_address));
        if theirs_wins {
            // Beyond §6.4.3: one last advert of ours before yielding. After a
            // healed partition the winner may otherwise never hear us (our
            // adverts can lose the race to its first one) and would not know
            // that clients followed us to our MAC; this advert, lower than
            // its priority, makes it re-announce the VIP at once. Not
            // priority 0: that would arm Skew_Time on every backup and make
            // them race the winner's next advert.
            out.push(Action::SendAdvert { priority: ours });
            // §6.4.3: learn Master_Adver_Interval, arm the Master_Down_Timer,
            // go Backup. Preempt_Mode is not considered in Master.
            self.follow_as_backup(
                clamp_interval(advert.max_advert_interval),
                Some(advert.source),
                now,
            );
            self.transition(VrrpState::Backup, Reason::HigherPriorityMaster, out);
            return;
        }
        // A lower-priority master: two masters, so a partition has healed.
        // The RFC discards the advert; we also answer at once so the other
        // master yields within one network delay, and re-announce the VIP so
        // clients that followed the other master come back now rather than
        // when their ARP entries expire.
        if self.may_answer_other_master(now) {
            self.send_advert_now(now, out);
            out.push(Action::ResendGarp {
                other_master: advert.source,
            });
        }
    }

    /// Whether to answer another master now; records that one was heard.
    ///
    /// A new episode (no other master heard for three advert intervals: a
    /// partition that just healed) is answered at once, however recently
    /// the last episode was. Within an episode (a one-way partition: the
    /// other keeps advertising because it cannot hear us) answers are spaced
    /// by `max(advert_interval, 1 s)`.
    fn may_answer_other_master(&mut self, now: Instant) -> bool {
        let interval = self.advertisement_interval().to_duration();
        let new_episode = self
            .last_other_master_heard
            .is_none_or(|heard| now.saturating_duration_since(heard) > interval * 3);
        self.last_other_master_heard = Some(now);
        let spacing = interval.max(MIN_OTHER_MASTER_ANSWER_SPACING);
        let answer = new_episode
            || self
                .last_other_master_answer
                .is_none_or(|last| now.saturating_duration_since(last) >= spacing);
        if answer {
            self.last_other_master_answer = Some(now);
        }
        answer
    }

    // ----- Priority and fault ----------------------------------------------

    fn set_priority(&mut self, priority: u8, now: Instant, out: &mut Vec<Action>) {
        let old = self.effective_priority();
        self.priority_set = Some(priority);
        if priority == old || self.state != VrrpState::Master {
            // Backup/Fault/Initialize: used from the next decision on.
            return;
        }
        if priority == 0 {
            self.resign(now, out);
        } else {
            // Keep the role; backups learn the new priority now.
            self.send_advert_now(now, out);
        }
    }

    fn set_fault(&mut self, fault: bool, now: Instant, out: &mut Vec<Action>) {
        if fault == self.fault {
            return;
        }
        self.fault = fault;
        match (self.state, fault) {
            (VrrpState::Master, true) => {
                // Resign like a shutdown, so the next node takes over after
                // Skew_Time (§6.4.2), but keep tracking the master.
                out.push(Action::SendAdvert { priority: 0 });
                self.follow_as_backup(self.advertisement_interval(), None, now);
                self.transition(VrrpState::Fault, Reason::Fault, out);
            }
            (VrrpState::Backup, true) => {
                self.preempt_hold_since = None;
                self.transition(VrrpState::Fault, Reason::Fault, out);
            }
            (VrrpState::Fault, false) => {
                self.follow_as_backup(self.master_adver_interval, self.known_master, now);
                self.transition(VrrpState::Backup, Reason::FaultCleared, out);
            }
            // Initialize remembers the flag for Startup; the other pairs are
            // already where they should be.
            _ => {}
        }
    }

    /// Master with effective priority 0: a priority-0 advert so the next node
    /// takes over after Skew_Time, then Backup.
    fn resign(&mut self, now: Instant, out: &mut Vec<Action>) {
        out.push(Action::SendAdvert { priority: 0 });
        self.follow_as_backup(self.advertisement_interval(), None, now);
        self.transition(VrrpState::Backup, Reason::Resigned, out);
    }

    // ----- Shared steps -----------------------------------------------------

    /// §6.4.2 "Master_Down_Timer fires" / §6.4.1 owner startup: send an
    /// advert, arm the Adver_Timer, enter Master.
    fn become_master(&mut self, reason: Reason, now: Instant, out: &mut Vec<Action>) {
        self.known_master = None;
        self.preempt_hold_since = None;
        self.last_other_master_answer = None;
        self.send_advert_now(now, out);
        self.transition(VrrpState::Master, reason, out);
    }

    /// Send an advert with the effective priority and (re)arm the Adver_Timer
    /// (§6.4.3). A master always advertises its own configured interval.
    fn send_advert_now(&mut self, now: Instant, out: &mut Vec<Action>) {
        out.push(Action::SendAdvert {
            priority: self.effective_priority(),
        });
        self.timer = Timer::Adver(deadline(now, self.advertisement_interval().to_duration()));
    }

    /// Set Master_Adver_Interval, recompute Master_Down_Interval and reset the
    /// Master_Down_Timer to it (§6.4.1, §6.4.2, §6.4.3).
    fn follow_as_backup(&mut self, interval: Centis, master: Option<IpAddr>, now: Instant) {
        self.master_adver_interval = interval;
        self.known_master = master;
        self.timer = Timer::MasterDown {
            at: deadline(now, self.master_down_interval()),
            after_resign: false,
        };
    }

    /// Record a transition; every change of state goes through here, so each
    /// one yields exactly one `StateChange`.
    fn transition(&mut self, to: VrrpState, reason: Reason, out: &mut Vec<Action>) {
        let from = self.state;
        if from == to {
            return;
        }
        self.state = to;
        self.preempt_hold_since = None;
        out.push(Action::StateChange { from, to, reason });
    }

    fn advertisement_interval(&self) -> Centis {
        clamp_interval(self.params.advert_interval)
    }
}

/// The 12-bit interval field is 1..=4095 cs in practice; 0 would make a
/// Master_Down_Interval of 0 (a backup taking over at every advert) and an
/// Adver_Timer that never advances.
fn clamp_interval(interval: Centis) -> Centis {
    Centis(interval.0.clamp(1, Centis::MAX.0))
}

/// `now + after`, without the panic `Instant + Duration` has on overflow
/// (unreachable with intervals of at most 41 s, but never panic).
fn deadline(now: Instant, after: Duration) -> Instant {
    now.checked_add(after).unwrap_or(now)
}
