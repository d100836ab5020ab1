"""v2v manufacturing service (skeleton: its domain arrives with its issue)."""
