//! The RFC 5798 §6.4 state machine of one virtual router.
//! (Skeleton: the election helper implements it.)

use std::net::Ipv4Addr;
use std::time::Instant;

use super::{Action, Centis, Input, Params, State};

#[derive(Debug, Clone)]
pub struct Router {
    params: Params,
    state: State,
}

impl Router {
    pub fn new(params: Params) -> Self {
        Router {
            params,
            state: State::Initialize,
        }
    }

    pub fn handle(&mut self, _input: Input, _now: Instant) -> Vec<Action> {
        Vec::new()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn params(&self) -> &Params {
        &self.params
    }

    pub fn effective_priority(&self) -> u8 {
        self.params.priority
    }

    pub fn master(&self) -> Option<Ipv4Addr> {
        None
    }

    pub fn master_advert_interval(&self) -> Centis {
        self.params.advert_interval
    }
}
