"""A bag's ISBT 128 label from the intake HTTP API (issue 17 item 3): the PDF, read back by a
barcode decoder, encodes exactly the bag's DIN and COI, the product code only when the site
loaded it (V2V_PRODUCT_CODES_FILE), the expiry when given; only the site that labelled the bag
gets it (any other collection site: 404, as if absent)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from v2v_intake.adapters.key_store import InMemoryKeyStore
from v2v_intake.bootstrap import bootstrap
from v2v_intake.settings import IntakeSettings
from v2v_platform.auth.pki import init_pki, parse_site_spec
from v2v_platform.auth.tokens import issue_site_token
from v2v_platform.config import ConfigurationError, load_settings
from v2v_platform.ids import Din
from v2v_platform.labels import Label, barcode_texts
from v2v_testkit.intake import (
    ENROLLED_AT,
    FakeSlots,
    FixedClock,
    declare_din_block,
    password_of,
    signer_store,
)
from v2v_testkit.labels import pdf_text, read_pdf_barcodes

OPERATOR = {"user_id": "u-1", "printed_name": "Ada Example"}
EXPIRES = datetime(2025, 3, 17, 10, 30, tzinfo=timezone(timedelta(hours=1)))
DESCRIPTION = "CAR-T cells, autologous apheresis"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pki")
    sites = ["HOSP-A:collection", "HOSP-Z:collection", "AUDIT-X:auditor"]
    init_pki(directory, [parse_site_spec(s) for s in sites])
    declare_din_block(directory)
    return directory


def service_client(pki: Path, codes_file: Path | None) -> TestClient:
    settings = IntakeSettings(
        site_id="HOSP-A",
        fin="A1234",
        pki_dir=pki,
        manufacturing_target="x:1",
        product_codes_file=codes_file,
    )
    service = bootstrap(
        settings,
        manufacturing=FakeSlots(),
        keys=InMemoryKeyStore(),
        signers=signer_store("HOSP-A"),
        clock=FixedClock(),
    )
    return TestClient(service.http_app, raise_server_exceptions=False)


@pytest.fixture(scope="module")
def codes_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("codes") / "product-codes.csv"
    path.write_text(f'code,description\nS1234,"{DESCRIPTION}"\n')
    return path


def auth(pki: Path, site: str = "HOSP-A") -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_site_token(pki, site)}"}


def labelled_bag(client: TestClient, pki: Path, pseudonym: str) -> tuple[str, str]:
    enrolment: dict[str, Any] = {
        "operator": OPERATOR,
        "patient_pseudonym": pseudonym,
        "personal_details": {
            "given_name": "Ada",
            "family_name": "Example",
            "mrn": "M-9",
            "birth_date": "1970-01-01",
        },
        "treating_site_id": "HOSP-A",
        "enrolled_at": ENROLLED_AT.isoformat(),
    }
    coi = client.post("/v1/therapies", json=enrolment, headers=auth(pki)).json()["coi"]
    booking = {"operator": OPERATOR, "manufacturing_site_id": "GMP-B", "slot_date": "2025-03-20"}
    client.post(f"/v1/therapies/{coi}/slots", json=booking, headers=auth(pki))
    collection = client.post(
        f"/v1/therapies/{coi}/collections",
        json={
            "operator": OPERATOR,
            "started_at": "2025-03-14T06:00:00Z",
            "ended_at": "2025-03-14T10:00:00Z",
            "volume_ml": 210.0,
            "total_nucleated_cells_e9": 11.0,
            "cd3_cells_e9": 5.5,
        },
        headers=auth(pki),
    ).json()["collection_id"]
    [din] = client.post(
        f"/v1/therapies/{coi}/collections/{collection}/units",
        json={"operator": OPERATOR, "count": 1},
        headers=auth(pki),
    ).json()["dins"]
    return str(coi), str(din)


def test_the_bag_label_encodes_the_bag_the_loaded_product_code_and_the_expiry(
    pki: Path, codes_file: Path
) -> None:
    client = service_client(pki, codes_file)
    coi, din = labelled_bag(client, pki, "PSN-L1")
    query = {"product_code": "S1234", "expires_at": EXPIRES.isoformat()}

    url = f"/v1/therapies/{coi}/units/{din}/label.pdf"
    label = client.get(url, params=query, headers=auth(pki))
    assert label.status_code == 200, label.text
    assert label.headers["content-type"] == "application/pdf"
    expected = Label(Din.parse(din), coi, "S1234000", EXPIRES, DESCRIPTION)
    assert read_pdf_barcodes(label.content) == barcode_texts(expected)
    assert barcode_texts(expected)["product"] == "=<S1234000"
    printed = pdf_text(label.content)
    assert Din.parse(din).eye_readable()[:15] in printed and coi in printed
    assert DESCRIPTION in printed and "Collected at HOSP-A" in printed and "FIN A1234" in printed
    plain = client.get(url, headers=auth(pki))
    assert read_pdf_barcodes(plain.content) == barcode_texts(Label(Din.parse(din), coi))


def test_without_the_sites_product_codes_no_label_carries_one(pki: Path) -> None:
    client = service_client(pki, None)
    coi, din = labelled_bag(client, pki, "PSN-L2")
    url = f"/v1/therapies/{coi}/units/{din}/label.pdf"

    refused = client.get(url, params={"product_code": "S1234"}, headers=auth(pki))
    assert refused.status_code == 422
    assert "loaded no product description codes" in refused.json()["detail"]
    label = client.get(url, headers=auth(pki))
    assert "product" not in read_pdf_barcodes(label.content)


def test_only_the_site_that_labelled_the_bag_gets_its_label(pki: Path, codes_file: Path) -> None:
    client = service_client(pki, codes_file)
    coi, din = labelled_bag(client, pki, "PSN-L3")
    url = f"/v1/therapies/{coi}/units/{din}/label.pdf"

    assert client.get(url, headers=auth(pki)).status_code == 200
    other = client.get(url, headers=auth(pki, "HOSP-Z"))
    assert other.status_code == 404 and din not in other.text
    assert client.get(url, headers=auth(pki, "AUDIT-X")).status_code == 403
    assert client.get(url).status_code == 401
    unknown = f"/v1/therapies/{coi}/units/{Din.parse(din).data}000099/label.pdf"
    assert client.get(unknown, headers=auth(pki)).status_code == 422  # not a DIN at all
    other_bag = f"/v1/therapies/{coi}/units/A12342599999900/label.pdf"
    assert client.get(other_bag, headers=auth(pki)).status_code == 404


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ({"product_code": "S12"}, "product code 'S12'"),
        ({"product_code": "S9999"}, "not among the 1 product codes"),
        ({"expires_at": "2025-03-17T10:30:00"}, "expires_at"),
    ],
)
def test_what_no_label_may_carry_is_refused_naming_it(
    pki: Path, codes_file: Path, query: dict[str, str], named: str
) -> None:
    client = service_client(pki, codes_file)
    coi, din = labelled_bag(client, pki, f"PSN-Q-{len(named)}")
    url = f"/v1/therapies/{coi}/units/{din}/label.pdf"

    refused = client.get(url, params=query, headers=auth(pki))
    assert refused.status_code == 422 and named in refused.text


def test_an_unreadable_product_codes_file_stops_the_service_naming_the_variable(
    pki: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "codes.csv"
    bad.write_text("S1234,no header\n")
    fields = {"site_id": "HOSP-A", "fin": "A1234", "pki_dir": pki, "manufacturing_target": "x:1"}

    with pytest.raises(ConfigurationError) as stopped:
        load_settings(IntakeSettings, product_codes_file=bad, **fields)
    assert "V2V_PRODUCT_CODES_FILE" in str(stopped.value) and "header" in str(stopped.value)


def test_the_two_person_check_accepts_the_din_as_scanned_off_the_printed_label(
    pki: Path, codes_file: Path
) -> None:
    client = service_client(pki, codes_file)
    coi, din = labelled_bag(client, pki, "PSN-L4")
    printed = client.get(f"/v1/therapies/{coi}/units/{din}/label.pdf", headers=auth(pki))
    scanned = read_pdf_barcodes(printed.content)
    assert scanned["din"] == f"={din}"

    verified = []
    for scan_of, user in ((scanned["din"], "u-1"), (scanned["datamatrix"], "u-2")):
        operator = {"user_id": user, "printed_name": f"User {user}"}
        body = {
            "operator": operator,
            "scanned_din": scan_of,
            "scanned_coi": coi,
            "signature": {
                "user_id": user,
                "password": password_of(user),
                "meaning": "verification",
            },
        }
        answer = client.post(f"/v1/therapies/{coi}/units/{din}/scans", json=body, headers=auth(pki))
        assert answer.status_code == 200, answer.text
        verified.append(answer.json()["verified"])
    assert verified == [False, True]
