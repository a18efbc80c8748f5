/*
 * The C side of xtcp's DPDK backend (src/io/dpdk.rs): DPDK's fast-path calls are static inline
 * functions (rte_eth_rx_burst, rte_pktmbuf_alloc, ...) that Rust cannot call, and its big
 * structures (rte_mbuf, rte_eth_conf, rte_eth_dev_info) change layout between releases. So
 * Rust sees only the functions below, which take and return plain integers and opaque
 * pointers: nothing in Rust depends on the layout of a DPDK structure.
 *
 * Built by build.rs with the cc crate against `pkg-config libdpdk` (DPDK >= 22.11), when the
 * `dpdk` cargo feature is on. Every function returns 0 or a count on success and a negative
 * errno on failure, as DPDK itself does.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_bus.h>
#include <rte_dev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_mbuf_pool_ops.h>

/* The per-mbuf private area: the index of the mbuf in its pool (the Rust Frame's index). */
struct xtcp_priv {
	uint32_t index;
	uint32_t pad;
};

int xtcp_dpdk_eal_init(int argc, char **argv)
{
	int r = rte_eal_init(argc, argv);
	return r < 0 ? -rte_errno : r;
}

/* Hot-plug a virtual device ("net_af_packet0,iface=x") and return its port id. */
int xtcp_dpdk_probe(const char *devargs, const char *name, uint16_t *port)
{
	int r = rte_dev_probe(devargs);
	if (r < 0)
		return r;
	r = rte_eth_dev_get_port_by_name(name, port);
	return r < 0 ? r : 0;
}

/* Undo xtcp_dpdk_probe: stop and close the port, remove the device. */
int xtcp_dpdk_remove(uint16_t port, const char *name)
{
	(void)rte_eth_dev_stop(port);
	(void)rte_eth_dev_close(port);
	return rte_eal_hotplug_remove("vdev", name);
}

int xtcp_dpdk_port_info(uint16_t port, uint16_t *max_rx_queues, uint16_t *max_tx_queues, uint8_t mac[6],
			uint32_t *max_rx_pktlen)
{
	struct rte_eth_dev_info info;
	struct rte_ether_addr addr;
	int r = rte_eth_dev_info_get(port, &info);
	if (r < 0)
		return r;
	r = rte_eth_macaddr_get(port, &addr);
	if (r < 0)
		return r;
	*max_rx_queues = info.max_rx_queues;
	*max_tx_queues = info.max_tx_queues;
	*max_rx_pktlen = info.max_rx_pktlen;
	memcpy(mac, addr.addr_bytes, 6);
	return 0;
}

struct pool_walk {
	struct rte_mbuf **table;
	uint32_t cap;
	uint32_t n;
};

static void number_mbuf(struct rte_mempool *mp, void *arg, void *obj, unsigned idx)
{
	struct pool_walk *w = arg;
	struct rte_mbuf *m = obj;
	struct xtcp_priv *p = rte_mbuf_to_priv(m);
	(void)mp;
	(void)idx;
	if (w->n < w->cap) {
		p->index = w->n;
		w->table[w->n] = m;
		w->n++;
	} else {
		p->index = UINT32_MAX;
	}
}

/*
 * A pool of `n` mbufs with at least `data_room` bytes of buffer (headroom included), each
 * numbered in its private area; `table[i]` is mbuf i. Returns the pool, or NULL with *err set;
 * *room is the buffer size each mbuf got.
 *
 * Each object (mempool header, mbuf, private area, buffer) is made exactly one 4 KiB page, or
 * a whole number of them, and the pool does not spread objects over memory channels: without
 * hugepages, mempool objects may not cross a page boundary, so objects of another size leave
 * gaps, and the af_xdp PMD, which registers the pool's memory as its UMEM assuming objects are
 * packed (populated_size * object size from the first), then hands the kernel fill-ring
 * addresses beyond the UMEM: those frames are lost and, one by one, RX stops (seen on veth:
 * RX died after 400-2,700 frames with pools of 4,096-8,192 of 2,176-byte mbufs).
 */
