"""The ``volby-xml`` kind: ČSÚ election XML with incremental precinct batches (adapter, change
detector, replica)."""
