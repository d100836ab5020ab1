"""Adapters of the release service: gRPC, HTTP, Kafka payloads and projections."""
