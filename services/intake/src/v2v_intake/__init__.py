"""v2v intake service. Skeleton only: its domain, application and adapters arrive with its issue."""
