"""A patient's journey through the consortium, as small step functions per stage."""
