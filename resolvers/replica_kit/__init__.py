"""The replica kit: what every kind's replica shares (serving on loopback, faults, the request
log, the replay clock)."""
