"""A local OData v3 service over recorded data (FT's), for tests and the demo."""
