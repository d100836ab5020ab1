"""v2v projection service. Skeleton only: its domain, application and adapters arrive with its issue."""
