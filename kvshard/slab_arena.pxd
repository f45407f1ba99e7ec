# Compiled by Cython (pure-Python mode) from slab_arena.py; see framework/extensions.py.
cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.string cimport memcpy, memcmp, memset
from kvshard.routing cimport key_mix, mix_at

cdef size_t _PREV, _NEXT, _CAS, _EXPIRE_AT, _NBYTES, _ATIME, _PREV_WORD, _NEXT_WORD, _EXPIRE_WORD, _ATIME_WORD
cdef size_t _NKEY, _LIST, _BITS, _CHECK, _HEADER, _FLAG_BYTES, _MORE_BYTES, _INDEX_START
cdef unsigned int _TOMBSTONE
cdef Py_ssize_t _MIGRATE_STEP, _HUGE_PAGE, _LISTS, _PULL_TRIES, _ALLOC_ROUNDS
cdef unsigned char _FREE, _ITEM, _CHAIN, _CLAIMED, _ACTIVE, _FETCHED
cdef unsigned char _STATE_BITS, _MARKS_SHIFT, _MARK_BITS, _HAS_FLAGS
cdef unsigned char _HOT, _WARM, _COLD, _TEMP, _LRU_BITS, _CLASS_BITS
cdef int _EVICT
cdef long long _UPDATE_INTERVAL

cpdef unsigned int key_hash(bytes key)
cdef unsigned int _index_hash(const unsigned char *data, size_t n)


