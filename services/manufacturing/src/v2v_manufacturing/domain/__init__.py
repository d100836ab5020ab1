"""Manufacturing domain: aggregates and value objects (imports nothing from adapters)."""
