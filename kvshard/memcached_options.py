"""memcached 1.6.18's command-line values, read and checked the way memcached reads them.

memcached reads numbers with C's ``atoi``/``atof``: leading blanks, a sign, then digits, and
anything after is dropped (``-t abc`` is 0, ``-I 2g`` is 2). Where memcached then refuses the
value, kvshard refuses it with memcached's message and exit status (1, or 64 for EX_USAGE).
Where memcached takes a value it misread (``-p abc`` is port 0, ``-b x`` a backlog of 0),
kvshard refuses it too, with its own message and 64. A message memcached prints on two lines
is joined into one.

``-o`` suboptions: :data:`SUBOPTIONS` checks each one as memcached does; :func:`ignored_reason`
says why one that has no meaning here is accepted and ignored.
"""

from __future__ import annotations

import re
from typing import Callable, Final, Mapping

__all__ = [
    "UsageError", "EX_USAGE", "EX_NOUSER", "EX_OSERR", "EXIT_FAILURE", "c_integer", "c_float",
    "whole_number", "at_least_one", "port_number", "item_size", "check_item_size", "protocol",
    "delimiter", "growth_factor", "file_mask", "SUBOPTIONS", "parse_suboptions", "ignored_reason",
    "check_suboptions", "DEFAULT_SLAB_CHUNK_MAX", "HASHPOWER_DEFAULT", "index_slots",
]

EXIT_FAILURE: Final = 1
EX_USAGE: Final = 64
EX_NOUSER: Final = 67
EX_OSERR: Final = 71

MIN_ITEM_SIZE: Final = 1024
MAX_ITEM_SIZE: Final = 1 << 30
SLAB_PAGE_SIZE: Final = 1 << 20
DEFAULT_SLAB_CHUNK_MAX: Final = SLAB_PAGE_SIZE // 2
DEFAULT_CHUNK_SIZE: Final = 48  # -n
CHUNK_ALIGN_BYTES: Final = 8
PROTOCOLS: Final = ("auto", "binary", "ascii")
PEM_KEY_FORMAT: Final = 1  # ssl_keyformat: OpenSSL's SSL_FILETYPE_PEM


class UsageError(Exception):
    """A refused command line: ``message`` (one line) and the process's exit ``status``."""

    def __init__(self, message: str, status: int = EX_USAGE) -> None:
        super().__init__(message)
        self.status = status


_C_INTEGER = re.compile(r"\s*([+-]?\d+)")
_C_FLOAT = re.compile(r"\s*([+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?)")


def c_integer(text: str) -> tuple[int, bool]:
    """C's ``atoi``: the value of the leading number (0 if none), and whether that number was
    all the text said."""
    match = _C_INTEGER.match(text)
    if match is None:
        return 0, False
    return int(match[1]), match.end() == len(text.rstrip())


def c_float(text: str) -> tuple[float, bool]:
    """C's ``atof``, likewise."""
    match = _C_FLOAT.match(text)
    if match is None:
        return 0.0, False
    return float(match[1]), match.end() == len(text.rstrip())


def _exact(flag: str, text: str, exact: bool, what: str = "a whole number") -> None:
    if not exact:
        raise UsageError(f"{flag}: {text!r} is not {what}")


def whole_number(flag: str, text: str, minimum: int = 0) -> int:
    """A number memcached takes without a check (``-b``, ``-U``): kvshard wants a whole
    number of at least ``minimum``."""
    value, exact = c_integer(text)
    _exact(flag, text, exact)
    if value < minimum:
        raise UsageError(f"{flag}: must be at least {minimum}, not {value}")
    return value


def at_least_one(flag: str, text: str, refusal: str) -> int:
    """``-t``, ``-c``, ``-R``, ``-n``, ``-N``: memcached refuses 0 (and for some, less) with
    ``refusal`` and status 1; kvshard refuses every value below 1 so."""
    value, exact = c_integer(text)
    if value <= 0:
        raise UsageError(refusal, EXIT_FAILURE)
    _exact(flag, text, exact)
    return value


