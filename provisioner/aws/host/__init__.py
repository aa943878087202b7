"""Run as root on the aws provider's instances (standard library only): see hostscript.py."""
