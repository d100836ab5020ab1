"""v2v logistics service (skeleton: its domain arrives with its issue)."""
