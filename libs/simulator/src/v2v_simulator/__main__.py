"""`python -m v2v_simulator`: see `v2v_simulator.cli`."""

from v2v_simulator.cli import app

app(prog_name="python -m v2v_simulator")
