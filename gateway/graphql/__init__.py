"""The GraphQL service: schema generation, the request pipeline, limits, execution,
subscriptions."""
