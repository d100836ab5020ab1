"""Deriving one COI's chain view from its set of facts (order-insensitive by construction)."""
