"""Single-producer single-consumer byte ring in shared memory.

Theory of operation
-------------------
A ring is a header plus a data area of ``capacity`` bytes inside a shared mapping that both
processes see (the supervisor makes it before forking the shards). Exactly one process writes
records (the producer) and exactly one reads them (the consumer).

Header, three 64-byte cache lines so the two sides never write the same line::

    line 0  head      u64   bytes ever consumed      written by the consumer only
    line 1  tail      u64   bytes ever published     written by the producer only
            waiting   u64   1 = producer is blocked on a full ring and wants a doorbell
    line 2  (spare)

``head`` and ``tail`` only grow (2**64 bytes is never reached); the byte at counter ``c`` lives at
``c % capacity``. ``tail - head`` is the number of unread bytes, so the ring is empty when they are
equal and full when ``tail - head == capacity``: no slot is wasted and no wrap flag is needed.

The stream between head and tail is a sequence of *fragments*::

    u32 little-endian word: bit 31 = MORE (the record continues in the next fragment),
                            bits 0..30 = payload length
    payload bytes

A record (one msgpack batch, see channel.py) is one or more fragments; the last has MORE clear.
Fragments and their headers may straddle the end of the data area: both sides copy in two pieces.
Fragmenting lets a record of any size pass through a ring of any capacity, and lets the producer
publish what fits now instead of waiting for room for a whole record.

Rules
-----
1. Only the producer writes ``tail`` and ``waiting``; only the consumer writes ``head``.
2. The producer writes every byte of a fragment before it stores the new ``tail`` (publish order:
   payload before tail). The consumer loads ``tail`` before it reads any byte below it, and
   stores ``head`` only after it has copied the bytes out. A full ring therefore blocks the
   producer (it never overwrites unread bytes and never drops a record): it keeps the rest of the
   record locally and writes it when ``head`` moves.
3. Only whole fragments are ever published, so the consumer never sees a torn header.

Why this is safe on x86-64 CPython
----------------------------------
``head``/``tail`` are read and written through a memoryview cast to ``'Q'``: CPython copies the
8 bytes with one ``memcpy`` of constant size, which compiles to a single aligned 8-byte load or
store, and aligned 8-byte accesses are atomic on x86-64 (no torn counters). x86-64 is TSO:
stores become visible in program order and loads are not reordered with older loads, so
"payload stores, then tail store" is seen in that order by the other CPU, and "tail load, then
payload loads" cannot read stale payload. Each of those steps is a separate C call inside the
interpreter, so the C compiler cannot reorder them either.

What TSO does *not* give is store->load ordering: a store may sit in the store buffer while a
later load to another address completes. The doorbell protocol (reactor.py) and the
``waiting`` handshake below are Dekker-style (store my flag, then load yours), so they call
:func:`full_fence` between the store and the load.

Another architecture (ARM, POWER) may reorder stores with stores and loads with loads. There
the producer needs a release barrier between the payload and the tail store, and the consumer
an acquire barrier between the tail load and the payload loads; :data:`NEEDS_ORDERING_FENCES`
turns those fences on for any machine that is not x86-64.

:func:`full_fence` is an uncontended ``threading.Lock`` acquire + release: glibc implements them
with atomic read-modify-write instructions (LOCK CMPXCHG on x86-64, a full barrier; with
barriers on ARM), and POSIX lists ``sem_wait``/``sem_post`` among the functions that
synchronise memory. It costs about 140 ns and runs once per published batch, not per message.
Zero-copy reading
-----------------
:meth:`RingConsumer.next_record` hands out one record at a time *in place*: when a record is one
whole fragment that does not straddle the end of the data area (the common case) it is
``rec[rec_pos : rec_pos + n]`` with ``rec`` the data area itself, so a reader parses it straight
from shared memory; otherwise its fragments are copied out and joined into a ``bytes``. The
record stays valid until the next call of ``next_record`` (which stores ``head`` past it:
rule 2) or :meth:`~RingConsumer.discard_unread`. :meth:`RingConsumer.refresh` loads ``tail``
once per drain, so a drain handles what was published when it began and cannot be starved by
a producer that keeps publishing. :meth:`RingProducer.reserve` is the writer's twin: it places
one whole fragment header and returns where the caller writes the payload, directly in shared
memory (nothing is visible before :meth:`~RingProducer.publish`).

Compiled (ring.pxd)
-------------------
The same source compiles with Cython: the counters and the data area are typed memoryviews
(plain C loads and stores), copies are ``memcpy``, and the fences are C11 fences:
:func:`full_fence` is ``__atomic_thread_fence(__ATOMIC_SEQ_CST)`` (MFENCE on x86-64, DMB ISH on
ARM), and publish/refresh use release/acquire fences, which on x86-64 emit no instruction but
forbid the C compiler to move the payload accesses across the ``tail``/``head`` accesses (in
C, unlike the interpreter, nothing else would stop it). Interpreted, the rules above hold as
described in the previous section.
"""

