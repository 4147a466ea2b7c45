//! Normalise stage: decoded fields → `FlowRecord`.
//!
//! Each known information element goes to its column; everything else goes to the record's typed
//! extension list (with its PEN), so nothing the exporter sent is lost. Where several elements can
//! fill one column the precedence is fixed and documented on the column; the ones not chosen are
//! kept as extensions too.

mod ext;
mod time;

use crate::config::DecoderConfig;
use crate::decode::stats::DecodeStats;
use crate::decode::templates::{DomainState, Proto};
use crate::decode::v5::{V5Header, V5Record};
use crate::decode::MessageCtx;
pub use ext::extension;
use netgauze_flow_pkt::ie::Field;
use schemas::{Direction, FlowRecord, FlowVersion, TimeSource};
use std::net::{IpAddr, Ipv4Addr};
use time::Times;

/// Builds the record of a NetFlow v5 flow.
pub fn v5_record(
    exporter: IpAddr,
    h: &V5Header,
    r: &V5Record,
    interval: u32,
    received_ms: i64,
    cfg: &DecoderConfig,
    stats: &mut DecodeStats,
) -> FlowRecord {
    let mut rec = FlowRecord::empty(FlowVersion::NetflowV5, exporter);
    rec.observation_domain = u32::from(h.engine_type) << 8 | u32::from(h.engine_id);
    rec.sequence_number = h.flow_sequence;
    rec.export_time_ms = h.export_time_ms();
    rec.received_time_ms = received_ms;
    rec.flow_start_ms = Some(h.absolute_ms(r.first));
    rec.flow_end_ms = Some(h.absolute_ms(r.last));
    rec.time_source = TimeSource::SysUptime;
    rec.src_addr = Some(IpAddr::V4(Ipv4Addr::from(r.src_addr)));
    rec.dst_addr = Some(IpAddr::V4(Ipv4Addr::from(r.dst_addr)));
    rec.next_hop = Some(IpAddr::V4(Ipv4Addr::from(r.next_hop)));
    rec.src_port = Some(r.src_port);
    rec.dst_port = Some(r.dst_port);
    rec.protocol = Some(r.protocol);
    rec.tos = Some(r.tos);
    rec.tcp_flags = Some(u16::from(r.tcp_flags));
    rec.input_interface = Some(u32::from(r.input));
    rec.output_interface = Some(u32::from(r.output));
    rec.src_as = Some(u32::from(r.src_as));
    rec.dst_as = Some(u32::from(r.dst_as));
    rec.src_mask = Some(r.src_mask);
    rec.dst_mask = Some(r.dst_mask);
    rec.octets_exported = Some(u64::from(r.octets));
    rec.packets_exported = Some(u64::from(r.packets));
    rec.sampling_interval = interval;
    rec.octets = u64::from(r.octets).saturating_mul(u64::from(interval));
    rec.packets = u64::from(r.packets).saturating_mul(u64::from(interval));
    time::correct_skew(&mut rec, cfg, stats);
    rec.set_flow_key();
    rec
}

/// Learns sampling and time anchors from an options data record.
pub fn options_record<'a>(dom: &mut DomainState, fields: impl Iterator<Item = &'a Field>) {
    let mut sampler: Option<u64> = None;
    let mut s = SamplingFields::default();
    for f in fields {
        match f {
            Field::samplerId(v) => sampler = Some(u64::from(*v)),
            Field::selectorId(v) => sampler = Some(*v),
            Field::systemInitTimeMilliseconds(t) => dom.system_init_ms = Some(t.timestamp_millis()),
            other => {
                s.take(other);
            }
        }
    }
    if let Some(interval) = s.interval() {
        if let Some(id) = sampler {
            dom.sampling.by_sampler.insert(id, interval);
        }
        dom.sampling.default = Some(interval);
    }
}

/// The sampling elements of one record (RFC 7011 IEs 34, 50; RFC 5477 IEs 305-311).
#[derive(Default)]
struct SamplingFields {
    interval: Option<u32>,
    random_interval: Option<u32>,
    packet_interval: Option<u32>,
    packet_space: Option<u32>,
    size: Option<u32>,
    population: Option<u32>,
    probability: Option<f64>,
    algorithm: Option<u16>,
}

