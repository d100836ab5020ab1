"""Adapters of the logistics service: HTTP, gRPC, Kafka projection, payloads, token store."""