from __future__ import annotations

import platform
import struct
import threading
from typing import Final

try:
    import cython
except ModuleNotFoundError:  # interpreted without Cython installed
    from . import cython_shim as cython  # type: ignore[no-redef]

__all__ = [
    "HEADER_BYTES",
    "FRAGMENT_HEADER_BYTES",
    "MAX_FRAGMENT_PAYLOAD",
    "NEEDS_ORDERING_FENCES",
    "full_fence",
    "RingProducer",
    "RingConsumer",
    "ring_bytes",
]

HEADER_BYTES: Final = 192
FRAGMENT_HEADER_BYTES: Final = 4
_MORE: Final = 1 << 31
MAX_FRAGMENT_PAYLOAD: Final = _MORE - 1
_HEAD, _TAIL, _WAITING = 0, 8, 9  # indexes into the header viewed as u64 words
_FRAG = FRAGMENT_HEADER_BYTES  # typed twins (ring.pxd) of the public constants
_MAX_PAYLOAD = MAX_FRAGMENT_PAYLOAD

NEEDS_ORDERING_FENCES: Final = platform.machine().lower() not in ("x86_64", "amd64")

_fence_lock = threading.Lock()
_fence_acquire = _fence_lock.acquire
_fence_release = _fence_lock.release
_frag_header = struct.Struct("<I")


def full_fence() -> None:
    """A full memory barrier (store->load ordering); see the module docstring."""
    if cython.compiled:
        _c_full_fence()
    else:
        _fence_acquire()
        _fence_release()


def ring_bytes(capacity: int) -> int:
    """Bytes of shared memory one ring of ``capacity`` data bytes occupies."""
    return HEADER_BYTES + capacity


def _check_buffer(buf: memoryview, capacity: int) -> None:
    if capacity < 64 or capacity % 8:
        raise ValueError(f"ring capacity must be a multiple of 8 and >= 64, got {capacity}")
    if len(buf) < ring_bytes(capacity):
        raise ValueError("shared buffer too small for the ring")


