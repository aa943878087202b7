"""Where machines come from: one contract, one module per provider (ssh and aws land in later versions).

The runtime asks for machines through `lit.runtime.transport.Launcher`; the local launcher there runs
every work as a process on this machine.
"""
