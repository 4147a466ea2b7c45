// SPDX-License-Identifier: Apache-2.0
/*
 * The tap's kernel program: XDP (section xdp.frags, so jumbo/multi-buffer frames attach) and a TC
 * classifier share one parser and one accounting routine.
 *
 * Per packet: parse Ethernet (up to two 802.1Q/802.1ad tags), IPv4 or IPv6 (at most 4 extension
 * headers), TCP or UDP; count it into the flow's `struct flow_state` (LRU hash "snf_flows", keyed
 * by the canonical key) by the rules of enrich-probe/ACCOUNTING.md; copy it to user space through
 * the ring buffer "snf_events" when the flow is new or user space asked for it (verdict map
 * "snf_verdicts"); then drop it (a mirror port's copies need not reach the stack) or pass it
 * ("snf_config").
 *
 * Check order, so that the Rust twin counts the same reasons: frame < 14 bytes or a VLAN tag cut
 * short -> malformed; ethertype not IPv4/IPv6 after two tags -> non_ip; IPv4: header < 20 bytes in
 * the frame, version != 4, IHL < 5, total length < IHL*4 -> malformed, then fragment offset != 0 ->
 * fragment; IPv6: header < 40 bytes in the frame, version != 6 -> malformed, extension headers
 * in order (a fragment header with offset != 0 -> fragment; one cut short -> malformed; a fifth
 * one -> malformed; their total > payload length -> malformed); TCP: 20 bytes not in the frame,
 * data offset < 5, data offset*4 > L4 length (from the IP header) -> malformed; UDP: 8 bytes not
 * in the frame -> malformed.
 *
 * Concurrency: no locks. Each direction of a flow hashes to one RX queue (RSS on the 5-tuple), so
 * a direction's fields have one writer; only the flow's creation and its verdict are shared.
 *
 * Every loop is unrolled (two VLAN tags, four IPv6 extension headers): the verifier sees no
 * back edge.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include "probe.h"

#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int(*name)[val]
#define __type(name, val) typeof(val) *name
#define INLINE static inline __attribute__((always_inline))

/* Helper declarations (libbpf's bpf_helper_defs.h style), so only the kernel's UAPI headers are needed. */
static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)BPF_FUNC_map_lookup_elem;
static long (*bpf_map_update_elem)(void *map, const void *key, const void *value,
				   __u64 flags) = (void *)BPF_FUNC_map_update_elem;
static __u64 (*bpf_ktime_get_ns)(void) = (void *)BPF_FUNC_ktime_get_ns;
static long (*bpf_ringbuf_output)(void *ringbuf, void *data, __u64 size,
				  __u64 flags) = (void *)BPF_FUNC_ringbuf_output;
static __u64 (*bpf_ringbuf_query)(void *ringbuf, __u64 flags) = (void *)BPF_FUNC_ringbuf_query;
static long (*bpf_xdp_load_bytes)(struct xdp_md *ctx, __u32 offset, void *buf,
				  __u32 len) = (void *)BPF_FUNC_xdp_load_bytes;
static __u64 (*bpf_xdp_get_buff_len)(struct xdp_md *ctx) = (void *)BPF_FUNC_xdp_get_buff_len;
static long (*bpf_skb_load_bytes)(const void *skb, __u32 offset, void *to,
				  __u32 len) = (void *)BPF_FUNC_skb_load_bytes;
static long (*bpf_skb_pull_data)(struct __sk_buff *skb, __u32 len) = (void *)BPF_FUNC_skb_pull_data;

char LICENSE[] SEC("license") = "Apache-2.0";

/* Sizes are defaults: the loader may change max_entries before loading. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct flow_key);
	__type(value, struct flow_state);
} snf_flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct flow_key);
	__type(value, __u32);
} snf_verdicts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 24);
} snf_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} snf_counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct probe_config);
} snf_config SEC(".maps");

/* Per-CPU scratch: the record being built (header then bytes, contiguous) and the wake-up batch. */
struct scratch {
	struct pkt_event ev;
	__u8 data[SNAP_MAX];
	__u64 since_wake;
	struct flow_state init; /* a new flow's first value (too big for the 512-byte stack) */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch);
} snf_scratch SEC(".maps");

