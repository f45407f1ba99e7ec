"""Every field of memcached 1.6.18's ``stats`` and ``stats settings``: reported by kvshard or
listed in the README's "stats fields not reported" tables, never both; and where both report a
setting, the same value for the same flags.

A real memcached is the reference here (it is started beside kvshard with the same flags), so
this module needs the ``memcached`` binary: skipped without it, failed without it under CI.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

import pytest

from tests.servers import Server, require_tool, start_server

from .test_ascii_stats import read_stats
from .wire import Wire

README = Path(__file__).resolve().parents[2] / "README.md"
SECTION = "### Stats fields not reported"
# the header of each table of that section, and the stats command it is about
TABLES = {"`stats` field": b"", "`stats settings` field": b" settings", "`stats slabs` / `stats items` field": b" slabs"}

FLAG_SETS = {
    "defaults": (),
    "changed": ("-C", "-M", "-f", "1.5", "-n", "32", "-D", "#", "-b", "512", "-c", "200", "-m", "32", "-I", "2m", "-A", "-o", "idle_timeout=30"),
}
# settings both report whose values differ by nature: the port each server was given
DIFFERENT_BY_NATURE = {"tcpport"}


def not_reported() -> dict[bytes, set[str]]:
    """The README's lists: stats command (b"" or b" settings") -> field names."""
    text = README.read_text()
    assert SECTION in text, f"README.md has no {SECTION!r} section"
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    lists: dict[bytes, set[str]] = {}
    command = None
    for line in section.splitlines():
        if not line.startswith("|") or line.startswith("| ---"):
            continue
        first_cell = line.split("|")[1].strip()
        if first_cell in TABLES:
            command = TABLES[first_cell]
            lists[command] = set()
            continue
        assert command is not None, f"a row before a table header: {line!r}"
        names = re.findall(r"`([a-z0-9_]+)`", first_cell)
        assert names, f"a row without field names: {line!r}"
        lists[command].update(names)
    assert set(lists) == set(TABLES.values()), "README: the tables (stats, stats settings, stats slabs/items) are needed"
    return lists


@pytest.fixture(scope="module", params=sorted(FLAG_SETS))
def both(request: pytest.FixtureRequest) -> Iterator[tuple[Server, Server]]:
    require_tool("memcached")
    flags = FLAG_SETS[request.param]
    with start_server("memcached", *flags) as memcached, start_server("kvshard", *flags) as kvshard:
        yield memcached, kvshard


def _stats(server: Server, command: bytes) -> dict[str, str]:
    with Wire.connect(server.address) as conn:
        return read_stats(conn, command)


@pytest.mark.parametrize("command", sorted(TABLES.values()))
def test_every_field_is_reported_or_listed(both: tuple[Server, Server], command: bytes) -> None:
    memcached, kvshard = both
    listed = not_reported()[command]
    theirs, ours = _stats(memcached, command), _stats(kvshard, command)
    missing = [name for name in theirs if name not in ours and name not in listed]
    assert not missing, f"stats{command.decode()}: neither reported nor in the README's list: {missing}"
    both_ways = sorted(listed & set(ours))
    assert not both_ways, f"stats{command.decode()}: listed as not reported, but reported: {both_ways}"
    extra = [name for name in ours if name not in theirs]
    assert not extra, f"stats{command.decode()}: fields memcached does not report: {extra}"


@pytest.mark.parametrize("command", sorted(TABLES.values()))
def test_fields_come_in_memcached_order(both: tuple[Server, Server], command: bytes) -> None:
    memcached, kvshard = both
    theirs = list(_stats(memcached, command))
    ours = list(_stats(kvshard, command))
    assert ours == [name for name in theirs if name in ours]


def test_settings_have_memcached_values(both: tuple[Server, Server]) -> None:
    memcached, kvshard = both
    theirs, ours = _stats(memcached, b" settings"), _stats(kvshard, b" settings")
    differ = {name: (theirs[name], value) for name, value in ours.items()
              if name not in DIFFERENT_BY_NATURE and theirs[name] != value}
    assert not differ, f"(memcached, kvshard): {differ}"


def test_stats_values_of_the_same_flags_agree(both: tuple[Server, Server]) -> None:
    """The fields of ``stats`` that follow from the flags alone, and every field's format."""
    memcached, kvshard = both
    theirs, ours = _stats(memcached, b""), _stats(kvshard, b"")
    for name in ("pointer_size", "max_connections", "limit_maxbytes", "threads"):
        assert ours[name] == theirs[name], name
    for name, value in ours.items():
        if name == "version":
            continue
        pattern = r"[0-9]+\.[0-9]{6}" if name.startswith("rusage_") else r"0|[1-9][0-9]*"
        assert re.fullmatch(pattern, value), (name, value)
