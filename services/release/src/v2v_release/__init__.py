"""v2v release service (skeleton: its domain arrives with its issue)."""
