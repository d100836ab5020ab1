"""v2v projection service (skeleton: its domain arrives with its issue)."""
