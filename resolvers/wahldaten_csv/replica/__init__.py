"""A local web folder of recorded Offene Wahldaten files, for tests and the demo."""
