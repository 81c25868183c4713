"""The port every source kind implements, the registry of kinds, and what all sources share (guard,
cache, budget, change records, metrics)."""
