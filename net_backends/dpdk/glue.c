/* kvshard's C glue for DPDK: the calls the Python device needs, with whole bursts copied in
 * one call (rte_eth_rx_burst and rte_eth_tx_burst are static inline in DPDK's headers, and a
 * Python-to-C call per mbuf would cost more than the copy). Every function returns a negative
 * errno-style code on failure; kv_strerror names it. One port, one queue pair per process:
 * each kvshard shard is its own DPDK process (its own EAL, file prefix and mempool). */

#include <errno.h>
#include <string.h>

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

#define KV_FRAME_ROOM 2048

static struct rte_mempool *kv_pool;

int kv_eal_init(int argc, char **argv)
{
    int used = rte_eal_init(argc, argv);
    return used < 0 ? -rte_errno : used;
}

const char *kv_strerror(int err)
{
    return rte_strerror(err < 0 ? -err : err);
}

int kv_port_by_name(const char *name)
{
    uint16_t port;
    if (rte_eth_dev_get_port_by_name(name, &port) != 0)
        return -ENODEV;
    return port;
}

int kv_port_count(void)
{
    return rte_eth_dev_count_avail();
}

int kv_port_start(uint16_t port, unsigned n_mbufs, uint16_t rx_desc, uint16_t tx_desc, int want_rx_intr,
                  const uint8_t *mac, uint16_t *mtu, int *rx_fd, char *driver, unsigned driver_len)
{
    struct rte_eth_conf conf;
    struct rte_eth_dev_info info;
    int rc, socket = rte_eth_dev_socket_id(port);

    if (socket < 0)
        socket = (int)rte_socket_id();
    if (kv_pool == NULL) {
        kv_pool = rte_pktmbuf_pool_create("kvshard_mbufs", n_mbufs, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE, socket);
        if (kv_pool == NULL)
            return -rte_errno;
    }
    rc = rte_eth_dev_info_get(port, &info);
    if (rc != 0)
        return rc;
    snprintf(driver, driver_len, "%s", info.driver_name ? info.driver_name : "?");
    memset(&conf, 0, sizeof(conf));
    conf.intr_conf.rxq = want_rx_intr ? 1 : 0;
    rc = rte_eth_dev_configure(port, 1, 1, &conf);
    if (rc != 0 && want_rx_intr) {  /* the driver has no Rx interrupts: poll instead */
        conf.intr_conf.rxq = 0;
        want_rx_intr = 0;
        rc = rte_eth_dev_configure(port, 1, 1, &conf);
    }
    if (rc != 0)
        return rc;
    rc = rte_eth_dev_adjust_nb_rx_tx_desc(port, &rx_desc, &tx_desc);
    if (rc != 0)
        return rc;
    rc = rte_eth_rx_queue_setup(port, 0, rx_desc, socket, NULL, kv_pool);
    if (rc != 0)
        return rc;
    rc = rte_eth_tx_queue_setup(port, 0, tx_desc, socket, NULL);
    if (rc != 0)
        return rc;
    rc = rte_eth_dev_start(port);
    if (rc != 0)
        return rc;
    if (rte_eth_dev_get_mtu(port, mtu) != 0)
        *mtu = RTE_ETHER_MTU;
    *rx_fd = -1;
    if (want_rx_intr) {
        /* drivers that wake by a file descriptor (net_tap: the queue's tap fd) give it here;
           some need no enabling (net_tap refuses the call), others do */
        rte_eth_dev_rx_intr_enable(port, 0);
        *rx_fd = rte_eth_dev_rx_intr_ctl_q_get_fd(port, 0);
    }
    return 0;
}

int kv_rx_intr_enable(uint16_t port)
{
    return rte_eth_dev_rx_intr_enable(port, 0);
}

/* Receive up to max frames: each is copied to buf (KV_FRAME_ROOM bytes apart) and its length
 * put in lens; frames longer than the room are dropped and counted in *too_long. */
int kv_rx_burst(uint16_t port, uint8_t *buf, uint16_t *lens, unsigned max, uint64_t *too_long)
{
    struct rte_mbuf *mbufs[64];
    unsigned i, kept = 0;
    uint16_t n;

    if (max > 64)
        max = 64;
    n = rte_eth_rx_burst(port, 0, mbufs, (uint16_t)max);
    for (i = 0; i < n; i++) {
        struct rte_mbuf *m = mbufs[i];
        uint32_t len = rte_pktmbuf_pkt_len(m);
        if (len <= KV_FRAME_ROOM) {
            const void *data = rte_pktmbuf_read(m, 0, len, buf + (size_t)kept * KV_FRAME_ROOM);
            if (data != buf + (size_t)kept * KV_FRAME_ROOM)
                memcpy(buf + (size_t)kept * KV_FRAME_ROOM, data, len);
            lens[kept++] = (uint16_t)len;
        } else {
            (*too_long)++;
        }
        rte_pktmbuf_free(m);
    }
    return (int)kept;
}

/* Send n frames laid end to end in buf (lengths in lens); returns how many the driver took
 * (the rest are freed: dropped). */
int kv_tx_burst(uint16_t port, const uint8_t *buf, const uint16_t *lens, unsigned n)
{
    struct rte_mbuf *mbufs[64];
    unsigned i, made = 0;
    uint16_t sent;
    size_t offset = 0;

    if (n > 64)
        n = 64;
    for (i = 0; i < n; i++) {
        struct rte_mbuf *m = rte_pktmbuf_alloc(kv_pool);
        char *room;
        if (m == NULL)
            break;
        room = rte_pktmbuf_append(m, lens[i]);
        if (room == NULL) {
            rte_pktmbuf_free(m);
            break;
        }
        memcpy(room, buf + offset, lens[i]);
        offset += lens[i];
        mbufs[made++] = m;
    }
    sent = rte_eth_tx_burst(port, 0, mbufs, (uint16_t)made);
    for (i = sent; i < made; i++)
        rte_pktmbuf_free(mbufs[i]);
    return sent;
}

/* ipackets, opackets, imissed, ierrors, oerrors, rx_nombuf */
int kv_port_stats(uint16_t port, uint64_t *out)
{
    struct rte_eth_stats stats;
    int rc = rte_eth_stats_get(port, &stats);
    if (rc != 0)
        return rc;
    out[0] = stats.ipackets;
    out[1] = stats.opackets;
    out[2] = stats.imissed;
    out[3] = stats.ierrors;
    out[4] = stats.oerrors;
    out[5] = stats.rx_nombuf;
    return 0;
}

int kv_link_up(uint16_t port)
{
    struct rte_eth_link link;
    if (rte_eth_link_get_nowait(port, &link) != 0)
        return -1;
    return link.link_status == RTE_ETH_LINK_UP;
}

void kv_port_close(uint16_t port)
{
    rte_eth_dev_stop(port);
    rte_eth_dev_close(port);
}
