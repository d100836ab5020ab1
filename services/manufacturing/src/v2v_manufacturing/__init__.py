"""v2v manufacturing service. Skeleton only: its domain, application and adapters arrive with its issue."""
