"""The ``wahldaten-csv`` kind: Offene Wahldaten CSV files over HTTP (adapter, change detector,
replica)."""
