"""The source kinds: one package per way of reaching an upstream, plus the HTTP transport and the
replica kit they share."""
