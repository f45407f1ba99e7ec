"""DPDK under the native stack: a device for a DPDK port (``device.py``) over a small C glue
built with cffi against the system's DPDK (``glue.c``, ``glue.py``). Install with
``apt-get install dpdk libdpdk-dev pkg-config gcc`` and ``pip install 'kvshard[dpdk]'``; the glue
compiles on first use. Imports only ``framework`` and ``net_backends.native``."""
