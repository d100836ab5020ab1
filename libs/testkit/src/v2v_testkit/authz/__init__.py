"""The authorization matrix the project owns (e2e/test_authorization_matrix.py).

Every gRPC method (from the proto service descriptors) and every HTTP route (from the
services' OpenAPI documents) x five callers: no credentials, wrong role, an unrelated site
with the right role, the related site, the auditor; the expected outcome comes from the
access each method and route declares (`v2v_platform.access_policy`).

- `inventory`: the methods and routes, with their declared access;
- `seed`: the identifiers of the seeded patient journey the requests name;
- `requests`, `grpc_requests`, `http_requests`: one request builder per method and route;
- `callers`: the caller kinds and their (minted) certificates and tokens;
- `expectations`: the expected outcome per caller kind and the verdict on an outcome;
- `calls`, `matrix`: making the calls; `report`: the counts and findings.
"""