struct parsed {
	struct flow_key key;
	__u32 ip_len;   /* IP datagram length */
	__u32 l4_len;   /* IP length minus IP header(s) */
	__u32 seq;
	__u32 payload;  /* TCP payload bytes */
	__u16 l3_off;
	__u16 l4_off;
	__u16 l4_hdr;   /* transport header length (TCP data offset, 8 for UDP, 0 otherwise) */
	__u8 dir;
	__u8 flags;     /* TCP flags byte */
	__u8 is_tcp;
};

INLINE void count(__u32 idx, __u64 n)
{
	__u64 *c = bpf_map_lookup_elem(&snf_counters, &idx);
	if (c)
		*c += n;
}

INLINE __u16 be16(const __u8 *p)
{
	return ((__u16)p[0] << 8) | p[1];
}

INLINE __u32 be32(const __u8 *p)
{
	return ((__u32)p[0] << 24) | ((__u32)p[1] << 16) | ((__u32)p[2] << 8) | p[3];
}

/* (address, port) a < b, addresses compared as big-endian 128-bit numbers. */
INLINE int ep_less(const __u8 *a, __u16 ap, const __u8 *b, __u16 bp)
{
	__u64 ah, al, bh, bl;
	__builtin_memcpy(&ah, a, 8);
	__builtin_memcpy(&al, a + 8, 8);
	__builtin_memcpy(&bh, b, 8);
	__builtin_memcpy(&bl, b + 8, 8);
	ah = __builtin_bswap64(ah);
	al = __builtin_bswap64(al);
	bh = __builtin_bswap64(bh);
	bl = __builtin_bswap64(bl);
	if (ah != bh)
		return ah < bh;
	if (al != bl)
		return al < bl;
	return ap < bp;
}