def port_number(flag: str, text: str) -> int:
    value, exact = c_integer(text)
    if value > 65535:
        raise UsageError(f"ERROR: Invalid port number {value}.")
    _exact(flag, text, exact and value >= 0, "a port number")
    return value


def item_size(text: str) -> int:
    """``-I``: bytes, or a number with k/K/m/M (as memcached: ``2g`` is 2 bytes)."""
    unit = text[-1:]
    scale = {"k": 1 << 10, "K": 1 << 10, "m": 1 << 20, "M": 1 << 20}.get(unit, 1)
    number = text[:-1] if scale > 1 else text
    value, exact = c_integer(number)
    size = value * scale
    if exact and size >= MIN_ITEM_SIZE:
        return size
    if size >= MIN_ITEM_SIZE:
        _exact("-I", text, exact, "a size")
    return size  # too small: check_item_size says so as memcached does


def check_item_size(size: int, memory_bytes: int, slab_chunk_max: int | None) -> None:
    """memcached's checks of ``-I`` against ``-m`` and the slab chunk size, in its order."""
    if size < MIN_ITEM_SIZE:
        raise UsageError("Item max size cannot be less than 1024 bytes.")
    if size > memory_bytes // 2:
        raise UsageError("Cannot set item size limit higher than 1/2 of memory max.")
    if size > MAX_ITEM_SIZE:
        raise UsageError("Cannot set item size limit higher than a gigabyte.")
    chunk = DEFAULT_SLAB_CHUNK_MAX if slab_chunk_max is None else slab_chunk_max
    if chunk > size:
        raise UsageError(f"slab_chunk_max (bytes: {chunk}) cannot be larger than -I (item_size_max {size})")
    if size % chunk:
        raise UsageError(f"-I (item_size_max: {size}) must be evenly divisible by slab_chunk_max (bytes: {chunk})")
    if SLAB_PAGE_SIZE % chunk:
        raise UsageError(f"slab_chunk_max (bytes: {chunk}) must divide evenly into {SLAB_PAGE_SIZE} (slab_page_size)")


def protocol(text: str) -> str:
    """``-B``."""
    if text not in PROTOCOLS:
        raise UsageError(f"Invalid value for binding protocol: {text} -- should be one of auto, binary, or ascii")
    return text


def delimiter(text: str) -> str:
    """``-D``: its first character."""
    if not text:
        raise UsageError("No delimiter specified", EXIT_FAILURE)
    return text[0]


def growth_factor(text: str) -> float:
    """``-f``."""
    value, exact = c_float(text)
    if value <= 1.0:
        raise UsageError("Factor must be greater than 1", EXIT_FAILURE)
    _exact("-f", text, exact, "a number")
    return value


def file_mask(text: str) -> int:
    """``-a``: an octal mask, like chmod's."""
    if not re.fullmatch(r"[0-7]{1,4}", text.strip()):
        raise UsageError(f"-a: {text!r} is not an octal mask (such as 700)")
    return int(text, 8)


# ----- -o suboptions -----------------------------------------------------------------------

Check = Callable[[str, "str | None"], None]


def _flag(name: str, value: str | None) -> None:
    """A suboption that takes no value (memcached ignores one given)."""


def _needs(message: str) -> Callable[[str, str | None], str]:
    def value_of(name: str, value: str | None) -> str:
        if value is None:
            raise UsageError(message.format(name=name), EXIT_FAILURE)
        return value
    return value_of


_missing_argument = _needs("Missing {name} argument")
_missing_number = _needs("Missing numeric argument for {name}")
_missing_value = _needs("Missing {name} value")


def _unsigned(name: str, value: str | None) -> None:
    """memcached's ``safe_strtoul``: the whole value a number of 0 or more."""
    if not re.fullmatch(r"\s*\d+\s*", _missing_argument(name, value)):
        raise UsageError(f"could not parse argument to {name}", EXIT_FAILURE)


def _signed(name: str, value: str | None) -> None:
    if not re.fullmatch(r"\s*[+-]?\d+\s*", _missing_argument(name, value)):
        raise UsageError(f"could not parse argument to {name}", EXIT_FAILURE)


