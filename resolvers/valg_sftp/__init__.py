"""The ``valg-sftp`` kind: signed JSON election files over SFTP (adapter, change detector,
replica)."""