/* Returns 0 when the packet is accountable, else the not_accounted counter to bump. */
INLINE int parse(void *data, void *data_end, struct parsed *p, __u32 vlan0, int tags0)
{
	__u8 *cur = data;
	__u8 src[16] = {}, dst[16] = {};
	__u8 *l4;
	__u8 l4proto;
	__u16 proto;
	__u32 vlan = vlan0;
	/* Offsets are tracked as numbers, not as pointer differences: without CAP_PERFMON the
	 * verifier rejects any arithmetic that turns a packet pointer into a scalar. */
	__u32 off = 14;

	if (cur + 14 > (__u8 *)data_end)
		return CNT_NA_MALFORMED;
	proto = be16(cur + 12);
	cur += 14;
#pragma unroll
	for (int i = 0; i < 2; i++) {
		if (i + tags0 < 2 && (proto == 0x8100 || proto == 0x88a8)) {
			if (cur + 4 > (__u8 *)data_end)
				return CNT_NA_MALFORMED;
			vlan = be16(cur) & 0x0fff;
			proto = be16(cur + 2);
			cur += 4;
			off += 4;
		}
	}
	p->l3_off = (__u16)off;

	if (proto == 0x0800) {
		if (cur + 20 > (__u8 *)data_end)
			return CNT_NA_MALFORMED;
		__u32 ihl = (cur[0] & 0x0f) * 4;
		__u32 tot = be16(cur + 2);
		if ((cur[0] >> 4) != 4 || ihl < 20 || tot < ihl)
			return CNT_NA_MALFORMED;
		if (be16(cur + 6) & 0x1fff)
			return CNT_NA_FRAGMENT;
		l4proto = cur[9];
		src[10] = 0xff;
		src[11] = 0xff;
		dst[10] = 0xff;
		dst[11] = 0xff;
		__builtin_memcpy(&src[12], cur + 12, 4);
		__builtin_memcpy(&dst[12], cur + 16, 4);
		p->ip_len = tot;
		p->l4_len = tot - ihl;
		l4 = cur + ihl;
		off += ihl;
	} else if (proto == 0x86dd) {
		if (cur + 40 > (__u8 *)data_end)
			return CNT_NA_MALFORMED;
		if ((cur[0] >> 4) != 6)
			return CNT_NA_MALFORMED;
		__u32 plen = be16(cur + 4);
		__u32 ext = 0;
		__u8 nh = cur[6];
		__builtin_memcpy(src, cur + 8, 16);
		__builtin_memcpy(dst, cur + 24, 16);
		l4 = cur + 40;
#pragma unroll
		for (int i = 0; i < 4; i++) {
			if (nh == 0 || nh == 43 || nh == 60) {
				if (l4 + 8 > (__u8 *)data_end)
					return CNT_NA_MALFORMED;
				__u32 hl = ((__u32)l4[1] + 1) * 8;
				nh = l4[0];
				l4 += hl;
				ext += hl;
			} else if (nh == 44) {
				if (l4 + 8 > (__u8 *)data_end)
					return CNT_NA_MALFORMED;
				if (be16(l4 + 2) & 0xfff8)
					return CNT_NA_FRAGMENT;
				nh = l4[0];
				l4 += 8;
				ext += 8;
			}
		}
		if (nh == 0 || nh == 43 || nh == 60 || nh == 44)
			return CNT_NA_MALFORMED;
		if (ext > plen)
			return CNT_NA_MALFORMED;
		l4proto = nh;
		off += 40 + ext;
		p->ip_len = plen + 40;
		p->l4_len = plen - ext;
	} else {
		return CNT_NA_NON_IP;
	}

	__u16 sport = 0, dport = 0;
	p->l4_hdr = 0;
	p->is_tcp = 0;
	p->flags = 0;
	p->seq = 0;
	p->payload = 0;
	if (l4proto == 6) {
		if (l4 + 20 > (__u8 *)data_end)
			return CNT_NA_MALFORMED;
		__u32 doff = (l4[12] >> 4) * 4;
		if (doff < 20 || doff > p->l4_len)
			return CNT_NA_MALFORMED;
		sport = be16(l4);
		dport = be16(l4 + 2);
		p->seq = be32(l4 + 4);
		p->flags = l4[13];
		p->is_tcp = 1;
		p->l4_hdr = doff;
		p->payload = p->l4_len - doff;
	} else if (l4proto == 17) {
		if (l4 + 8 > (__u8 *)data_end)
			return CNT_NA_MALFORMED;
		sport = be16(l4);
		dport = be16(l4 + 2);
		p->l4_hdr = 8;
	}
	p->l4_off = (__u16)off;

	if (ep_less(dst, dport, src, sport)) {
		__builtin_memcpy(p->key.low_addr, dst, 16);
		__builtin_memcpy(p->key.high_addr, src, 16);
		p->key.low_port = dport;
		p->key.high_port = sport;
		p->dir = 1;
	} else {
		__builtin_memcpy(p->key.low_addr, src, 16);
		__builtin_memcpy(p->key.high_addr, dst, 16);
		p->key.low_port = sport;
		p->key.high_port = dport;
		p->dir = 0;
	}
	p->key.scope = vlan;
	p->key.protocol = l4proto;
	return 0;
}

INLINE __u32 size_bucket(__u32 len)
{
	if (len <= 64) return 0;
	if (len <= 128) return 1;
	if (len <= 256) return 2;
	if (len <= 512) return 3;
	if (len <= 1024) return 4;
	if (len <= 1514) return 5;
	if (len <= 9000) return 6;
	return 7;
}

INLINE __u32 iat_bucket(__u64 ns)
{
	if (ns <= 10000ULL) return 0;
	if (ns <= 100000ULL) return 1;
	if (ns <= 1000000ULL) return 2;
	if (ns <= 10000000ULL) return 3;
	if (ns <= 100000000ULL) return 4;
	if (ns <= 1000000000ULL) return 5;
	if (ns <= 10000000000ULL) return 6;
	return 7;
}