impl SamplingFields {
    /// Takes the field if it is a sampling element.
    fn take(&mut self, f: &Field) -> bool {
        match f {
            Field::samplingInterval(v) => self.interval = Some(*v),
            Field::samplerRandomInterval(v) => self.random_interval = Some(*v),
            Field::samplingPacketInterval(v) => self.packet_interval = Some(*v),
            Field::samplingPacketSpace(v) => self.packet_space = Some(*v),
            Field::samplingSize(v) => self.size = Some(*v),
            Field::samplingPopulation(v) => self.population = Some(*v),
            Field::samplingProbability(v) => self.probability = Some(v.0),
            Field::selectorAlgorithm(a) => self.algorithm = Some(u16::from(*a)),
            _ => return false,
        }
        true
    }

    /// One-in-N interval. The selector algorithm (IE 304, RFC 5477 §8.2.1) says which elements
    /// describe it; without one, the elements present are read in the order below.
    fn interval(&self) -> Option<u32> {
        let count_based = || {
            // Systematic count-based: select `interval` packets, skip `space`.
            let pi = self.packet_interval.filter(|pi| *pi > 0)?;
            Some(pi.saturating_add(self.packet_space.unwrap_or(0)) / pi)
        };
        let n_of_n = || {
            // Random n-out-of-N: `size` packets out of every `population`.
            let sz = self.size.filter(|s| *s > 0)?;
            Some(self.population? / sz)
        };
        let probabilistic = || {
            self.probability
                .filter(|p| *p > 0.0 && *p <= 1.0)
                .map(|p| (1.0 / p).round() as u32)
        };
        let n = match self.algorithm {
            Some(1) => count_based(),
            Some(3) => n_of_n(),
            Some(4) | Some(5) => probabilistic(),
            _ => self
                .interval
                .or(self.random_interval)
                .or_else(n_of_n)
                .or_else(count_based)
                .or_else(probabilistic),
        };
        n.filter(|n| *n > 0)
    }
}

