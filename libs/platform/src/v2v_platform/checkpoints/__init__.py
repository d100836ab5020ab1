"""Signed checkpoints (issue 15): a service's commitment to the heads of every stream it
published, as an RFC 6962 Merkle tree hash, so a verifier can tell that a stream's tail was
removed or rewritten (see `merkle` and proto/v2v/checkpoints/v1/checkpoint.proto)."""
