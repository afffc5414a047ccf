"""The censorship lab: real servers that lie, reset, blackhole and serve blockpages.

Tests, benchmarks and the demo all use it.  Everything listens on loopback addresses
(127.0.0.0/8) only; nothing here ever sends traffic elsewhere.
"""
