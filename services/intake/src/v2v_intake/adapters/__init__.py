"""Adapters: gRPC and HTTP APIs, payload mappers, and the ports' implementations."""
