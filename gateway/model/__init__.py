"""The vocabulary every stage shares, without I/O: datamodel, queries, filters, keys, errors,
callers."""
