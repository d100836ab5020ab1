"""v2v intake service (skeleton: its domain arrives with its issue)."""
