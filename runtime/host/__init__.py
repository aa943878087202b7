"""Scripts that run on a work's machine outside the agent: each is standard library only (Python 3.9+) and
imports nothing of lit, so it runs before lit's code is on the host (extract, sent as source) or starts fast
without importing lit or site (attach, run by path from the unpacked bundle)."""