/* ACCOUNTING.md, "Per-flow state", for one packet in direction p->dir at time `now`. */
INLINE void account(struct flow_state *st, const struct parsed *p, __u64 now)
{
	__u32 d = p->dir & 1;

	if (st->packets[d] == 0) {
		st->first_ns[d] = now;
		st->last_ns[d] = now;
	} else if (now >= st->last_ns[d]) {
		st->iat_hist[d][iat_bucket(now - st->last_ns[d]) & 7] += 1;
		st->last_ns[d] = now;
	}
	st->packets[d] += 1;
	st->bytes[d] += p->ip_len;
	st->size_hist[d][size_bucket(p->ip_len) & 7] += 1;

	if (!p->is_tcp)
		return;
	st->tcp_flags[d] |= p->flags;
	if (p->flags & 0x04)
		st->resets[d] += 1;
	__u32 len = p->payload + ((p->flags >> 1) & 1) + (p->flags & 1);
	if (len == 0)
		return;
	__u32 end = p->seq + len;
	if (!st->seq_valid[d]) {
		st->next_seq[d] = end;
		st->seq_valid[d] = 1;
		return;
	}
	__s32 diff = (__s32)(p->seq - st->next_seq[d]);
	if (diff == 0) {
		st->next_seq[d] = end;
	} else if (diff < 0) {
		st->retrans[d] += 1;
		if ((__s32)(end - st->next_seq[d]) > 0)
			st->next_seq[d] = end;
	} else {
		st->seq_errors[d] += 1;
		st->next_seq[d] = end;
	}
}

struct cfg {
	__u32 pass, first_packets, snap_len, hdr_payload, wake_every, wake_bytes;
};

INLINE void load_cfg(struct cfg *c)
{
	__u32 zero = 0;
	struct probe_config *pc = bpf_map_lookup_elem(&snf_config, &zero);
	if (pc && pc->version == CONFIG_VERSION) {
		c->pass = pc->pass;
		c->first_packets = pc->first_packets;
		c->snap_len = pc->snap_len;
		c->hdr_payload = pc->hdr_payload;
		c->wake_every = pc->wake_every;
		c->wake_bytes = pc->wake_bytes;
	} else {
		c->pass = 0;
		c->first_packets = 8;
		c->snap_len = SNAP_MAX;
		c->hdr_payload = 64;
		c->wake_every = 32;
		c->wake_bytes = 65536;
	}
}

/* Copies the first `cap` bytes of the packet and the header into the ring buffer. */
INLINE void send(void *ctx, int is_xdp, const struct parsed *p, struct flow_state *st, __u64 now,
		 __u32 wire_len, __u32 cap, __u8 reason, const struct cfg *c)
{
	__u32 zero = 0;
	struct scratch *s = bpf_map_lookup_elem(&snf_scratch, &zero);
	if (!s)
		return;
	if (cap > wire_len)
		cap = wire_len;
	if (cap > SNAP_MAX)
		cap = SNAP_MAX;
	if (cap < 1)
		return;
	long err = is_xdp ? bpf_xdp_load_bytes(ctx, 0, s->data, cap)
			  : bpf_skb_load_bytes(ctx, 0, s->data, cap);
	if (err)
		return;
	s->ev.ts_ns = now;
	s->ev.key = p->key;
	s->ev.ip_len = p->ip_len;
	s->ev.wire_len = wire_len;
	s->ev.cap_len = (__u16)cap;
	s->ev.l3_off = p->l3_off;
	s->ev.l4_off = p->l4_off;
	s->ev.dir = p->dir;
	s->ev.reason = reason;

	/* Batched wake-ups: the reader also polls with a timeout, so a quiet tail is not stranded. */
	__u64 flags = BPF_RB_NO_WAKEUP;
	s->since_wake += 1;
	__u64 size = sizeof(struct pkt_event) + cap;
	/* Data waiting after this record: what is there plus the record itself. */
	if (s->since_wake >= c->wake_every ||
	    bpf_ringbuf_query(&snf_events, BPF_RB_AVAIL_DATA) + size >= c->wake_bytes) {
		flags = BPF_RB_FORCE_WAKEUP;
		s->since_wake = 0;
	}
	if (bpf_ringbuf_output(&snf_events, &s->ev, size, flags)) {
		count(CNT_RING_FULL, 1);
		return;
	}
	st->sent_to_user += 1;
	count(CNT_EVENTS, 1);
	count(CNT_EVENT_BYTES, cap);
}

