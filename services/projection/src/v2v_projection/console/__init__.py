"""The web console on the projection's HTTP port (/console): app.py."""
