"""Load tests that talk to a running server over the network only (locust, memaslap A/B)."""

__all__: list[str] = []
