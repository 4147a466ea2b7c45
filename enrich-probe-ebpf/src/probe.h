/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * The records shared by the tap's kernel program (probe.bpf.c) and its user side
 * (enrich-probe/src/kernel/types.rs mirrors every struct here, with size assertions).
 *
 * The per-flow rules are in enrich-probe/ACCOUNTING.md; `struct flow_state` follows its field
 * order exactly. All integers are little-endian (host order on the supported targets) except the
 * addresses, which stay in network order so that byte order = address order.
 */
#ifndef SNF_PROBE_H
#define SNF_PROBE_H

#include <linux/types.h>

/* Canonical flow key (schemas::FlowKey): endpoints ordered by (address as IPv4-mapped IPv6,
 * port); direction 0 is low -> high. 48 bytes, padding always zero (it is hashed). */
struct flow_key {
	__u8 low_addr[16];  /* network order; IPv4 as ::ffff:a.b.c.d */
	__u8 high_addr[16];
	__u16 low_port;     /* host order */
	__u16 high_port;
	__u32 scope;        /* innermost VLAN id, 0 when untagged */
	__u8 protocol;
	__u8 _pad[7];
};

/* Per-flow state, in ACCOUNTING.md's order; explicit padding where C would put it anyway. 240 bytes. */
struct flow_state {
	__u64 packets[2];
	__u64 bytes[2];      /* IP datagram length */
	__u64 first_ns[2];
	__u64 last_ns[2];
	__u8 tcp_flags[2];
	__u8 _pad0[2];
	__u32 resets[2];
	__u32 retrans[2];
	__u32 seq_errors[2];
	__u32 next_seq[2];
	__u8 seq_valid[2];
	__u8 _pad1[2];
	__u32 size_hist[2][8];
	__u32 iat_hist[2][8];
	__u8 client_dir;
	__u8 verdict;        /* mirror of the verdict map, see VERDICT_* */
	__u8 _pad2[2];
	__u32 sent_to_user;
};

enum verdict {
	VERDICT_NEW = 0,
	VERDICT_CLASSIFYING = 1, /* send whole packets up to snap_len */
	VERDICT_HEADERS = 2,     /* send L4 header + hdr_payload bytes */
	VERDICT_CLASSIFIED = 3,  /* counters only */
};

/* Why a packet was copied to user space (pkt_event.reason). */
enum send_reason {
	SEND_FIRST_PACKETS = 1,
	SEND_CLASSIFYING = 2,
	SEND_HEADERS = 3,
};

/* One ring-buffer record: this header, then cap_len bytes of the frame from its first byte. */
struct pkt_event {
	__u64 ts_ns;         /* bpf_ktime_get_ns (CLOCK_MONOTONIC) */
	struct flow_key key;
	__u32 ip_len;        /* IP datagram length, as counted */
	__u32 wire_len;      /* frame length including fragments (XDP frags / skb->len) */
	__u16 cap_len;       /* bytes following this header */
	__u16 l3_off;        /* offset of the IP header in the copied bytes */
	__u16 l4_off;        /* offset of the transport header (0: none) */
	__u8 dir;            /* 0: low -> high, 1: high -> low */
	__u8 reason;         /* enum send_reason */
};                       /* 72 bytes */

#define SNAP_MAX 2048        /* largest snap_len the program honours (a whole MTU-sized frame) */

/* Configuration: array map "snf_config", one entry, written by user space before attaching.
 * While `version` is not CONFIG_VERSION the program uses the defaults in brackets. */
#define CONFIG_VERSION 1
struct probe_config {
	__u32 version;
	__u32 pass;          /* 1: XDP_PASS / TC_ACT_OK; 0: XDP_DROP / TC_ACT_SHOT [0] */
	__u32 first_packets; /* packets of a new flow always sent [8] */
	__u32 snap_len;      /* bytes sent per packet while classifying [2048], <= SNAP_MAX */
	__u32 hdr_payload;   /* payload bytes after the L4 header for VERDICT_HEADERS [64] */
	__u32 wake_every;    /* wake the reader every Nth record [32] */
	__u32 wake_bytes;    /* ... or when this much data waits [65536] */
	__u32 _pad;
};

/* Per-CPU counters: array map "snf_counters", u64 per index. */
enum counter {
	CNT_PACKETS = 0,        /* packets seen by the program */
	CNT_ACCOUNTED,          /* packets counted into a flow */
	CNT_NA_NON_IP,          /* not_accounted: non-IP ethertype (incl. a third VLAN tag) */
	CNT_NA_MALFORMED,       /* not_accounted: short/bad IHL/bad TCP offset/too many IPv6 ext headers */
	CNT_NA_FRAGMENT,        /* not_accounted: non-first fragment */
	CNT_MAP_FULL,           /* new flow could not be inserted */
	CNT_RING_FULL,          /* record could not be written to the ring buffer */
	CNT_EVENTS,             /* records written to the ring buffer */
	CNT_EVENT_BYTES,        /* packet bytes copied into those records */
	CNT_NEW_FLOWS,          /* flows created */
	CNT_MAX,
};

#endif