struct rte_mempool *xtcp_dpdk_pool_create(const char *name, uint32_t n, uint16_t data_room, struct rte_mbuf **table,
					  uint32_t *numbered, uint16_t *room, int *err)
{
	struct pool_walk w = { table, n, 0 };
	struct rte_pktmbuf_pool_private pp;
	struct rte_mempool_objsz sz;
	const uint32_t page = 4096;
	uint32_t elt = sizeof(struct rte_mbuf) + sizeof(struct xtcp_priv) + data_room;
	uint32_t total = rte_mempool_calc_obj_size(elt, RTE_MEMPOOL_F_NO_SPREAD, &sz);
	uint32_t grow = (total + page - 1) / page * page - total;
	struct rte_mempool *mp;
	if ((uint32_t)data_room + grow > UINT16_MAX)
		grow = 0;
	data_room = (uint16_t)(data_room + grow);
	elt += grow;
	mp = rte_mempool_create_empty(name, n, elt, 0, sizeof(pp), (int)rte_socket_id(), RTE_MEMPOOL_F_NO_SPREAD);
	if (mp == NULL) {
		*err = -rte_errno;
		return NULL;
	}
	*err = rte_mempool_set_ops_byname(mp, rte_mbuf_best_mempool_ops(), NULL);
	if (*err == 0) {
		memset(&pp, 0, sizeof(pp));
		pp.mbuf_data_room_size = data_room;
		pp.mbuf_priv_size = sizeof(struct xtcp_priv);
		rte_pktmbuf_pool_init(mp, &pp);
		*err = rte_mempool_populate_default(mp);
		if (*err >= 0)
			*err = 0;
	}
	if (*err != 0) {
		rte_mempool_free(mp);
		return NULL;
	}
	rte_mempool_obj_iter(mp, rte_pktmbuf_init, NULL);
	rte_mempool_obj_iter(mp, number_mbuf, &w);
	*numbered = w.n;
	*room = data_room;
	return mp;
}

void xtcp_dpdk_pool_free(struct rte_mempool *mp)
{
	rte_mempool_free(mp);
}

/* What xtcp_dpdk_port_start turned on (its *offloads). */
#define XTCP_RX_L4_CKSUM 1u
#define XTCP_TX_TCP_CKSUM 2u

/*
 * Configure `queues` RX and TX queues of `ring` descriptors each, RX from pools[q], and start.
 * With `want_offload`, the checksum offloads the PMD offers are turned on (RX: IPv4, TCP and
 * UDP checksums verified; TX: TCP checksums filled in), and *offloads says which.
 */
int xtcp_dpdk_port_start(uint16_t port, uint16_t queues, uint16_t ring, struct rte_mempool **pools, uint32_t mtu,
			 int want_offload, uint32_t *offloads)
{
	struct rte_eth_conf conf;
	struct rte_eth_dev_info info;
	uint16_t q;
	int r;
	memset(&conf, 0, sizeof(conf));
	r = rte_eth_dev_info_get(port, &info);
	if (r < 0)
		return r;
	/* RSS where the PMD hashes in hardware; others spread flows their own way (af_packet's
	 * fanout is the kernel's flow hash), and the runtime steers each flow to its core. */
	conf.rx_adv_conf.rss_conf.rss_hf = (RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP) & info.flow_type_rss_offloads;
	if (queues > 1 && conf.rx_adv_conf.rss_conf.rss_hf != 0)
		conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
	*offloads = 0;
	if (want_offload) {
		uint64_t rx = RTE_ETH_RX_OFFLOAD_TCP_CKSUM | RTE_ETH_RX_OFFLOAD_UDP_CKSUM | RTE_ETH_RX_OFFLOAD_IPV4_CKSUM;
		if ((info.rx_offload_capa & RTE_ETH_RX_OFFLOAD_TCP_CKSUM) != 0) {
			conf.rxmode.offloads = rx & info.rx_offload_capa;
			*offloads |= XTCP_RX_L4_CKSUM;
		}
		if ((info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_TCP_CKSUM) != 0) {
			conf.txmode.offloads = RTE_ETH_TX_OFFLOAD_TCP_CKSUM;
			*offloads |= XTCP_TX_TCP_CKSUM;
		}
	}
	r = rte_eth_dev_configure(port, queues, queues, &conf);
	if (r < 0)
		return r;
	if (mtu != 0) {
		r = rte_eth_dev_set_mtu(port, (uint16_t)mtu);
		if (r < 0 && r != -ENOTSUP)
			return r;
	}
	for (q = 0; q < queues; q++) {
		r = rte_eth_rx_queue_setup(port, q, ring, rte_eth_dev_socket_id(port), NULL, pools[q]);
		if (r < 0)
			return r;
		r = rte_eth_tx_queue_setup(port, q, ring, rte_eth_dev_socket_id(port), NULL);
		if (r < 0)
			return r;
	}
	r = rte_eth_dev_start(port);
	if (r < 0)
		return r;
	/* Frames to other MACs are the kernel's business; but some PMDs (memif) need it on. */
	(void)rte_eth_promiscuous_disable(port);
	return 0;
}

int xtcp_dpdk_link_up(uint16_t port)
{
	struct rte_eth_link link;
	memset(&link, 0, sizeof(link));
	if (rte_eth_link_get_nowait(port, &link) < 0)
		return 0;
	return link.link_status == RTE_ETH_LINK_UP;
}

uint64_t xtcp_dpdk_rx_nombuf(uint16_t port)
{
	struct rte_eth_stats st;
	if (rte_eth_stats_get(port, &st) < 0)
		return 0;
	return st.rx_nombuf;
}

/* Received frames, as (index, data offset, length) triples, and whether the PMD verified the
 * L4 checksum good (l4_good); multi-segment frames are dropped. */
