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
"""

from __future__ import annotations

import platform
import struct
import threading
from typing import Final

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

NEEDS_ORDERING_FENCES: Final = platform.machine().lower() not in ("x86_64", "amd64")

_fence_lock = threading.Lock()
_fence_acquire = _fence_lock.acquire
_fence_release = _fence_lock.release
_frag_header = struct.Struct("<I")


def full_fence() -> None:
    """A full memory barrier (store->load ordering); see the module docstring."""
    _fence_acquire()
    _fence_release()


def ring_bytes(capacity: int) -> int:
    """Bytes of shared memory one ring of ``capacity`` data bytes occupies."""
    return HEADER_BYTES + capacity


class _RingView:
    __slots__ = ("capacity", "_words", "_data")

    def __init__(self, buf: memoryview, capacity: int) -> None:
        if capacity < 64 or capacity % 8:
            raise ValueError(f"ring capacity must be a multiple of 8 and >= 64, got {capacity}")
        if len(buf) < ring_bytes(capacity):
            raise ValueError("shared buffer too small for the ring")
        self.capacity = capacity
        self._words = buf[:HEADER_BYTES].cast("Q")
        self._data = buf[HEADER_BYTES : HEADER_BYTES + capacity]

    def unread_bytes(self) -> int:
        w = self._words
        return w[_TAIL] - w[_HEAD]


class RingProducer(_RingView):
    """The writing end. Owns ``tail`` (cached locally) and ``waiting``."""

    __slots__ = ("_tail", "last_written")

    def __init__(self, buf: memoryview, capacity: int) -> None:
        super().__init__(buf, capacity)
        self._tail = self._words[_TAIL]
        self.last_written = 0  # what the last write() returned

    def free_bytes(self) -> int:
        return self.capacity - (self._tail - self._words[_HEAD])

    def write(self, data: bytes | memoryview, final: bool) -> int:
        """Write as much of ``data`` as fits, as fragments; return how many payload bytes were
        written. The last fragment carries MORE unless it ends ``data`` and ``final`` is true.
        Nothing is visible to the consumer until :meth:`publish`.
        """
        cap = self.capacity
        buf = self._data
        tail = self._tail
        free = cap - (tail - self._words[_HEAD])
        total = len(data)
        pos = tail % cap
        end = pos + FRAGMENT_HEADER_BYTES + total
        if final and end <= cap and FRAGMENT_HEADER_BYTES + total <= free:
            # the common case: one whole fragment, no wrap-around
            _frag_header.pack_into(buf, pos, total)
            buf[pos + FRAGMENT_HEADER_BYTES : end] = data
            self._tail = tail + FRAGMENT_HEADER_BYTES + total
            self.last_written = total
            return total
        done = 0
        while True:
            room = free - FRAGMENT_HEADER_BYTES
            if room < 0 or (room == 0 and total - done > 0):
                break
            n = min(total - done, room, MAX_FRAGMENT_PAYLOAD)
            last = done + n == total
            header = _frag_header.pack(n if (last and final) else (n | _MORE))
            self._copy_in(buf, tail, header, cap)
            self._copy_in(buf, tail + FRAGMENT_HEADER_BYTES, data[done : done + n], cap)
            tail += FRAGMENT_HEADER_BYTES + n
            free -= FRAGMENT_HEADER_BYTES + n
            done += n
            if last:
                break
        self._tail = tail
        self.last_written = done
        return done

    @staticmethod
    def _copy_in(buf: memoryview, counter: int, chunk: bytes | memoryview, cap: int) -> None:
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
        if NEEDS_ORDERING_FENCES:
            full_fence()  # release: payload before tail
        self._words[_TAIL] = self._tail

    def set_waiting(self, flag: bool) -> None:
        self._words[_WAITING] = 1 if flag else 0

    def is_waiting(self) -> bool:
        return self._words[_WAITING] == 1

    def discard_unread(self) -> None:
        """Drop everything published but not consumed. Only legal while the consumer is dead."""
        self._words[_HEAD] = self._tail
        self._words[_WAITING] = 0


class RingConsumer(_RingView):
    """The reading end. Owns ``head`` (cached locally); reassembles fragmented records."""

    __slots__ = ("_head", "_partial")

    def __init__(self, buf: memoryview, capacity: int) -> None:
        super().__init__(buf, capacity)
        self._head = self._words[_HEAD]
        self._partial: list[bytes] = []

    def has_data(self) -> bool:
        return self._words[_TAIL] != self._head

    def read(self) -> list[bytes | memoryview] | None:
        """Copy out every published fragment, free its space, and return the records completed
        (possibly an empty list when only part of a record has arrived), or None if the ring
        was empty."""
        words = self._words
        tail = words[_TAIL]
        head = self._head
        if tail == head:
            return None
        if NEEDS_ORDERING_FENCES:
            full_fence()  # acquire: tail before payload
        cap = self.capacity
        pos = head % cap
        n = tail - head
        buf = self._data
        if pos + n <= cap:
            raw = bytes(buf[pos : pos + n])
        else:
            raw = bytes(buf[pos:cap]) + bytes(buf[0 : n - (cap - pos)])
        self._head = tail
        words[_HEAD] = tail
        partial = self._partial
        if not partial:
            (word,) = _frag_header.unpack_from(raw, 0)
            if word + FRAGMENT_HEADER_BYTES == n:  # the common case: one whole record
                return [memoryview(raw)[FRAGMENT_HEADER_BYTES:]]
        records: list[bytes | memoryview] = []
        unpack_header = _frag_header.unpack_from
        off = 0
        mv = memoryview(raw)
        while off < n:
            (word,) = unpack_header(raw, off)
            off += FRAGMENT_HEADER_BYTES
            length = word & MAX_FRAGMENT_PAYLOAD
            if word & _MORE:
                partial.append(raw[off : off + length])
            elif partial:
                partial.append(raw[off : off + length])
                records.append(b"".join(partial))
                partial.clear()
            else:
                records.append(mv[off : off + length])  # type: ignore[arg-type]
            off += length
        return records

    def producer_waiting(self) -> bool:
        """True when the producer asked for a doorbell when space frees up. Call after
        :func:`full_fence` (the head store must be visible before this load)."""
        return self._words[_WAITING] == 1

    def discard_unread(self) -> None:
        """Drop everything published. Used when the producer died: its records are void."""
        tail = self._words[_TAIL]
        self._head = tail
        self._words[_HEAD] = tail
        self._partial.clear()
