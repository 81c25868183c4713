"""dls-gateway package."""
