"""v2v release service. Skeleton only: its domain, application and adapters arrive with its issue."""