/* Returns 1 to pass the packet on, 0 to drop it. */
INLINE int process(void *ctx, int is_xdp, __u32 wire_len, __u32 vlan0, int tags0)
{
	struct parsed p = {};
	struct cfg c;
	__u64 now = bpf_ktime_get_ns();

	load_cfg(&c);
	count(CNT_PACKETS, 1);
	/* Packet pointers are read here, just before use: kept live across the calls above, clang
	 * zero-extends them with a 32-bit move that the verifier refuses without root. */
	void *data, *data_end;
	if (is_xdp) {
		data = (void *)(long)((struct xdp_md *)ctx)->data;
		data_end = (void *)(long)((struct xdp_md *)ctx)->data_end;
	} else {
		data = (void *)(long)((struct __sk_buff *)ctx)->data;
		data_end = (void *)(long)((struct __sk_buff *)ctx)->data_end;
	}
	int na = parse(data, data_end, &p, vlan0, tags0);
	if (na) {
		count(na, 1);
		return c.pass;
	}

	struct flow_state *st = bpf_map_lookup_elem(&snf_flows, &p.key);
	if (!st) {
		__u32 zero = 0;
		struct scratch *s = bpf_map_lookup_elem(&snf_scratch, &zero);
		if (!s)
			return c.pass;
		__builtin_memset(&s->init, 0, sizeof(s->init));
		s->init.client_dir = p.dir;
		if (p.is_tcp && (p.flags & 0x12) == 0x12)
			s->init.client_dir = p.dir ^ 1;
		long err = bpf_map_update_elem(&snf_flows, &p.key, &s->init, BPF_NOEXIST);
		if (err == 0)
			count(CNT_NEW_FLOWS, 1);
		st = bpf_map_lookup_elem(&snf_flows, &p.key);
		if (!st) {
			count(CNT_MAP_FULL, 1);
			return c.pass;
		}
	}

	__u64 before = st->packets[0] + st->packets[1];
	account(st, &p, now);
	count(CNT_ACCOUNTED, 1);

	__u8 reason = 0;
	if (before < c.first_packets) {
		reason = SEND_FIRST_PACKETS;
	} else {
		if (st->verdict != VERDICT_CLASSIFIED) {
			__u32 *v = bpf_map_lookup_elem(&snf_verdicts, &p.key);
			if (v)
				st->verdict = (__u8)*v;
		}
		if (st->verdict == VERDICT_CLASSIFYING)
			reason = SEND_CLASSIFYING;
		else if (st->verdict == VERDICT_HEADERS)
			reason = SEND_HEADERS;
	}
	if (reason == SEND_HEADERS)
		send(ctx, is_xdp, &p, st, now, wire_len, (__u32)p.l4_off + p.l4_hdr + c.hdr_payload,
		     reason, &c);
	else if (reason)
		send(ctx, is_xdp, &p, st, now, wire_len, c.snap_len, reason, &c);
	return c.pass;
}

SEC("xdp.frags")
int snf_xdp(struct xdp_md *ctx)
{
	__u32 wire_len = (__u32)bpf_xdp_get_buff_len(ctx);
	return process(ctx, 1, wire_len, 0, 0) ? XDP_PASS : XDP_DROP;
}

SEC("classifier")
int snf_tc(struct __sk_buff *skb)
{
	__u32 want = skb->len < 128 ? skb->len : 128;
	/* Headers may sit in a non-linear part: make the first 128 bytes directly readable.
	 * A comparison, not data_end - data: pointer subtraction needs CAP_PERFMON. */
	if ((__u8 *)(long)skb->data + want > (__u8 *)(long)skb->data_end)
		bpf_skb_pull_data(skb, want);
	/* The stack has already moved the outer VLAN tag into skb->vlan_tci (skb_vlan_untag runs
	 * before TC ingress): it counts as the first of the two tags. */
	__u32 vlan0 = skb->vlan_present ? (skb->vlan_tci & 0x0fff) : 0;
	int tags0 = skb->vlan_present ? 1 : 0;
	return process(skb, 0, skb->len, vlan0, tags0) ? TC_ACT_OK : TC_ACT_SHOT;
}
