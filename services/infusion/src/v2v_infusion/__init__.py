"""v2v infusion service (skeleton: its domain arrives with its issue)."""
