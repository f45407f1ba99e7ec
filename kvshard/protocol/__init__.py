"""memcached protocol codecs, sans-IO (no sockets, loops or shards inside)."""

__all__: list[str] = []