uint16_t xtcp_dpdk_rx_burst(uint16_t port, uint16_t queue, uint32_t *idx, uint16_t *off, uint16_t *len,
			    uint8_t *l4_good, uint16_t max, uint32_t *dropped)
{
	struct rte_mbuf *m[64];
	uint16_t n, i, kept = 0;
	if (max > 64)
		max = 64;
	n = rte_eth_rx_burst(port, queue, m, max);
	for (i = 0; i < n; i++) {
		struct xtcp_priv *p = rte_mbuf_to_priv(m[i]);
		if (m[i]->nb_segs != 1 || p->index == UINT32_MAX) {
			rte_pktmbuf_free(m[i]);
			(*dropped)++;
			continue;
		}
		idx[kept] = p->index;
		off[kept] = m[i]->data_off;
		len[kept] = m[i]->data_len;
		l4_good[kept] = (m[i]->ol_flags & RTE_MBUF_F_RX_L4_CKSUM_MASK) == RTE_MBUF_F_RX_L4_CKSUM_GOOD;
		kept++;
	}
	return kept;
}

/* Send mbufs table[idx[i]] with their data at off[i], len[i] bytes; returns how many the PMD
 * took (from the front). With `keep`, each gets an extra reference first, dropped again if not
 * taken: the caller still owns it, and the PMD's reference shows as a refcount above 1. */
/*
 * Mark `b` for the PMD to fill in its TCP checksum (the stack wrote the pseudo-header's sum):
 * the L2/L3 lengths and the flags DPDK's TX offload needs. xtcp sends no VLAN tags and no IPv6
 * extension headers before TCP. Returns 0 when the frame is not IPv4/IPv6 TCP (left alone).
 */
static int mark_tcp_cksum(struct rte_mbuf *b)
{
	const uint8_t *p = rte_pktmbuf_mtod(b, const uint8_t *);
	uint16_t type;
	if (b->data_len < 14 + 40)
		return 0;
	type = (uint16_t)(p[12] << 8 | p[13]);
	b->l2_len = 14;
	if (type == 0x0800 && p[14 + 9] == 6) {
		b->l3_len = (p[14] & 0x0f) * 4u;
		b->ol_flags = RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_TCP_CKSUM;
		return 1;
	}
	if (type == 0x86dd && p[14 + 6] == 6) {
		b->l3_len = 40;
		b->ol_flags = RTE_MBUF_F_TX_IPV6 | RTE_MBUF_F_TX_TCP_CKSUM;
		return 1;
	}
	return 0;
}

uint16_t xtcp_dpdk_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **table, const uint32_t *idx,
			    const uint16_t *off, const uint16_t *len, const uint8_t *partial, uint16_t n, int keep,
			    uint32_t *offloaded)
{
	struct rte_mbuf *m[64];
	uint16_t i, sent, total;
	int any = 0;
	if (n > 64)
		n = 64;
	for (i = 0; i < n; i++) {
		struct rte_mbuf *b = table[idx[i]];
		b->data_off = off[i];
		b->data_len = len[i];
		b->pkt_len = len[i];
		b->nb_segs = 1;
		b->next = NULL;
		b->ol_flags = 0;
		if (partial[i] && mark_tcp_cksum(b)) {
			any = 1;
			(*offloaded)++;
		}
		if (keep)
			rte_mbuf_refcnt_update(b, 1);
		m[i] = b;
	}
	/* Offloads may need the PMD's fix-ups first (some NICs want the pseudo-header sum in
	 * another form); what it refuses is not sent, like a full ring. */
	total = n;
	if (any)
		n = rte_eth_tx_prepare(port, queue, m, n);
	sent = rte_eth_tx_burst(port, queue, m, n);
	if (keep)
		for (i = sent; i < total; i++)
			rte_mbuf_refcnt_update(m[i], -1);
	return sent;
}

/* A free mbuf's index, or UINT32_MAX when the pool is empty. */
uint32_t xtcp_dpdk_alloc(struct rte_mempool *mp)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(mp);
	if (m == NULL)
		return UINT32_MAX;
	return ((struct xtcp_priv *)rte_mbuf_to_priv(m))->index;
}

/* Drop the caller's reference (the mbuf goes back to its pool when no PMD holds it). */
void xtcp_dpdk_free(struct rte_mbuf *m)
{
	rte_pktmbuf_free(m);
}

uint16_t xtcp_dpdk_refcnt(const struct rte_mbuf *m)
{
	return rte_mbuf_refcnt_read(m);
}

/* The mbuf's whole buffer (headroom included) and its length. */
uint8_t *xtcp_dpdk_buffer(struct rte_mbuf *m, uint16_t *buf_len)
{
	*buf_len = m->buf_len;
	return m->buf_addr;
}

uint16_t xtcp_dpdk_headroom(void)
{
	return RTE_PKTMBUF_HEADROOM;
}

const char *xtcp_dpdk_strerror(int e)
{
	return rte_strerror(e);
}

/* mbufs free in the pool now (for the counters; not a fast-path call). */
uint32_t xtcp_dpdk_pool_avail(const struct rte_mempool *mp)
{
	return rte_mempool_avail_count(mp);
}
