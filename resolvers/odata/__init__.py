"""The ``odata`` kind: OData v3 JSON services (adapter, change detector, replica)."""
