//! Which environments this node should claim, from `[[environment]]`
//! placement and what the live nodes report.
//!
//! The decision only says what to *claim*. Starting an environment also
//! needs its lease (a majority grants it, see `membership`), so two nodes
//! that disagree here (their views differ for a moment) can both claim but
//! never both run: the loser never gets a majority and withdraws.
//!
//! Per environment E with preference list `nodes`:
//! - no quorum here, or this node not in `nodes`: do not claim;
//! - another live node runs E: do not claim (withdraw if claiming);
//! - this node claims E and another live node claims it too: keep it if
//!   this node runs it, or comes first in `nodes`;
//! - this node claims E, `failback = true` and a node earlier in `nodes` is
//!   live with quorum: release E (it moves back);
//! - nobody claims or runs E: claim it if this node is the first node of
//!   `nodes` that is live with quorum; a node after the first only once it
//!   has held quorum for a lease (a cold start's lagging quorum flags).
//!
//! An operator's move (`rcbsd-failover move E T`, announced as a handoff in
//! the heartbeat of the node that ran E) comes first: the handing node
//! gives E up, the target claims it once nobody else runs or claims it, and
//! every other node keeps out of the way while the handoff is announced.

use std::collections::BTreeMap;

use crate::config::PlacedEnvironment;

/// What one live node reports (this node included).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeReport<'a> {
    /// The node's name in `[cluster] nodes`.
    pub name: &'a str,
    /// The node has quorum (its heartbeat's quorum bit; ours computed here).
    pub quorum: bool,
    /// Environments it claims.
    pub claims: Vec<&'a str>,
    /// Environments it runs.
    pub running: Vec<&'a str>,
    /// Environments it is handing over, and to whom.
    pub handoffs: Vec<(&'a str, &'a str)>,
}

/// The decision for one environment, with the reason `status` shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Whether this node claims the environment (wants its lease, to run it).
    pub claim: bool,
    /// Why, in words (`first choice`, `runs on node2`, ...), for `status`
    /// and `placement_decided`.
    pub reason: String,
}

