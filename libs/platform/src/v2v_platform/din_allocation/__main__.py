"""`python -m v2v_platform.din_allocation declare|show --out PKI ...`."""

from v2v_platform.din_allocation.cli import app

if __name__ == "__main__":
    app()
