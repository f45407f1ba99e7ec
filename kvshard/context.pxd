# Compiled by Cython (pure-Python mode) from context.py; see framework/extensions.py.
from framework.channel cimport Messenger
from kvshard.service cimport KVService


cdef class ShardContext:
    cdef public int shard_id
    cdef public int shards
    cdef public KVService service
    cdef public Messenger messenger
    cdef public dict local
    cdef public object handler
    cdef public Py_ssize_t max_item_size
    cdef public Py_ssize_t max_connections
    cdef public object version
    cdef public object info
    cdef public list verbosity
    cdef public object open_connections
    cdef public object publish_connections
    cdef public long long local_requests
    cdef public long long forwarded_requests
    cdef public object observe_latency
    cdef public object request_shutdown
    cdef public long long latency_sample_mask
    cdef public dict connections
    cdef public long long now
    cdef public object sasl
    cdef public object ascii_login
    cdef public bint flush_enabled
    cdef public object watch
    cdef public bint watch_enabled
    cdef public bint trace_reads
    cdef public object binding_protocol
    cdef public Py_ssize_t reqs_per_event
