"""A local SFTP server serving the recorded VALG archives, for tests and the demo."""
