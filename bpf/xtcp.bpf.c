// SPDX-License-Identifier: MIT OR Apache-2.0
//
// xtcp's XDP program: steer the frames that belong to the stack to the AF_XDP socket of the
// queue they arrived on, and let everything else through to the kernel (XDP_PASS), so the
// host keeps working on the same interface.
//
// Ours:
//  * ARP whose *target* protocol address is one of our addresses: requests for us and replies
//    to our own requests. ARP for other hosts (the kernel's own neighbours, gratuitous ARP)
//    stays with the kernel: the stack has no business answering it, and the kernel still
//    needs it for any address it owns on this interface.
//  * IPv4 whose destination is one of our addresses and whose protocol is ICMP, TCP or UDP
//    (UDP for the raw bounce benchmark and, later, the stack's UDP). Fragments go to the stack
//    too; it counts and drops them until it reassembles.
//  * IPv6 whose destination is one of our addresses and whose next header is TCP, ICMPv6 or
//    UDP (a packet with extension headers first stays with the kernel: ours carry none), and
//    neighbour solicitations sent to a multicast group (the solicited-node group, RFC 4861
//    §7.2.2) whose *target* is one of our addresses. Other multicast (the kernel's router and
//    multicast-listener traffic, unsolicited advertisements) stays with the kernel.
//
// Our addresses live in `local_addrs` and `local_addrs6`, filled by the loader
// (src/io/afxdp.rs). If the queue a frame of ours arrived on has no socket in `xsks_map`,
// bpf_redirect_map() falls back to XDP_PASS and the frame is counted as `no_socket` (on veth,
// queue choice is the sender's: bind a socket on every queue, see AFXDP-NOTES.md).
//
// Counters are per CPU (no atomics on the fast path); user space sums them.
//
// Built by build.rs with libbpf-cargo against the kernel's UAPI headers (linux-libc-dev) and
// the libbpf headers that libbpf-cargo ships: no vmlinux.h, no bpftool, no CO-RE needed.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/in6.h>
#include <linux/ipv6.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

// Keep in step with `Counter` in src/io/afxdp.rs.
enum counter {
	COUNTER_REDIRECTED = 0, // handed to an AF_XDP socket
	COUNTER_PASSED = 1,     // not ours: left to the kernel
	COUNTER_NO_SOCKET = 2,  // ours, but no socket on this queue: left to the kernel
	COUNTER_ERRORS = 3,     // ARP/IPv4 too short for its header: left to the kernel, which drops it
	COUNTER_MAX = 4,
};

#define MAX_QUEUES 64
#define MAX_ADDRS 64
#define ARP_LEN 28
#define ARP_TPA_OFFSET 24
#define IPPROTO_ICMPV6_ 58
#define ICMPV6_NS 135
#define NS_TARGET_OFFSET 8
#define NS_LEN 24

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, MAX_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
} xsks_map SEC(".maps");

// Key: IPv4 address in network byte order. Value: unused (1).
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_ADDRS);
	__type(key, __u32);
	__type(value, __u8);
} local_addrs SEC(".maps");

// Key: IPv6 address, 16 bytes in network order. Value: unused (1).
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_ADDRS);
	__type(key, struct in6_addr);
	__type(value, __u8);
} local_addrs6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, COUNTER_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

static __always_inline int count(__u32 which, int action)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &which);
	if (v)
		*v += 1; // per-CPU slot: no other CPU writes it
	return action;
}

static __always_inline int to_socket(struct xdp_md *ctx)
{
	// Success is XDP_REDIRECT; an empty slot for this queue gives the fallback, XDP_PASS.
	long action = bpf_redirect_map(&xsks_map, ctx->rx_queue_index, XDP_PASS);
	return count(action == XDP_REDIRECT ? COUNTER_REDIRECTED : COUNTER_NO_SOCKET, (int)action);
}

static __always_inline int ipv6(struct xdp_md *ctx, struct ipv6hdr *ip6, void *data_end)
{
	struct in6_addr key;
	if ((void *)(ip6 + 1) > data_end)
		return count(COUNTER_ERRORS, XDP_PASS);
	__u8 next = ip6->nexthdr;
	if (next != IPPROTO_TCP && next != IPPROTO_UDP && next != IPPROTO_ICMPV6_)
		return count(COUNTER_PASSED, XDP_PASS);
	if (ip6->daddr.s6_addr[0] == 0xff) {
		// Multicast: only a neighbour solicitation for one of our addresses.
		__u8 *icmp = (void *)(ip6 + 1);
		if (next != IPPROTO_ICMPV6_)
			return count(COUNTER_PASSED, XDP_PASS);
		if ((void *)(icmp + NS_LEN) > data_end)
			return count(COUNTER_ERRORS, XDP_PASS);
		if (icmp[0] != ICMPV6_NS)
			return count(COUNTER_PASSED, XDP_PASS);
		__builtin_memcpy(&key, icmp + NS_TARGET_OFFSET, sizeof(key));
	} else {
		__builtin_memcpy(&key, &ip6->daddr, sizeof(key));
	}
	if (!bpf_map_lookup_elem(&local_addrs6, &key))
		return count(COUNTER_PASSED, XDP_PASS);
	return to_socket(ctx);
}

SEC("xdp")
int xtcp_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u32 dst;

	if ((void *)(eth + 1) > data_end)
		return count(COUNTER_PASSED, XDP_PASS);

	if (eth->h_proto == bpf_htons(ETH_P_ARP)) {
		__u8 *arp = (void *)(eth + 1);
		if ((void *)(arp + ARP_LEN) > data_end)
			return count(COUNTER_ERRORS, XDP_PASS);
		// The target address is not 4-byte aligned in the frame: copy it out byte-wise.
		__builtin_memcpy(&dst, arp + ARP_TPA_OFFSET, sizeof(dst));
	} else if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);
		if ((void *)(ip + 1) > data_end)
			return count(COUNTER_ERRORS, XDP_PASS);
		if (ip->protocol != IPPROTO_TCP && ip->protocol != IPPROTO_UDP && ip->protocol != IPPROTO_ICMP)
			return count(COUNTER_PASSED, XDP_PASS);
		dst = ip->daddr;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		return ipv6(ctx, (void *)(eth + 1), data_end);
	} else {
		return count(COUNTER_PASSED, XDP_PASS);
	}

	if (!bpf_map_lookup_elem(&local_addrs, &dst))
		return count(COUNTER_PASSED, XDP_PASS);
	return to_socket(ctx);
}

// GPL-compatible so that the verifier allows every helper; the source itself is MIT/Apache.
char LICENSE[] SEC("license") = "Dual MIT/GPL";
