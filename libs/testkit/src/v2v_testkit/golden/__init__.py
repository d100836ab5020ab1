"""Golden contract vectors: the envelope's and one example of every event message of every
context (contracts/golden/<context>/v1/). `python -m v2v_testkit.golden --write` rewrites
them all; the producer tests check that the production mappers still build exactly them."""
