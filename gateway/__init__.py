"""dls-gateway, the service side: register folders in, a GraphQL service out
(docs/ARCHITECTURE.md)."""
