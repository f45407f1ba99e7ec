"""kvshard: a memcached-compatible key-value server, one shard per core."""

__version__ = "0.1.0"
__all__ = ["__version__"]