def _real(name: str, value: str | None) -> None:
    number, exact = c_float(_missing_argument(name, value))
    if not exact:
        raise UsageError(f"could not parse argument to {name}", EXIT_FAILURE)


def _integer_in(low: int, high: int, refusal: str, missing: Callable[[str, str | None], str] = _missing_argument) -> Check:
    def check(name: str, value: str | None) -> None:
        number, _ = c_integer(missing(name, value))
        if not low <= number <= high:
            raise UsageError(refusal.format(number=number), EXIT_FAILURE)
    return check


def _positive_real(name: str, value: str | None) -> None:
    number, _ = c_float(_missing_argument(name, value))
    if number <= 0:
        raise UsageError(f"{name} must be > 0", EXIT_FAILURE)


def _hashpower(name: str, value: str | None) -> None:
    number, _ = c_integer(_missing_number(name, value))
    if number < 12:
        raise UsageError(f"Initial hashtable multiplier of {number} is too low", EXIT_FAILURE)
    if number > 32:
        raise UsageError(f"Initial hashtable multiplier of {number} is too high "
                         "Choose a value based on \"STAT hash_power_level\" from a running instance", EXIT_FAILURE)


def _slab_automove(name: str, value: str | None) -> None:
    if value is not None and not 0 <= c_integer(value)[0] <= 2:
        raise UsageError("slab_automove must be between 0 and 2", EXIT_FAILURE)


def _automove_ratio(name: str, value: str | None) -> None:
    number, _ = c_float(_missing_argument(name, value))
    if not 0 < number <= 1:
        raise UsageError("slab_automove_ratio must be > 0 and < 1", EXIT_FAILURE)


def _hash_algorithm(name: str, value: str | None) -> None:
    if _missing_argument(name, value) not in ("jenkins", "murmur3", "xxh3"):
        raise UsageError("Unknown hash_algorithm option (jenkins, murmur3, xxh3)", EXIT_FAILURE)


def _idle_timeout(name: str, value: str | None) -> None:
    _exact("-o idle_timeout", value or "", _missing_number(name, value).isdigit(), "a number")


def _required(name: str, value: str | None) -> None:
    _missing_argument(name, value)


def _ssl_level(name: str, value: str | None) -> None:
    """ssl_verify_mode and ssl_min_version: 0 to 3."""
    text = _missing_argument(name, value)
    if name == "ssl_verify_mode" and not text.isdigit():
        raise UsageError(f"-o {name}: {value!r} is not a number")
    _signed(name, text)
    if not 0 <= int(text) <= 3:
        raise UsageError(f"Invalid {name}. Use help to see valid options.", EXIT_FAILURE)


def _ssl_keyformat(name: str, value: str | None) -> None:
    _signed(name, value)
    if int(value or 0) != PEM_KEY_FORMAT:
        raise UsageError(f"-o ssl_keyformat: kvshard reads PEM keys only ({PEM_KEY_FORMAT}), not {value}")


def _tocrawl(name: str, value: str | None) -> None:
    if not re.fullmatch(r"\s*\d+\s*", _missing_value(name, value)):
        raise UsageError("lru_crawler_tocrawl takes a numeric 32bit value", EXIT_FAILURE)


def _path(name: str, value: str | None) -> None:
    _missing_argument(name, value)
    if not value:
        raise UsageError(f"-o {name}: no path given")


def _ext_path(name: str, value: str | None) -> None:
    if value is None:
        raise UsageError("missing argument to ext_path, ie: ext_path=/d/file:5G", EXIT_FAILURE)
    if ":" not in value:
        raise UsageError("must supply size to ext_path, ie: ext_path=/f/e:64m (M|G|T|P supported) "
                         "failed to parse ext_path argument", EXIT_FAILURE)


