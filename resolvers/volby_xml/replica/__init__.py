"""A local volby.cz serving the recorded XML responses, for tests and the demo."""
