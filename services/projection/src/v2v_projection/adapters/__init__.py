"""The projection core's APIs: gRPC ChainQueryService and HTTP JSON under /v1."""
