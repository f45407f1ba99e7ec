#!/usr/bin/env python3
"""Coverage-guided fuzzing of kvshard's codecs with atheris (libFuzzer for Python).

    .venv/bin/pip install atheris
    .venv/bin/python scripts/fuzz_codecs.py ascii  -runs=1000000
    .venv/bin/python scripts/fuzz_codecs.py binary -runs=1000000
    .venv/bin/python scripts/fuzz_codecs.py meta   -runs=1000000
    .venv/bin/python scripts/fuzz_codecs.py login  -runs=1000000 -dict=scripts/fuzz_dicts/login.dict  # -Y gate
    .venv/bin/python scripts/fuzz_codecs.py sasl   -runs=1000000   # -S: binary parser, locked

Each input is cut in two at a point the input itself chooses. The checks are the ones the
property tests use (tests/codec_checks.py):
- the parser never raises;
- it returns the same commands whole and cut (and, for ASCII, fed a byte at a time);
- every command and reply it produces is well-formed.

``login`` also checks that the gate answers only its five replies and lets the client in
exactly when it answered STORED; ``sasl`` that a locked parser lets nothing through but the
SASL opcodes and VERSION. ``meta`` feeds token lists to the meta flag checks directly. libFuzzer's options follow the
codec name (``-runs``, ``-max_len``, ``-seed``, a corpus directory...). A failure stops the run
with the input saved as ``crash-*``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import atheris  # noqa: E402

with atheris.instrument_imports():
    from kvshard.protocol import meta  # noqa: E402
    from tests.codec_checks import (  # noqa: E402
        ascii_commands, binary_requests, check_ascii, check_binary, check_login, login_outcome, reply_ok,
        sasl_requests,
    )


def _parse_whole_and_cut(parse: Callable[[list[bytes]], Any], data: bytes, bytewise: bool = False) -> Any:
    """``parse`` of the input (after its first byte, the cut point) whole; the same cut in two
    and (``bytewise``, short inputs) fed a byte at a time."""
    cut = data[0] if data else 0
    body = data[1:]
    whole = parse([body])
    assert parse([body[:cut], body[cut:]]) == whole
    if bytewise and len(body) < 64:
        assert parse([bytes([b]) for b in body]) == whole
    return whole


def fuzz_ascii(data: bytes) -> None:
    for cmd in _parse_whole_and_cut(ascii_commands, data, bytewise=True):
        check_ascii(cmd)


def fuzz_binary(data: bytes) -> None:
    for request in _parse_whole_and_cut(binary_requests, data):
        check_binary(request)


def fuzz_login(data: bytes) -> None:
    check_login(*_parse_whole_and_cut(login_outcome, data, bytewise=True))


def fuzz_sasl(data: bytes) -> None:
    for request in _parse_whole_and_cut(sasl_requests, data):
        check_binary(request)


def fuzz_meta(data: bytes) -> None:
    tokens = [t for t in data.split(b" ") if t]
    if not tokens:
        return
    for verb in (b"mg", b"ms", b"md", b"ma"):
        line_error = meta.check_line(verb, [verb, *tokens])
        assert line_error is None or reply_ok(line_error)
        if line_error is None:
            result = meta.check_flags(verb, [verb, *tokens])
            assert reply_ok(result) if isinstance(result, bytes) else isinstance(result[1], meta.MetaFlags)


TARGETS = {"ascii": fuzz_ascii, "binary": fuzz_binary, "meta": fuzz_meta, "login": fuzz_login, "sasl": fuzz_sasl}


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        print(f"usage: fuzz_codecs.py {{{'|'.join(TARGETS)}}} [libFuzzer options]", file=sys.stderr)
        sys.exit(64)
    target = TARGETS[sys.argv.pop(1)]
    atheris.Setup(sys.argv, target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
