"""Schema-validated EPCIS output for every chain of a demo run (issue 17 item 1, Proof), black
box, on PostgreSQL and Kafka: the demo's patient plans (seed 7, every special case) driven
through the real services; then, read from the projection's `GET /v1/chains/{coi}/epcis` with
the auditor's site token, every chain is an EPCIS 2.0 JSON-LD document valid against the
vendored EPCIS 2.0 JSON schema, with a CBV 2.0 event hash per event, every unit of the chain
in its events and its batch as a transformation; a hospital reads the documents of the
chains it is related to, and the others are 404 to it (like GetChain).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from v2v_platform.auth.tokens import issue_site_token
from v2v_projection.standards.epcis_ids import din_uri
from v2v_projection.standards.epcis_schema import schema_errors
from v2v_simulator.running import DemoRun

pytestmark = pytest.mark.integration


def client(base: str, token: str) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"}
    return httpx.Client(base_url=base, headers=headers, trust_env=False, timeout=60.0)


def epcis(reply: httpx.Response) -> dict[str, Any]:
    assert reply.status_code == 200, (str(reply.url), reply.text)
    assert reply.headers["content-type"] == "application/ld+json"
    document: dict[str, Any] = reply.json()
    return document


def test_every_chain_of_a_demo_run_exports_as_schema_valid_epcis(
    demo_run: DemoRun,
) -> None:
    running = demo_run.running
    consortium = running.system.consortium
    base = running.system.http_base("projection", consortium.auditor_site)
    pki = running.system.pki

    events = 0
    sites_of: dict[str, list[str]] = {}
    with client(base, issue_site_token(pki, consortium.auditor_site)) as auditor:
        chains = auditor.get("/v1/chains", params={"limit": 1000}).json()["chains"]
        assert {journey.coi for journey in demo_run.journeys} <= {c["coi"] for c in chains}
        for summary in chains:
            coi = summary["coi"]
            document = epcis(auditor.get(f"/v1/chains/{coi}/epcis"))
            assert schema_errors(document) == [], coi
            assert document["schemaVersion"] == "2.0"
            listed = document["epcisBody"]["eventList"]
            assert all(e["eventID"].startswith("ni:///sha-256;") for e in listed)
            named = {
                epc
                for e in listed
                for key in ("epcList", "outputEPCList")
                for epc in e.get(key, [])
            }
            view = auditor.get(f"/v1/chains/{coi}").json()
            sites_of[coi] = view["sites"]
            assert {din_uri(unit["din"]) for unit in view["units"]} <= named, coi
            if view["batches"]:
                assert any(
                    e["type"] == "TransformationEvent"
                    and "outputEPCList" in e
                    and e["transformationID"].startswith("urn:v2v:batch:")
                    for e in listed
                ), coi
            events += len(listed)
    assert events >= 10 * len(demo_run.journeys)

    hospital_id = consortium.hospitals[0].site_id
    with client(base, issue_site_token(pki, hospital_id)) as hospital:
        for coi, sites in sites_of.items():
            reply = hospital.get(f"/v1/chains/{coi}/epcis")
            if hospital_id in sites:
                assert schema_errors(epcis(reply)) == [], coi
            else:
                assert reply.status_code == 404, coi
    assert any(hospital_id not in sites for sites in sites_of.values())
