"""v2v logistics service. Skeleton only: its domain, application and adapters arrive with its issue."""