class RingProducer:
    """The writing end. Owns ``tail`` (cached locally) and ``waiting``.

    ``data`` is the data area (a writable byte view) for writers that fill a :meth:`reserve`d
    payload in place."""

    __slots__ = ("capacity", "_words", "data", "view", "_tail", "last_written")

    def __init__(self, buf: memoryview, capacity: int) -> None:
        _check_buffer(buf, capacity)
        self.capacity = capacity
        self._words = buf[:HEADER_BYTES].cast("Q")
        self.view = buf[HEADER_BYTES : HEADER_BYTES + capacity]
        self.data = self.view
        self._tail = self._words[_TAIL]
        self.last_written = 0  # what the last write() returned

    def unread_bytes(self) -> int:
        return self._words[_TAIL] - self._words[_HEAD]

    def free_bytes(self) -> int:
        return self.capacity - (self._tail - self._words[_HEAD])

    def reserve(self, n: int) -> int:
        """Place a whole, final fragment of ``n`` payload bytes at the tail and return the
        offset in :attr:`data` where the caller must write exactly ``n`` bytes before the next
        :meth:`publish`; -1 (nothing placed) when it does not fit in one piece before the end
        of the data area or in the free space: then use :meth:`write`."""
        cap = self.capacity
        tail = self._tail
        pos = tail % cap
        need = _FRAG + n
        if pos + need > cap or need > cap - (tail - self._words[_HEAD]) or n > _MAX_PAYLOAD:
            return -1
        if cython.compiled:
            word = n
            memcpy(cython.address(self.data[pos]), cython.address(word), _FRAG)
        else:
            _frag_header.pack_into(self.data, pos, n)
        self._tail = tail + need
        return pos + _FRAG

    def write(self, data: bytes | memoryview, final: bool) -> int:
        """Write as much of ``data`` as fits, as fragments; return how many payload bytes were
        written. The last fragment carries MORE unless it ends ``data`` and ``final`` is true.
        Nothing is visible to the consumer until :meth:`publish`.
        """
        total = len(data)
        if final:
            pos = self.reserve(total)
            if pos >= 0:  # the common case: one whole fragment, no wrap-around
                self.view[pos : pos + total] = data
                self.last_written = total
                return total
        cap = self.capacity
        tail = self._tail
        free = cap - (tail - self._words[_HEAD])
        done = 0
        while True:
            room = free - _FRAG
            if room < 0 or (room == 0 and total - done > 0):
                break
            n = min(total - done, room, _MAX_PAYLOAD)
            last = done + n == total
            header = _frag_header.pack(n if (last and final) else (n | _MORE))
            self._copy_in(tail, header)
            self._copy_in(tail + _FRAG, data[done : done + n])
            tail += _FRAG + n
            free -= _FRAG + n
            done += n
            if last:
                break
        self._tail = tail
        self.last_written = done
        return done

    def _copy_in(self, counter: int, chunk: bytes | memoryview) -> None:
        buf = self.view
        cap = self.capacity
        pos = counter % cap
        n = len(chunk)
        first = cap - pos
        if n <= first:
            buf[pos : pos + n] = chunk
        else:
            buf[pos:cap] = chunk[:first]
            buf[0 : n - first] = chunk[first:]

    def has_unpublished(self) -> bool:
        return self._tail != self._words[_TAIL]

    def publish(self) -> None:
        """Make everything written so far visible (one tail store)."""
        if cython.compiled:
            _c_release_fence()  # payload before tail (emits nothing on x86-64)
        elif NEEDS_ORDERING_FENCES:
            full_fence()
        self._words[_TAIL] = self._tail

    def set_waiting(self, flag: bool) -> None:
        self._words[_WAITING] = 1 if flag else 0

    def is_waiting(self) -> bool:
        return self._words[_WAITING] == 1

    def discard_unread(self) -> None:
        """Drop everything published but not consumed. Only legal while the consumer is dead."""
        self._words[_HEAD] = self._tail
        self._words[_WAITING] = 0


