"""Node-driven checks: the graphql-http audit, GraphiQL in Chromium, Apollo Client APQ."""
