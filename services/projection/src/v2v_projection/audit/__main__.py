"""`python -m v2v_projection.audit`: the same commands as `v2v audit`."""

from v2v_projection.audit.cli import app

app(prog_name="v2v audit")