def _slab_sizes(name: str, value: str | None) -> None:
    """``slab_sizes=A-B-C``: increasing chunk sizes, checked as memcached checks them."""
    last = 0
    for part in _missing_argument(name, value).split("-"):
        size = int(part) if part.isdigit() else 0
        if size < DEFAULT_CHUNK_SIZE or size > DEFAULT_SLAB_CHUNK_MAX:
            raise UsageError(f"slab size {size} is out of valid range")
        if size <= last:
            raise UsageError(f"slab size {size} cannot be lower than or equal to a previous class size")
        if size <= last + CHUNK_ALIGN_BYTES:
            raise UsageError(f"slab size {size} must be at least {CHUNK_ALIGN_BYTES} bytes larger than previous class")
        last = size


def _proxy(name: str, value: str | None) -> None:
    raise UsageError(f"-o {name}: kvshard is not a proxy; put twemproxy in front of it (see the README)")


_PCT_REFUSAL = "{name} must be > 1 and < 80"


def _lru_pct(name: str, value: str | None) -> None:
    _integer_in(1, 79, _PCT_REFUSAL.format(name=name))(name, value)


SUBOPTIONS: Final[dict[str, Check]] = {
    "maxconns_fast": _flag, "no_maxconns_fast": _flag,
    "hashpower": _hashpower, "no_hashexpand": _flag,
    "slab_reassign": _flag, "no_slab_reassign": _flag,
    "slab_automove": _slab_automove, "no_slab_automove": _flag,
    "slab_automove_ratio": _automove_ratio,
    "slab_automove_window": _integer_in(3, 1 << 31, "slab_automove_window must be > 2"),
    "tail_repair_time": _integer_in(10, 1 << 31, "Cannot set tail_repair_time to less than 10 seconds", _missing_number),
    "hash_algorithm": _hash_algorithm,
    "lru_crawler": _flag, "no_lru_crawler": _flag,
    "lru_crawler_sleep": _integer_in(0, 1_000_000, "LRU crawler sleep must be between 0 and 1 second", _missing_value),
    "lru_crawler_tocrawl": _tocrawl,
    "lru_maintainer": _flag, "no_lru_maintainer": _flag,
    "hot_lru_pct": _lru_pct, "warm_lru_pct": _lru_pct,
    "hot_max_factor": _positive_real, "warm_max_factor": _positive_real,
    "temporary_ttl": _required,
    "idle_timeout": _idle_timeout,
    "watcher_logbuf_size": _unsigned, "worker_logbuf_size": _unsigned,
    "slab_sizes": _slab_sizes, "slab_chunk_max": _signed,
    "track_sizes": _flag, "no_inline_ascii_resp": _flag, "inline_ascii_resp": _flag,
    "no_chunked_items": _flag,
    "modern": _flag, "no_modern": _flag,
    "drop_privileges": _flag, "no_drop_privileges": _flag,
    "resp_obj_mem_limit": _flag, "read_buf_mem_limit": _unsigned,
    "ssl_chain_cert": _path, "ssl_key": _path, "ssl_ca_cert": _path,
    "ssl_verify_mode": _ssl_level, "ssl_min_version": _ssl_level,
    "ssl_keyformat": _ssl_keyformat, "ssl_ciphers": _required,
    "ssl_wbuf_size": _unsigned, "ssl_session_cache": _flag, "ssl_kernel_tls": _flag,
    "proxy_config": _proxy, "proxy_uring": _proxy,
    "sock_cookie_id": _flag,
    "ext_path": _ext_path,
    "ext_page_size": _unsigned, "ext_wbuf_size": _unsigned, "ext_threads": _unsigned, "ext_io_depth": _unsigned,
    "ext_item_size": _unsigned, "ext_item_age": _unsigned, "ext_low_ttl": _unsigned, "ext_recache_rate": _unsigned,
    "ext_compact_under": _unsigned, "ext_drop_under": _unsigned, "ext_max_sleep": _unsigned,
    "ext_max_frag": _real, "slab_automove_freeratio": _real, "ext_drop_unread": _flag,
}


def parse_suboptions(options: list[str]) -> dict[str, str | None]:
    """``-o`` (comma-separated, the flag repeatable): each checked; name -> value (None when
    none was given). A later one wins, as in memcached."""
    out: dict[str, str | None] = {}
    for option in ",".join(options).split(","):
        if not option:
            continue
        name, equals, value = option.partition("=")
        check = SUBOPTIONS.get(name)
        if check is None:
            raise UsageError(f"Illegal suboption \"{option}\"", EXIT_FAILURE)
        check(name, value if equals else None)
        out[name] = value if equals else None
    return out