@cython.final
cdef class SlabArena:
    cdef public Py_ssize_t page_size, chunk_max, page_count, limit, class_count
    cdef public list sizes
    cdef object _map
    cdef unsigned char[::1] _u8
    cdef unsigned int[::1] _u32
    cdef unsigned long long[::1] _u64
    cdef long long[::1] _size, _perslab, _pages, _free_head, _free_count, _cut, _cut_end
    cdef long long[::1] _head, _tail, _items, _chunks_used, _evicted, _reclaimed
    cdef long long[::1] _list_items, _list_bytes, _list_hits
    cdef long long[::1] _moves_to_cold, _moves_to_warm, _moves_within, _direct_reclaims
    cdef long long[::1] _class_bytes, _evicted_nonzero, _evicted_unfetched, _evicted_active, _evicted_time
    cdef long long[::1] _expired_unfetched, _outofmemory
    cdef list _class_pages, _pool
    cdef public Py_ssize_t pages_used, page_moves, count, bytes
    cdef public bint evict, segmented, temp_lru, batch_pulls
    cdef public long long hot_pct, warm_pct, temporary_ttl
    cdef public double hot_factor, warm_factor
    cdef public Py_ssize_t clearing
    cdef Py_ssize_t _clearing_class
    cdef size_t _clearing_uncut
    cdef public long long rescues, chunk_rescues, evictions_nomem, inline_reclaim
    cdef public object evict_hook
    cdef public double now
    cdef public long long evictions, reclaims, expired_unfetched, evicted_unfetched, evicted_active
    cdef Py_ssize_t _page_room, _cap, _used_slots, _tombstones, _old_cap, _old_used, _migrate
    cdef unsigned int[::1] _slots, _old
    cdef unsigned int _ref_mask, _tag_mask
    cdef Py_ssize_t _tag_pages

    @cython.locals(lo=Py_ssize_t, hi=Py_ssize_t, mid=Py_ssize_t)
    cpdef Py_ssize_t class_for(self, Py_ssize_t total)
    @cython.locals(size=Py_ssize_t)
    cpdef Py_ssize_t item_size(self, Py_ssize_t nkey, Py_ssize_t nbytes, unsigned int flags=*)
    cpdef Py_ssize_t item_class(self, Py_ssize_t nkey, Py_ssize_t nbytes, unsigned int flags=*)
    cdef inline Py_ssize_t _size_class(self, Py_ssize_t size)
    @cython.locals(size=Py_ssize_t, per_link=Py_ssize_t)
    cpdef Py_ssize_t chunks_needed(self, Py_ssize_t nkey, Py_ssize_t nbytes, unsigned int flags=*)
    cpdef unsigned long long cas(self, size_t ref)
    cpdef void set_cas(self, size_t ref, unsigned long long cas)
    cpdef unsigned int expire_at(self, size_t ref)
    cpdef void set_expire_at(self, size_t ref, unsigned int expire_at)
    @cython.locals(base=size_t)
    cpdef unsigned int flags(self, size_t ref)
    cpdef unsigned int nbytes(self, size_t ref)
    cpdef unsigned int atime(self, size_t ref)
    cpdef void set_atime(self, size_t ref, unsigned int second)
    cpdef unsigned int marks(self, size_t ref)
    @cython.locals(at=size_t)
    cpdef void set_marks(self, size_t ref, unsigned int marks)
    cpdef unsigned int clsid(self, size_t ref)
    cpdef unsigned int list_of(self, size_t ref)
    @cython.locals(at=size_t)
    cdef inline size_t _more_at(self, size_t base)
    @cython.locals(at=size_t)
    cdef inline size_t _key_at(self, size_t base)
    @cython.locals(at=size_t)
    cdef inline size_t _more(self, size_t base)
    @cython.locals(size=size_t)
    cdef inline size_t _stored_size(self, size_t base)
    @cython.locals(base=size_t)
    cpdef bytes key(self, size_t ref)
    @cython.locals(base=size_t, at=size_t, n=size_t)
    cpdef unsigned int item_hash(self, size_t ref)
    @cython.locals(base=size_t, nkey=size_t, n=size_t, more=size_t, first=size_t, left=Py_ssize_t,
                   per_link=size_t, take=size_t, parts=list, out=bytes, data_at=size_t)
    cpdef bytes value(self, size_t ref)
    @cython.locals(base=size_t, n=size_t, more=size_t, mem="char *", first=size_t, done=size_t,
                   per_link=size_t, take=size_t, data_at=size_t)
    cdef Py_ssize_t copy_value(self, size_t ref, char *dest) except -1
    cdef bytes _read(self, size_t at, size_t n)
    cdef void _write(self, size_t at, bytes data, size_t start, size_t n)
    @cython.locals(base=size_t, n=size_t, at=size_t)
    cdef bint _key_is(self, size_t ref, bytes key)
    cpdef size_t find(self, bytes key) except? 0
    @cython.locals(ref=size_t)
    cdef size_t _find_hashed(self, bytes key, unsigned int h) except? 0
    @cython.locals(ref_mask=cython.uint, old_mask=cython.uint)
    cdef int _fit_tags(self, Py_ssize_t pages) except -1
    @cython.locals(i=size_t, entry=cython.uint, ref=size_t)
    cdef int _retag(self, unsigned int[::1] slots, size_t cap, unsigned int old_mask) except -1
    @cython.locals(mask=size_t, i=size_t, ref=size_t, entry=cython.uint, tag_mask=cython.uint, tag=cython.uint)
    cdef size_t _probe(self, unsigned int[::1] slots, size_t cap, unsigned int h, bytes key) except? 0
    @cython.locals(mask=size_t, i=size_t, here=cython.uint, entry=cython.uint)
    cdef Py_ssize_t _slot_of(self, unsigned int[::1] slots, size_t cap, size_t ref, unsigned int h) except? -2
    @cython.locals(mask=size_t, i=size_t, entry=cython.uint)
    cdef int _insert_slot(self, unsigned int[::1] slots, size_t cap, size_t ref, unsigned int h) except -1
    @cython.locals(mask=size_t, emptied=Py_ssize_t)
    cdef Py_ssize_t _delete_slot(self, unsigned int[::1] slots, size_t cap, size_t i) except? -1
    cdef int _index_add(self, size_t ref, unsigned int h) except -1
    @cython.locals(i=Py_ssize_t)
    cdef int _index_remove(self, size_t ref, unsigned int h) except -1
    cpdef bint grow_index(self, Py_ssize_t steps) except -1
    cpdef Py_ssize_t index_slots(self)
    @cython.locals(old="unsigned int[::1]", cap=size_t, mask=size_t, i=size_t, j=size_t, entry=cython.uint, ref=size_t)
    cdef int _migrate_some(self, Py_ssize_t steps) except -1
    @cython.locals(word=size_t, head=size_t)
    cdef int _lru_link(self, size_t ref, size_t lst, size_t size) except -1
    @cython.locals(size=size_t)
    cdef size_t _lru_unlink(self, size_t ref) except? 0
    @cython.locals(word=size_t, prev=size_t, nxt=size_t)
    cdef int _lru_cut(self, size_t ref, size_t lst, size_t size) except -1
    @cython.locals(lst=size_t, size=size_t)
    cdef int _relink(self, size_t ref, size_t lru) except -1
    @cython.locals(base=size_t)
    cdef int _to_warm(self, size_t ref, unsigned int second) except -1
    cpdef void count_hit(self, size_t ref)
    @cython.locals(base=size_t)
    cpdef activate(self, size_t ref, unsigned int second)
    @cython.locals(base=size_t)
    cpdef bump(self, size_t ref, unsigned int second)
    @cython.locals(cls=size_t)
    cdef int _reclaim(self, size_t ref) except -1
    @cython.locals(lru=size_t, cls=size_t, second=cython.longlong, removed=Py_ssize_t, limit=cython.longlong,
                   tries=Py_ssize_t, search=size_t, nxt=size_t, word=size_t, bits_at=size_t, expire_at=cython.uint)
    cpdef Py_ssize_t pull_tail(self, size_t lst, long long total_bytes, int flags, long long max_age) except -1
    @cython.locals(limit=cython.longlong)
    cdef long long _pull_limit(self, size_t lru, long long total_bytes)
    @cython.locals(limit=cython.longlong, cold=size_t, second=cython.longlong, listed=cython.longlong, last=size_t,
                   first=size_t, search=size_t, moved=Py_ssize_t, run_bytes=cython.longlong, word=size_t, base=size_t,
                   expire_at=cython.uint, head=size_t)
    cdef Py_ssize_t _cold_run(self, size_t lst, long long total_bytes, long long max_age, Py_ssize_t most) except -1
    @cython.locals(did=Py_ssize_t, total=cython.longlong, hot_age=cython.longlong, warm_age=cython.longlong,
                   tail=size_t, cold_age=cython.longlong, more=Py_ssize_t, i=Py_ssize_t, cold_idle_tail=size_t,
                   moved=Py_ssize_t, hot_idle=bint, run=Py_ssize_t)
    cpdef Py_ssize_t juggle(self, size_t cls, Py_ssize_t budget) except -1
    cpdef size_t new_list(self, size_t cls, unsigned int expire_at)
    @cython.locals(base=size_t)
    cdef int _free_chunk(self, size_t ref, size_t cls) except -1
    @cython.locals(base=size_t, head=size_t)
    cdef int _push_free(self, size_t ref, size_t cls) except -1
    @cython.locals(base=size_t, nxt=size_t, prev=size_t)
    cdef int _unlist_free(self, size_t ref, size_t cls) except -1
    @cython.locals(ref=size_t, at=size_t, page=Py_ssize_t)
    cdef size_t _take_chunk(self, size_t cls) except? 0
    cdef Py_ssize_t _new_page(self, size_t cls) except -2
    @cython.locals(start=size_t, size=size_t, at=size_t)
    cdef int _give_page(self, Py_ssize_t page, size_t cls) except -1
    @cython.locals(ref=size_t, rounds=Py_ssize_t)
    cdef size_t _alloc(self, size_t cls) except? 0
    @cython.locals(victim=Py_ssize_t, most=cython.longlong, c=Py_ssize_t)
    cdef bint _move_page_to(self, size_t cls) except -1
    @cython.locals(page=Py_ssize_t, p=Py_ssize_t,
                   start=size_t, size=size_t, k=Py_ssize_t, chunk=size_t, state=cython.uchar,
                   uncut=size_t, at=size_t)
    cpdef bint move_page(self, Py_ssize_t victim, Py_ssize_t cls) except -1
    @cython.locals(start=size_t, uncut=size_t)
    cdef size_t _stop_cutting(self, Py_ssize_t page, Py_ssize_t cls) except? 0
    cdef int _take_page(self, Py_ssize_t page, Py_ssize_t cls) except -1
    cpdef Py_ssize_t class_pages(self, Py_ssize_t cls)
    @cython.locals(page=Py_ssize_t)
    cpdef Py_ssize_t begin_clearing(self, Py_ssize_t cls) except -1
    @cython.locals(cls=Py_ssize_t, size=size_t, start=size_t, end=size_t, last=Py_ssize_t, k=Py_ssize_t,
                   at=size_t, ref=size_t, head=size_t, state=cython.uchar, expire_at=cython.uint)
    cpdef Py_ssize_t clear_chunks(self, Py_ssize_t first, Py_ssize_t budget) except -1
    @cython.locals(page=Py_ssize_t)
    cpdef finish_clearing(self, Py_ssize_t dst)
    cpdef bint give_pool_page(self, Py_ssize_t dst) except -1
    @cython.locals(ref=size_t, at=size_t)
    cdef size_t _spare_chunk(self, Py_ssize_t cls, size_t start, size_t end) except? 0
    @cython.locals(new=size_t, base=size_t, link=size_t, lst=size_t)
    cdef bint _rescue(self, size_t ref, Py_ssize_t cls, size_t start, size_t end) except -1
    @cython.locals(new=size_t, base=size_t, head=size_t, link=size_t, more_at=size_t)
    cdef bint _rescue_link(self, size_t ref, Py_ssize_t cls, size_t start, size_t end) except -1
    @cython.locals(h=cython.uint, tag=cython.uint, i=Py_ssize_t)
    cdef int _reindex(self, size_t old, size_t new) except -1
    cdef void _copy(self, size_t to, size_t at, size_t n)
    @cython.locals(base=size_t, cls=size_t, marks=cython.uchar)
    cdef int _evict(self, size_t ref) except -1
    cdef void _zero(self, size_t at, size_t n)
    @cython.locals(nkey=size_t, nbytes=size_t, h=cython.uint, old=size_t, size=size_t,
                   chain_links=Py_ssize_t, cls=size_t, ref=size_t, base=size_t, first=size_t, at=size_t,
                   bits=cython.uchar)
    cpdef size_t store(self, bytes key, bytes value, unsigned int flags, unsigned int expire_at,
                       unsigned long long cas, unsigned int marks=*) except? 0
    @cython.locals(cls=size_t, per_link=size_t, marks=cython.uchar, last=size_t, link=size_t,
                   base=size_t, take=size_t)
    cdef bint _fill_chain(self, size_t head, bytes value, size_t done, Py_ssize_t links) except -1
    @cython.locals(base=size_t)
    cpdef rewrite(self, size_t ref, bytes value)
    cpdef unlink(self, size_t ref)
    @cython.locals(base=size_t, cls=size_t, more=size_t, last=size_t, nxt=size_t, size=size_t)
    cdef int _unlink(self, size_t ref, unsigned int h) except -1
    cpdef Py_ssize_t lru_tail(self, Py_ssize_t lst)
    cpdef Py_ssize_t lru_head(self, Py_ssize_t lst)
    cpdef long long list_items(self, Py_ssize_t lst)
    cdef long long _tail_age(self, size_t lst)
    cpdef size_t newer(self, size_t ref)
    cpdef size_t older(self, size_t ref)
    cpdef bint is_item(self, size_t ref)
    cpdef unsigned int key_length(self, size_t ref)
    cpdef long long class_items(self, Py_ssize_t cls)
    @cython.locals(base=size_t, unfetched=bint)
    cpdef bint reclaim_expired(self, size_t ref) except -1
    @cython.locals(pages=Py_ssize_t)
    cpdef bint set_limit(self, Py_ssize_t limit) except -1
