"""Benchmarks of tornado_petitions beside its peers (``make bench``; see docs/performance.md)."""
