"""`make bench`: our BFF against a deliberately plain aiohttp baseline, in one run, on loopback.

The harness starts the mock services, the target (ours with N workers, or the baseline) as a
user would, drives it with wrk, and reads CPU and memory from the OS's own accounting
(/proc). It never imports `bff`: it measures the product from outside, like a user's load.
See bench/README.md.
"""