/// Decides, for every placed environment, whether `me` claims it. `nodes`
/// holds the live nodes' reports, `me` included (with its current claims).
/// `may_adopt`: this node has held quorum for a lease (see
/// `NodeQuorum::update_claims`); until then it claims only what it comes
/// first for, or already claims.
pub fn decide(
    me: &str,
    placement: &[PlacedEnvironment],
    nodes: &[NodeReport<'_>],
    may_adopt: bool,
) -> BTreeMap<String, Decision> {
    let mine = nodes.iter().find(|n| n.name == me);
    placement
        .iter()
        .map(|env| {
            (
                env.name.clone(),
                decide_one(me, mine, env, nodes, may_adopt),
            )
        })
        .collect()
}

fn decide_one(
    me: &str,
    mine: Option<&NodeReport<'_>>,
    env: &PlacedEnvironment,
    nodes: &[NodeReport<'_>],
    may_adopt: bool,
) -> Decision {
    let name = env.name.as_str();
    let Some(my_rank) = env.nodes.iter().position(|n| n == me) else {
        return no(format!("{me} is not in its nodes"));
    };
    let Some(mine) = mine.filter(|m| m.quorum) else {
        return no("no quorum here".to_owned());
    };
    let claiming = mine.claims.contains(&name);
    let others = || nodes.iter().filter(|n| n.name != me);
    if let Some((_, to)) = mine.handoffs.iter().find(|(e, _)| *e == name) {
        return no(format!("moving to {to} (operator)"));
    }
    let handoff = others().find_map(|n| {
        n.handoffs
            .iter()
            .find(|(e, _)| *e == name)
            .map(|(_, to)| (n.name, *to))
    });
    if let Some(runner) = others().find(|n| n.running.contains(&name)) {
        return no(format!("runs on {}", runner.name));
    }
    if let Some((from, to)) = handoff {
        if to != me {
            return no(format!("moving from {from} to {to} (operator)"));
        }
        if let Some(claimer) = others().find(|n| n.claims.contains(&name)) {
            return no(format!(
                "moving here from {from}; {} still claims it",
                claimer.name
            ));
        }
        return yes(format!("moved here from {from} (operator)"));
    }
    let rank = |node: &str| env.nodes.iter().position(|n| n == node);
    let first_live = env.nodes.iter().find(|candidate| {
        nodes
            .iter()
            .any(|n| n.name == candidate.as_str() && n.quorum)
    });
    if claiming {
        // Two claimers: the one that runs it keeps it (it has the lease);
        // otherwise the one first in the list.
        let runs_here = mine.running.contains(&name);
        if let Some(rival) = others()
            .filter(|n| n.claims.contains(&name))
            .find(|n| !runs_here && rank(n.name).is_some_and(|r| r < my_rank))
        {
            return no(format!("{} comes first and claims it too", rival.name));
        }
        if env.failback {
            if let Some(preferred) = first_live.filter(|n| rank(n).is_some_and(|r| r < my_rank)) {
                return no(format!("failback to {preferred}"));
            }
        }
        return yes(if my_rank == 0 {
            "first choice".to_owned()
        } else {
            "held here".to_owned()
        });
    }
    if let Some(claimer) = others().find(|n| n.claims.contains(&name)) {
        return no(format!("claimed by {}", claimer.name));
    }
    match first_live {
        // A node that has only just gained quorum does not adopt yet: at a
        // cold start the others' first heartbeats still say "no quorum"
        // for a moment, and an adoption then would keep their environments
        // for good (no failback). Nothing could be granted before a lease
        // has passed anyway.
        Some(first) if first == me && my_rank > 0 && !may_adopt => no(format!(
            "settling: {} not live with quorum yet, adopting only once quorum has held for a lease",
            env.nodes.get(..my_rank).unwrap_or(&[]).join(", ")
        )),
        Some(first) if first == me => yes(if my_rank == 0 {
            "first choice".to_owned()
        } else {
            let ahead = env.nodes.get(..my_rank).unwrap_or(&[]).join(", ");
            format!("adopted: {ahead} not live with quorum")
        }),
        Some(first) => no(format!("{first} comes first")),
        None => no("no node of its list is live with quorum".to_owned()),
    }
}

fn yes(reason: String) -> Decision {
    Decision {
        claim: true,
        reason,
    }
}

fn no(reason: String) -> Decision {
    Decision {
        claim: false,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EnvKind;

    fn env(name: &str, nodes: &[&str], failback: bool) -> PlacedEnvironment {
        PlacedEnvironment {
            name: name.to_owned(),
            kind: EnvKind::Jail,
            nodes: nodes.iter().map(|n| (*n).to_owned()).collect(),
            failback,
        }
    }

    fn node<'a>(
        name: &'a str,
        quorum: bool,
        claims: &[&'a str],
        running: &[&'a str],
    ) -> NodeReport<'a> {
        NodeReport {
            name,
            quorum,
            claims: claims.to_vec(),
            running: running.to_vec(),
            handoffs: Vec::new(),
        }
    }

    fn claims(me: &str, placement: &[PlacedEnvironment], nodes: &[NodeReport<'_>]) -> Vec<String> {
        decide(me, placement, nodes, true)
            .into_iter()
            .filter(|(_, d)| d.claim)
            .map(|(n, _)| n)
            .collect()
    }

    #[test]
    fn the_first_live_node_with_quorum_claims() {
        let placement = [env("web1", &["node1", "node3"], false)];
        let all = [node("node1", true, &[], &[]), node("node3", true, &[], &[])];
        assert_eq!(claims("node1", &placement, &all), ["web1"]);
        assert!(claims("node3", &placement, &all).is_empty());
    }

    #[test]
    fn the_next_node_adopts_when_the_first_is_gone_or_without_quorum() {
        let placement = [env("web1", &["node1", "node3"], false)];
        let gone = [node("node3", true, &[], &[])];
        assert_eq!(claims("node3", &placement, &gone), ["web1"]);
        let minority = [
            node("node1", false, &[], &[]),
            node("node3", true, &[], &[]),
        ];
        let d = decide("node3", &placement, &minority, true);
        assert!(d["web1"].claim);
        assert_eq!(d["web1"].reason, "adopted: node1 not live with quorum");
    }

    #[test]
    fn never_while_another_live_node_runs_it() {
        let placement = [env("web1", &["node1", "node3"], false)];
        let nodes = [
            node("node1", true, &["web1"], &[]),
            node("node3", true, &[], &["web1"]),
        ];
        let d = decide("node1", &placement, &nodes, true);
        assert!(!d["web1"].claim);
        assert_eq!(d["web1"].reason, "runs on node3");
    }

    /// A cold start: node1's first heartbeat still says "no quorum"; node3,
    /// which has only just gained quorum itself, does not adopt web1 yet.
    #[test]
    fn a_node_that_just_gained_quorum_does_not_adopt_yet() {
        let placement = [env("web1", &["node1", "node3"], false)];
        let nodes = [
            node("node1", false, &[], &[]),
            node("node3", true, &[], &[]),
        ];
        let d = decide("node3", &placement, &nodes, false);
        assert!(!d["web1"].claim);
        assert!(d["web1"].reason.starts_with("settling:"), "{:?}", d["web1"]);
        // Its first choices it claims at once.
        let first = [env("web1", &["node3", "node1"], false)];
        assert!(decide("node3", &first, &nodes, false)["web1"].claim);
    }

    #[test]
    fn no_quorum_no_claim() {
        let placement = [env("web1", &["node1"], false)];
        let nodes = [node("node1", false, &["web1"], &["web1"])];
        assert!(claims("node1", &placement, &nodes).is_empty());
    }

    #[test]
    fn a_holder_keeps_it_without_failback_and_releases_with_it() {
        let stay = [env("web1", &["node1", "node3"], false)];
        let back = [env("web1", &["node1", "node3"], true)];
        let nodes = [
            node("node1", true, &[], &[]),
            node("node3", true, &["web1"], &["web1"]),
        ];
        assert_eq!(claims("node3", &stay, &nodes), ["web1"]);
        assert!(claims("node3", &back, &nodes).is_empty());
        // node1 waits until node3 has stopped it.
        assert!(claims("node1", &back, &nodes).is_empty());
        let released = [node("node1", true, &[], &[]), node("node3", true, &[], &[])];
        assert_eq!(claims("node1", &back, &released), ["web1"]);
    }

    #[test]
    fn of_two_claimers_the_later_one_withdraws() {
        let placement = [env("web1", &["node1", "node2", "node3"], false)];
        let nodes = [
            node("node1", true, &[], &[]),
            node("node2", true, &["web1"], &[]),
            node("node3", true, &["web1"], &[]),
        ];
        assert_eq!(claims("node2", &placement, &nodes), ["web1"]);
        assert!(claims("node3", &placement, &nodes).is_empty());
    }

    #[test]
    fn a_node_outside_the_list_never_claims() {
        let placement = [env("web1", &["node1"], false)];
        let nodes = [node("node2", true, &[], &[])];
        assert!(claims("node2", &placement, &nodes).is_empty());
    }

    #[test]
    fn a_handoff_moves_an_environment_to_its_target_only() {
        let placement = [env("web1", &["node1", "node2", "node3"], false)];
        let mut handing = node("node1", true, &["web1"], &["web1"]);
        handing.handoffs = vec![("web1", "node3")];
        // While node1 still runs it, nobody claims it.
        let nodes = [
            handing.clone(),
            node("node2", true, &[], &[]),
            node("node3", true, &[], &[]),
        ];
        assert!(claims("node3", &placement, &nodes).is_empty());
        assert!(
            claims("node1", &placement, &nodes).is_empty(),
            "the handing node gives it up"
        );
        // Stopped and released: the target claims it, node2 keeps out.
        handing.claims.clear();
        handing.running.clear();
        let nodes = [
            handing,
            node("node2", true, &[], &[]),
            node("node3", true, &[], &[]),
        ];
        let d = decide("node3", &placement, &nodes, true);
        assert!(d["web1"].claim);
        assert_eq!(d["web1"].reason, "moved here from node1 (operator)");
        assert!(claims("node2", &placement, &nodes).is_empty());
    }
}
