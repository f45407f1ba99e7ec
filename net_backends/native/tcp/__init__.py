"""TCP (RFC 9293) for the native stack: segments (segment.py) now; connections and their state
machine, timers and congestion control next."""
