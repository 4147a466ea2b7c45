//! The router side of an application session's Network QoS.
//!
//! An [`AppSession`] comes from the tap, which knows the session's member flows; the routers know
//! how much those flows carried through the network. [`SessionRouterQos`] remembers, per member
//! flow key, which session the flow belongs to, takes the super-flows the join emits, and adds
//! each one's router counters to its session; [`SessionRouterQos::fill`] then writes them into the
//! session's report. [`add_router_flows`] is the stateless core.

use schemas::{AppSession, FlowRecord, SessionNetwork, SuperFlow};
use std::collections::HashMap;

/// Adds router flow records (joined to the session's member flows) to a session's network block:
/// upscaled octets and packets summed, records counted.
pub fn add_router_flows<'a>(
    net: &mut SessionNetwork,
    flows: impl IntoIterator<Item = &'a FlowRecord>,
) {
    for f in flows {
        net.router_octets = net.router_octets.saturating_add(f.octets);
        net.router_packets = net.router_packets.saturating_add(f.packets);
        net.router_flow_records = net.router_flow_records.saturating_add(1);
    }
}

/// Router counters of sessions, accumulated from super-flows by member flow key.
#[derive(Debug, Default)]
pub struct SessionRouterQos {
    /// Member flow key → session id.
    members: HashMap<String, String>,
    /// Session id → router counters since the session's start.
    totals: HashMap<String, SessionNetwork>,
}

impl SessionRouterQos {
    /// An empty accumulator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Declares `flow_key` a member flow of session `session_id`.
    pub fn add_member(&mut self, session_id: &str, flow_key: &str) {
        self.members
            .insert(flow_key.to_owned(), session_id.to_owned());
    }

    /// Counts a super-flow's router side in its session, if its key is a member flow of one
    /// (unmatched super-flows count too: the router carried them whatever the tap saw). Returns
    /// whether it was counted.
    pub fn add(&mut self, sf: &SuperFlow) -> bool {
        let Some(sid) = sf
            .flow
            .flow_key
            .as_deref()
            .and_then(|k| self.members.get(k))
        else {
            return false;
        };
        let net = self.totals.entry(sid.clone()).or_default();
        add_router_flows(net, [&*sf.flow]);
        true
    }

    /// Writes the session's router counters (since its start) into its report.
    pub fn fill(&self, session: &mut AppSession) {
        if let Some(n) = self.totals.get(&session.session_id) {
            session.network.router_octets = n.router_octets;
            session.network.router_packets = n.router_packets;
            session.network.router_flow_records = n.router_flow_records;
        }
    }

    /// Forgets a session (after its `end` report) and its member flows.
    pub fn end(&mut self, session_id: &str) {
        self.totals.remove(session_id);
        self.members.retain(|_, s| s != session_id);
    }
}
