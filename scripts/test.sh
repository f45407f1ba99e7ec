#!/usr/bin/env bash
# Run the test suite twice over: all of it on the compiled core (what `pip install` built), then
# the tests of the modules that have a compiled twin (codecs, cache, connection, ring, channels,
# conformance) with KVSHARD_NO_EXTENSIONS=1, so the interpreted modules stay correct too.
# Extra arguments go to both pytest runs. Exits non-zero if either run fails.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
INTERPRETED_TESTS=(
    tests/test_ascii_codec.py tests/test_binary_codec.py tests/test_login_codec.py
    tests/test_codec_properties.py tests/test_cache.py tests/test_crawler.py tests/test_slab_arena.py tests/test_item_layout.py tests/test_lru_segments.py tests/test_slab_mover.py tests/test_routing.py tests/test_packed_blocks.py tests/test_connection.py tests/test_ring.py tests/test_channel_fixed.py tests/test_channel_bench.py tests/test_socket_stream.py
    tests/test_shards.py tests/test_cli.py tests/test_extensions.py tests/test_import_graph.py tests/test_watch.py tests/conformance
)
echo "== compiled core: the whole suite"
"$PY" -m pytest "$@"
compiled=$?
echo "== interpreted core (KVSHARD_NO_EXTENSIONS=1): ${INTERPRETED_TESTS[*]}"
KVSHARD_NO_EXTENSIONS=1 "$PY" -m pytest "${INTERPRETED_TESTS[@]}" "$@"
interpreted=$?
echo "== compiled: exit $compiled; interpreted: exit $interpreted"
[ "$compiled" -eq 0 ] && [ "$interpreted" -eq 0 ]
