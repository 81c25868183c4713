"""The HTTP application: GraphQL over HTTP and WebSockets, auth, rate limits, caching headers,
playground, configuration."""