def check_suboptions(options: dict[str, str | None]) -> None:
    """memcached's checks across suboptions, made after all are read."""
    hot = c_integer(options.get("hot_lru_pct") or "20")[0]
    warm = c_integer(options.get("warm_lru_pct") or "40")[0]
    if hot + warm > 80:
        raise UsageError("hot_lru_pct + warm_lru_pct cannot be more than 80% combined")
    maintainer_off = "no_lru_maintainer" in options or "no_modern" in options
    if "temporary_ttl" in options and maintainer_off:
        raise UsageError("temporary_ttl requires lru_maintainer to be enabled")


_ITEM_STORE = "kvshard's item store has no such setting (yet)"
_IGNORED: Final[dict[str, str]] = {
    "no_hashexpand": "kvshard's index always grows once 70% full, a little at a time (-o hashpower sets its start)",
    "maxconns_fast": "kvshard always answers a connection over -c at once and closes it",
    "no_maxconns_fast": "kvshard always answers a connection over -c at once and closes it",
    "ext_": "extstore: kvshard keeps items in memory only",
    "slab_automove_freeratio": "extstore: kvshard keeps items in memory only",
    "ssl_wbuf_size": "Python's TLS layer sizes its own buffers",
    "ssl_session_cache": "Python's TLS server context keeps OpenSSL's session cache on",
    "ssl_kernel_tls": "kernel TLS offload is not available through Python 3.11's ssl module",
    "resp_obj_mem_limit": "deprecated in memcached too",
    "read_buf_mem_limit": "kvshard's read buffers are bounded per connection, not pooled",
    "watcher_logbuf_size": "watch buffers are not sized here",
    "worker_logbuf_size": "watch buffers are not sized here",
    "drop_privileges": "no seccomp sandbox here (-u still switches user)",
    "no_drop_privileges": "no seccomp sandbox here (-u still switches user)",
    "sock_cookie_id": "kvshard does not tag its sockets",
    "modern": "nothing to change: it is memcached 1.6's default set",
    "no_modern": "only its flat LRU takes effect here",
}
_APPLIED: Final = frozenset((
    "idle_timeout", "lru_crawler", "no_lru_crawler", "lru_crawler_sleep", "lru_crawler_tocrawl", "track_sizes",
    "lru_maintainer", "no_lru_maintainer", "hot_lru_pct", "warm_lru_pct", "hot_max_factor", "warm_max_factor",
    "temporary_ttl", "hashpower",
    "slab_reassign", "no_slab_reassign", "slab_automove", "no_slab_automove", "slab_automove_ratio",
    "slab_automove_window",
    "ssl_chain_cert", "ssl_key", "ssl_ca_cert", "ssl_verify_mode", "ssl_min_version", "ssl_ciphers",
    "ssl_keyformat",
))


def ignored_reason(name: str) -> str | None:
    """Why a valid ``-o`` option is ignored by kvshard, or None if it takes effect."""
    if name in _APPLIED:
        return None
    if name.startswith("ext_"):
        return _IGNORED["ext_"]
    return _IGNORED.get(name, _ITEM_STORE)


HASHPOWER_DEFAULT: Final = 16  # memcached's HASHPOWER_DEFAULT: its hash table starts with 2**16 buckets


def index_slots(options: Mapping[str, str | None], shards: int) -> int:
    """A shard's starting index size from ``-o hashpower`` (memcached's table of ``2**hashpower``
    buckets, 16 when not given, split over the shards): a table that size needs no growth
    for its first items, as memcached's needs no expansion until it holds 1.5 items a bucket
    (kvshard's index still grows, at 70% full; ``no_hashexpand`` is ignored)."""
    value = options.get("hashpower")
    power = c_integer(value)[0] if value else HASHPOWER_DEFAULT
    return (1 << power) // max(1, shards)
