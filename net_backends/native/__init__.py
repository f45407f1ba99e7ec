"""kvshard's own TCP/IP stack, one instance per shard, over a frame device (TAP, the in-memory
wire, DPDK). Each protocol module has the same roles: ``parse_*`` (a header from a memoryview,
None when malformed), ``build_*`` (bytes out), and the stack's receive and send paths."""
