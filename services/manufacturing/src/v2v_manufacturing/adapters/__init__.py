"""Adapters of the manufacturing service: payloads, gRPC, HTTP, intake projection."""
