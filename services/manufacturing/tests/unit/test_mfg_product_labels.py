"""A product unit's ISBT 128 label from the manufacturing HTTP API (issue 17 item 3): the PDF,
read back by a barcode decoder, encodes exactly the product DIN and its batch's COI, the
product code only when the site loaded it, the expiry when given; only the site that
harvested it gets it (another manufacturing site, or a DIN it never issued: 404)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from v2v_manufacturing.bootstrap import ManufacturingService, bootstrap
from v2v_manufacturing.settings import ManufacturingSettings
from v2v_platform.auth.pki import init_pki, parse_site_spec
from v2v_platform.auth.tokens import issue_site_token
from v2v_platform.conditions import Condition
from v2v_platform.ids import Din, issue_din
from v2v_platform.labels import Label, barcode_texts
from v2v_testkit.labels import pdf_text, read_pdf_barcodes
from v2v_testkit.manufacturing import (
    COI,
    DAY,
    FIN,
    GMP,
    HOSPITAL,
    Clock,
    InMemoryManufacturingFacts,
    apheresis_din,
    declare_din_block,
)

OTHER_GMP = "GMP-9"
SITES = [
    f"{HOSPITAL}:collection",
    f"{GMP}:manufacturing",
    f"{OTHER_GMP}:manufacturing",
    "AUDIT-1:auditor",
]
OPERATOR = {"user_id": "u-op", "printed_name": "Grace Operator"}
EXPIRES = datetime(2025, 9, 1, 8, 0, tzinfo=UTC)
DESCRIPTION = "CAR-T cells, cryopreserved product"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pki")
    init_pki(directory, [parse_site_spec(s) for s in SITES])
    declare_din_block(directory)
    return directory


@pytest.fixture
def service(pki: Path, tmp_path: Path) -> Iterator[tuple[ManufacturingService, TestClient]]:
    codes = tmp_path / "product-codes.json"
    codes.write_text(f'{{"S2001": "{DESCRIPTION}"}}')
    facts = InMemoryManufacturingFacts()
    facts.enrolled(COI, HOSPITAL)
    settings = ManufacturingSettings(
        site_id=GMP, fin=FIN, pki_dir=pki, product_codes_file=codes, sqlite_path=None
    )
    running = bootstrap(settings, facts=facts, clock=Clock())
    client = TestClient(running.http_app, raise_server_exceptions=False)
    gmp = auth(pki, GMP)
    client.put(
        f"/v1/calendars/{GMP}/{DAY}", json={"operator": OPERATOR, "capacity": 1}, headers=gmp
    )
    booked = client.post(
        f"/v1/calendars/{GMP}/{DAY}/bookings",
        json={"operator": OPERATOR, "coi": COI},
        headers=auth(pki, HOSPITAL),
    )
    facts.slot_booked(COI, GMP, booked.json()["slot_id"])
    facts.package(apheresis_din(3), COI, Condition.FRESH_COLD)
    receipt = {"operator": OPERATOR, "scanned_din": apheresis_din(3), "scanned_coi": COI}
    assert client.post("/v1/receipts", json=receipt, headers=gmp).status_code == 201
    yield running, client
    running.stop()


def auth(pki: Path, site: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_site_token(pki, site)}"}


def harvested(client: TestClient, pki: Path, count: int = 2) -> tuple[str, list[str]]:
    gmp = auth(pki, GMP)
    start = {"operator": OPERATOR, "input_dins": [apheresis_din(3)]}
    batch_id = str(client.post("/v1/batches", json=start, headers=gmp).json()["batch_id"])
    body = {"operator": OPERATOR, "product_unit_count": count, "hold_condition": "cryo"}
    response = client.post(f"/v1/batches/{batch_id}/harvest", json=body, headers=gmp)
    assert response.status_code == 201, response.text
    return batch_id, list(response.json()["product_dins"])


def test_a_product_label_encodes_the_product_its_coi_and_the_loaded_product_code(
    pki: Path, service: tuple[ManufacturingService, TestClient]
) -> None:
    _, client = service
    batch_id, products = harvested(client, pki)
    query = {"product_code": "S2001", "expires_at": EXPIRES.isoformat()}

    for product in products:
        label = client.get(f"/v1/units/{product}/label.pdf", params=query, headers=auth(pki, GMP))
        assert label.status_code == 200, label.text
        assert label.headers["content-type"] == "application/pdf"
        expected = Label(Din.parse(product), COI, "S2001000", EXPIRES, DESCRIPTION)
        assert read_pdf_barcodes(label.content) == barcode_texts(expected)
        printed = pdf_text(label.content)
        assert Din.parse(product).eye_readable()[:15] in printed and COI in printed
        assert f"Batch {batch_id}" in printed and f"Manufactured at {GMP}" in printed
    plain = client.get(f"/v1/units/{products[0]}/label.pdf", headers=auth(pki, GMP))
    assert read_pdf_barcodes(plain.content) == barcode_texts(Label(Din.parse(products[0]), COI))
    scanned = f"/v1/units/={products[0]}/label.pdf"  # as scanned off its label: the same unit
    assert client.get(scanned, headers=auth(pki, GMP)).content[:5] == b"%PDF-"


def test_only_the_site_that_harvested_a_product_gets_its_label(
    pki: Path, service: tuple[ManufacturingService, TestClient]
) -> None:
    _, client = service
    _, [product, *_] = harvested(client, pki)
    url = f"/v1/units/{product}/label.pdf"

    other = client.get(url, headers=auth(pki, OTHER_GMP))
    assert other.status_code == 404
    assert other.json()["detail"] == f"no product unit {product} is visible to site {OTHER_GMP}"
    assert client.get(url, headers=auth(pki, HOSPITAL)).status_code == 403
    assert client.get(url, headers=auth(pki, "AUDIT-1")).status_code == 403
    assert client.get(url).status_code == 401
    never_issued = str(issue_din(FIN, 25, 999_999))
    missing = client.get(f"/v1/units/{never_issued}/label.pdf", headers=auth(pki, GMP))
    assert missing.status_code == 404  # answered like another site's product: no oracle
    assert missing.json()["detail"] == f"no product unit {never_issued} is visible to site {GMP}"
    apheresis = client.get(f"/v1/units/{apheresis_din(3)}/label.pdf", headers=auth(pki, GMP))
    assert apheresis.status_code == 404  # received here, but not a product this site issued
    unknown_code = client.get(url, params={"product_code": "S9999"}, headers=auth(pki, GMP))
    assert unknown_code.status_code == 422 and "S9999" in unknown_code.json()["detail"]
