"""Test support for v2v, kept out of every service's `src/` (and so out of its image).

- `v2v_testkit.contracts`: where the repository's `contracts/` folder is;
- `v2v_testkit.golden`: golden contract vectors (the envelope's and every context's event
  payloads) and `python -m v2v_testkit.golden --write`, which rewrites them all;
- `v2v_testkit.<service>`: the wiring each service's tests share (in-memory applications,
  attributions, fake facts);
- `v2v_testkit.synthetic`: synthetic chains of signed envelopes for the projection's tests
  and benchmarks (the simulator, by contrast, drives the real services).
"""
