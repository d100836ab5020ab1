"""v2v shared platform: everything every service stands on, written and tested once."""
