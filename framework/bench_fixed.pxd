# Compiled by Cython (pure-Python mode) from bench_fixed.py; see framework/extensions.py.
# Types only: the logic is in bench_fixed.py, which also runs interpreted.
cimport cython

from framework.channel cimport FixedTarget, Messenger


cdef class CountingSink(FixedTarget):
    cdef public long long received

    cpdef bytes run_fixed(self, int handler_id, key, value, long long a, long long b, long long c)


@cython.locals(sent=Py_ssize_t)
cpdef Py_ssize_t send_burst(Messenger messenger, int shard, int handler_id, bytes key,
                            long long first, Py_ssize_t count) except -1
