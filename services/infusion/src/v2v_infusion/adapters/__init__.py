"""Adapters: payloads, golden vectors, gRPC, HTTP and the projection of other contexts."""
