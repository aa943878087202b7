"""Where machines come from: one contract (base.py), a registry by name (registry.py), one package per provider
(`ssh/`, `aws/`), and the cloud-neutral launcher that places works on them.

The runtime asks for machines through `lit.runtime.transport.Launcher`; the local launcher there runs every work as a
process on this machine, the cluster launcher here on a cluster's machines. docs/architecture.md draws it.
"""
