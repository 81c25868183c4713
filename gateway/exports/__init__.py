"""File downloads generated from the datamodel (CSV, NDJSON, Parquet) and the catalogue."""
