"""Change events: one watcher per register polling its kind's detector, shared between processes
through Redis."""
