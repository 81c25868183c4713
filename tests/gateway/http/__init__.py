"""GraphQL over HTTP: the protocol, persisted queries, caching, CORS, the playground."""
