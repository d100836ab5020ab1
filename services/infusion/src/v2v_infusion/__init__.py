"""v2v infusion service. Skeleton only: its domain, application and adapters arrive with its issue."""