class RingConsumer:
    """The reading end. Owns ``head`` (cached locally); reassembles fragmented records.

    After :meth:`next_record` returned ``n >= 0``, the record is ``rec[rec_pos : rec_pos + n]``
    (compiled code may use ``rec_ptr`` instead)."""

    __slots__ = ("capacity", "_words", "data", "view", "_head", "_seen", "_partial", "rec", "rec_pos")

    def __init__(self, buf: memoryview, capacity: int) -> None:
        _check_buffer(buf, capacity)
        self.capacity = capacity
        self._words = buf[:HEADER_BYTES].cast("Q")
        self.view = buf[HEADER_BYTES : HEADER_BYTES + capacity]
        self.data = self.view
        self._head = self._words[_HEAD]
        self._seen = self._head  # the tail loaded by the last refresh()
        self._partial: list[bytes] = []
        self.rec: bytes | memoryview = b""
        self.rec_pos = 0

    def unread_bytes(self) -> int:
        return self._words[_TAIL] - self._words[_HEAD]

    def has_data(self) -> bool:
        return self._words[_TAIL] != self._head

    def refresh(self) -> bool:
        """Load ``tail`` once: the records published so far are what :meth:`next_record` hands
        out until the next refresh. True if there is anything unread."""
        tail = self._words[_TAIL]
        if cython.compiled:
            _c_acquire_fence()  # tail before payload (emits nothing on x86-64)
        elif NEEDS_ORDERING_FENCES:
            full_fence()
        self._seen = tail
        return tail != self._head

    def next_record(self) -> int:
        """Free the previous record and return the length of the next complete one (see the
        class docstring for where it is), or -1 when no whole record is left below the tail
        seen by :meth:`refresh` (fragments of an incomplete one are copied out and freed)."""
        head = self._head
        seen = self._seen
        cap = self.capacity
        self._store_head(head)
        while head != seen:
            pos = head % cap
            word = self._fragment_word(pos)
            length = word & _MAX_PAYLOAD
            start = head + _FRAG
            spos = start % cap
            if word < _MORE and spos + length <= cap and not self._partial:
                self._head = start + length  # stored by the next call: the record is in use
                self.rec = self.view
                self.rec_pos = spos
                if cython.compiled:
                    self.rec_ptr = cython.cast(cython.p_char, cython.address(self.data[spos]))
                return length
            piece = self._copy_out(spos, length)
            head = start + length
            self._head = head
            self._store_head(head)
            self._partial.append(piece)
            if word < _MORE:
                return self._joined()
        return -1

    def _joined(self) -> int:
        partial = self._partial
        record = partial[0] if len(partial) == 1 else b"".join(partial)
        partial.clear()
        self.rec = record
        self.rec_pos = 0
        if cython.compiled:
            self.rec_ptr = record
        return len(record)

    def _store_head(self, head: int) -> None:
        if cython.compiled:
            _c_release_fence()  # payload reads before the head store frees the space
        self._words[_HEAD] = head

    def _fragment_word(self, pos: int) -> int:
        cap = self.capacity
        if pos + _FRAG <= cap:
            if cython.compiled:
                word = 0
                memcpy(cython.address(word), cython.address(self.data[pos]), _FRAG)
                return word
            return _frag_header.unpack_from(self.view, pos)[0]  # type: ignore[no-any-return]
        return _frag_header.unpack(self._copy_out(pos, _FRAG))[0]  # type: ignore[no-any-return]

    def _copy_out(self, pos: int, n: int) -> bytes:
        buf = self.view
        end = pos + n
        cap = self.capacity
        if end <= cap:
            return bytes(buf[pos:end])
        return bytes(buf[pos:cap]) + bytes(buf[0 : end - cap])

    def read(self) -> list[bytes] | None:
        """Copy out every complete record published so far (possibly none when only part of
        one has arrived: then an empty list), freeing their space; None if the ring was
        empty. The simple, copying twin of :meth:`refresh` + :meth:`next_record`."""
        if not self.refresh():
            return None
        records: list[bytes] = []
        n = self.next_record()
        while n >= 0:
            records.append(bytes(self.rec[self.rec_pos : self.rec_pos + n]))
            n = self.next_record()
        return records

    def producer_waiting(self) -> bool:
        """True when the producer asked for a doorbell when space frees up. Call after
        :func:`full_fence` (the head store must be visible before this load)."""
        return self._words[_WAITING] == 1

    def discard_unread(self) -> None:
        """Drop everything published. Used when the producer died: its records are void."""
        tail = self._words[_TAIL]
        self._head = tail
        self._seen = tail
        self._words[_HEAD] = tail
        self._partial.clear()
        self.rec = b""
        self.rec_pos = 0
