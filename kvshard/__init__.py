"""kvshard: a memcached-compatible key-value server, one shard per core."""

import framework.extensions  # noqa: F401 - first: decides compiled or interpreted modules

__version__ = "0.1.0"
__all__ = ["__version__"]
