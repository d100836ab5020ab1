"""Generated protobuf/gRPC packages mirroring proto/v2v/ (run `make proto`; not committed)."""
