"""v2v projection core: folds every context topic into one chain of identity and custody per
COI (fold.py, chain/), keeps it with its offsets (store.py) and serves it over gRPC and HTTP."""
