"""v2v consortium simulator and demo runner."""
