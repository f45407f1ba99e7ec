#!/usr/bin/env python3
"""Coverage-guided fuzzing of kvshard's codecs with atheris (libFuzzer for Python).

    .venv/bin/pip install atheris
    .venv/bin/python scripts/fuzz_codecs.py ascii  -runs=1000000
    .venv/bin/python scripts/fuzz_codecs.py binary -runs=1000000
    .venv/bin/python scripts/fuzz_codecs.py meta   -runs=1000000

Each input is cut in two at a point the input itself chooses. The checks are the ones the
property tests use (tests/codec_checks.py):
- the parser never raises;
- it returns the same commands whole and cut (and, for ASCII, fed a byte at a time);
- every command and reply it produces is well-formed.

``meta`` feeds token lists to the meta flag checks directly. libFuzzer's options follow the
codec name (``-runs``, ``-max_len``, ``-seed``, a corpus directory...). A failure stops the run
with the input saved as ``crash-*``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import atheris  # noqa: E402

with atheris.instrument_imports():
    from kvshard.protocol import meta  # noqa: E402
    from tests.codec_checks import (  # noqa: E402
        ascii_commands, binary_requests, check_ascii, check_binary, reply_ok,
    )


def fuzz_ascii(data: bytes) -> None:
    cut = data[0] if data else 0
    body = data[1:]
    whole = ascii_commands([body])
    assert ascii_commands([body[:cut], body[cut:]]) == whole
    if len(body) < 64:
        assert ascii_commands([bytes([b]) for b in body]) == whole
    for cmd in whole:
        check_ascii(cmd)


def fuzz_binary(data: bytes) -> None:
    cut = data[0] if data else 0
    body = data[1:]
    whole = binary_requests([body])
    assert binary_requests([body[:cut], body[cut:]]) == whole
    for request in whole:
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


TARGETS = {"ascii": fuzz_ascii, "binary": fuzz_binary, "meta": fuzz_meta}


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        print(f"usage: fuzz_codecs.py {{{'|'.join(TARGETS)}}} [libFuzzer options]", file=sys.stderr)
        sys.exit(64)
    target = TARGETS[sys.argv.pop(1)]
    atheris.Setup(sys.argv, target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