/// Builds the record of a v9/IPFIX flow data record.
pub fn flow_record(
    cfg: &DecoderConfig,
    dom: &DomainState,
    ctx: &MessageCtx,
    fields: &[Field],
    stats: &mut DecodeStats,
) -> FlowRecord {
    let version = match ctx.proto {
        Proto::V9 => FlowVersion::NetflowV9,
        Proto::Ipfix => FlowVersion::Ipfix,
    };
    let mut rec = FlowRecord::empty(version, ctx.exporter);
    rec.observation_domain = ctx.domain;
    rec.sequence_number = ctx.sequence;
    rec.export_time_ms = ctx.export_time_ms;
    rec.received_time_ms = ctx.received_ms;
    // Counter candidates in precedence order; the ones not chosen become extensions.
    let mut octets: [Option<&Field>; 4] = [None; 4];
    let mut packets: [Option<&Field>; 4] = [None; 4];
    let mut times = Times::default();
    let mut sampling = SamplingFields::default();
    let mut sampler: Option<u64> = None;
    // Sized once on the first extension (Cisco-like templates leave most of their fields to
    // extensions); records without any allocate nothing.
    let mut extras: Vec<&Field> = Vec::new();
    let room = fields.len() + 2;
    let mut addrs = Addrs::default();
    for f in fields {
        match f {
            Field::octetDeltaCount(_) => octets[0] = Some(f),
            Field::octetTotalCount(_) => octets[1] = Some(f),
            Field::postOctetDeltaCount(_) => octets[2] = Some(f),
            Field::initiatorOctets(_) => octets[3] = Some(f),
            Field::packetDeltaCount(_) => packets[0] = Some(f),
            Field::packetTotalCount(_) => packets[1] = Some(f),
            Field::postPacketDeltaCount(_) => packets[2] = Some(f),
            Field::initiatorPackets(_) => packets[3] = Some(f),
            // Tunnelled flows repeat the address, port and protocol elements (outer header first,
            // then inner, as pmacct reads them): the last occurrence wins.
            Field::sourceIPv4Address(a) => addrs.v4_src = Some((*a, f)),
            Field::destinationIPv4Address(a) => addrs.v4_dst = Some((*a, f)),
            Field::sourceIPv6Address(a) => addrs.v6_src = Some((*a, f)),
            Field::destinationIPv6Address(a) => addrs.v6_dst = Some((*a, f)),
            Field::sourceTransportPort(p) => rec.src_port = Some(*p),
            Field::destinationTransportPort(p) => rec.dst_port = Some(*p),
            Field::protocolIdentifier(p) => rec.protocol = Some(u8::from(*p)),
            Field::ipClassOfService(v) => rec.tos = Some(*v),
            Field::tcpControlBits(v) => rec.tcp_flags = Some(u16::from(*v)),
            Field::ingressInterface(v) => rec.input_interface = Some(*v),
            Field::egressInterface(v) => rec.output_interface = Some(*v),
            Field::vlanId(v) | Field::dot1qVlanId(v) if rec.src_vlan.is_none() => {
                rec.src_vlan = Some(*v)
            }
            Field::postVlanId(v) | Field::postDot1qVlanId(v) if rec.dst_vlan.is_none() => {
                rec.dst_vlan = Some(*v)
            }
            Field::ingressVRFID(v) => rec.ingress_vrf = Some(*v),
            Field::egressVRFID(v) => rec.egress_vrf = Some(*v),
            Field::bgpSourceAsNumber(v) => rec.src_as = Some(*v),
            Field::bgpDestinationAsNumber(v) => rec.dst_as = Some(*v),
            Field::sourceIPv4PrefixLength(v) | Field::sourceIPv6PrefixLength(v)
                if rec.src_mask.is_none() =>
            {
                rec.src_mask = Some(*v)
            }
            Field::destinationIPv4PrefixLength(v) | Field::destinationIPv6PrefixLength(v)
                if rec.dst_mask.is_none() =>
            {
                rec.dst_mask = Some(*v)
            }
            Field::ipNextHopIPv4Address(a) if rec.next_hop.is_none() => {
                rec.next_hop = Some((*a).into())
            }
            Field::ipNextHopIPv6Address(a) if rec.next_hop.is_none() => {
                rec.next_hop = Some((*a).into())
            }
            Field::bgpNextHopIPv4Address(a) if rec.bgp_next_hop.is_none() => {
                rec.bgp_next_hop = Some((*a).into())
            }
            Field::bgpNextHopIPv6Address(a) if rec.bgp_next_hop.is_none() => {
                rec.bgp_next_hop = Some((*a).into())
            }
            Field::icmpTypeCodeIPv4(v) | Field::icmpTypeCodeIPv6(v) if rec.icmp_type.is_none() => {
                rec.icmp_type = Some((v >> 8) as u8);
                rec.icmp_code = Some((v & 0xff) as u8);
            }
            Field::icmpTypeIPv4(v) | Field::icmpTypeIPv6(v) if rec.icmp_type.is_none() => {
                rec.icmp_type = Some(*v)
            }
            Field::icmpCodeIPv4(v) | Field::icmpCodeIPv6(v) if rec.icmp_code.is_none() => {
                rec.icmp_code = Some(*v)
            }
            Field::flowDirection(d) => {
                rec.direction = match u8::from(*d) {
                    0 => Some(Direction::Ingress),
                    1 => Some(Direction::Egress),
                    _ => None,
                }
            }
            Field::flowEndReason(r) => rec.flow_end_reason = Some(u8::from(*r)),
            Field::samplerId(v) => {
                sampler = Some(u64::from(*v));
                first_room(&mut extras, room);
                extras.push(f);
            }
            Field::selectorId(v) => {
                sampler = Some(*v);
                first_room(&mut extras, room);
                extras.push(f);
            }
            other => {
                if times.take(other) {
                    continue;
                }
                // Sampling elements fill `sampling_interval` and are kept as sent, too.
                sampling.take(other);
                first_room(&mut extras, room);
                extras.push(other);
            }
        }
    }
    addrs.apply(&mut rec, &mut extras);
    let chosen_octets = octets.iter().position(Option::is_some);
    let chosen_packets = packets.iter().position(Option::is_some);
    rec.octets_exported = chosen_octets.and_then(|i| octets[i]).and_then(counter);
    rec.packets_exported = chosen_packets.and_then(|i| packets[i]).and_then(counter);
    for (i, f) in octets.iter().enumerate() {
        if let (Some(f), false) = (f, Some(i) == chosen_octets) {
            extras.push(f);
        }
    }
    for (i, f) in packets.iter().enumerate() {
        if let (Some(f), false) = (f, Some(i) == chosen_packets) {
            extras.push(f);
        }
    }
    // Sampling: the exporter's configured override, else the record's own interval, else its
    // sampler's interval from options data, else the domain's last announced interval.
    let interval = cfg
        .sampling_override(ctx.exporter)
        .or_else(|| sampling.interval())
        .or_else(|| sampler.and_then(|id| dom.sampling.by_sampler.get(&id).copied()))
        .or(dom.sampling.default)
        .unwrap_or(1)
        .max(1);
    rec.sampling_interval = interval;
    rec.octets = rec
        .octets_exported
        .unwrap_or(0)
        .saturating_mul(u64::from(interval));
    rec.packets = rec
        .packets_exported
        .unwrap_or(0)
        .saturating_mul(u64::from(interval));
    times.apply(&mut rec, ctx, dom.system_init_ms, &mut extras);
    time::correct_skew(&mut rec, cfg, stats);
    rec.extensions.extend(extras.into_iter().map(extension));
    rec.set_flow_key();
    rec
}

