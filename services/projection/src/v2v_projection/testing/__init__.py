"""Test and benchmark helpers of the projection core (generated consortium histories)."""
