"""The app model (flows, works, compute, state, schedules), the loop, the protocol and the agent.

Everything here runs on the Python standard library (croniter is imported lazily by schedules on the
orchestrator only), because the agent half of this package is shipped to remote machines.
"""