/// Sizes `v` for `room` entries the first time something goes in (later calls cost a compare).
#[inline]
fn first_room<T>(v: &mut Vec<T>, room: usize) {
    if v.capacity() == 0 {
        v.reserve_exact(room);
    }
}

/// The address elements of a record, last occurrence of each.
#[derive(Default)]
struct Addrs<'a> {
    v4_src: Option<(Ipv4Addr, &'a Field)>,
    v4_dst: Option<(Ipv4Addr, &'a Field)>,
    v6_src: Option<(std::net::Ipv6Addr, &'a Field)>,
    v6_dst: Option<(std::net::Ipv6Addr, &'a Field)>,
}

impl<'a> Addrs<'a> {
    /// IPv4 addresses unless both are unspecified and IPv6 ones are present (templates that
    /// carry both families, e.g. Cisco IOS XR, zero the family a flow does not use). The family
    /// not chosen is kept as extensions.
    fn apply(self, rec: &mut FlowRecord, extras: &mut Vec<&'a Field>) {
        let v4_unset = self.v4_src.is_none_or(|a| a.0.is_unspecified())
            && self.v4_dst.is_none_or(|a| a.0.is_unspecified());
        let has_v6 = self.v6_src.is_some() || self.v6_dst.is_some();
        let has_v4 = self.v4_src.is_some() || self.v4_dst.is_some();
        if has_v4 && !(v4_unset && has_v6) {
            rec.src_addr = self.v4_src.map(|a| IpAddr::V4(a.0));
            rec.dst_addr = self.v4_dst.map(|a| IpAddr::V4(a.0));
            extras.extend(
                self.v6_src
                    .map(|a| a.1)
                    .into_iter()
                    .chain(self.v6_dst.map(|a| a.1)),
            );
        } else {
            rec.src_addr = self.v6_src.map(|a| IpAddr::V6(a.0));
            rec.dst_addr = self.v6_dst.map(|a| IpAddr::V6(a.0));
            extras.extend(
                self.v4_src
                    .map(|a| a.1)
                    .into_iter()
                    .chain(self.v4_dst.map(|a| a.1)),
            );
        }
    }
}

fn counter(f: &Field) -> Option<u64> {
    match f {
        Field::octetDeltaCount(v)
        | Field::octetTotalCount(v)
        | Field::postOctetDeltaCount(v)
        | Field::initiatorOctets(v)
        | Field::packetDeltaCount(v)
        | Field::packetTotalCount(v)
        | Field::postPacketDeltaCount(v)
        | Field::initiatorPackets(v) => Some(*v),
        _ => None,
    }
}
