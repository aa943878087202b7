"""Run on the user's hosts by the ssh provider (standard library only, Python 3.9+): see hostscript.py."""
