"""The broker's material (TLS from the consortium CA) and the access table its ACLs are made
from: each service writes only its own topic and reads only its facts feed."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from cryptography.x509.oid import NameOID

from v2v_infusion.adapters.facts_projection import FACTS_FEED as INFUSION_FEED
from v2v_logistics.adapters.facts_projection import FACTS_FEED as LOGISTICS_FEED
from v2v_manufacturing.adapters.facts_projection import FACTS_FEED as MANUFACTURING_FEED
from v2v_platform.auth.pki import init_pki, parse_site_spec
from v2v_platform.checkpoints.envelopes import CHECKPOINT_TOPIC
from v2v_platform.config import load_settings
from v2v_platform.envelope.headers import CONTEXTS, topic_for
from v2v_platform.kafka_broker import (
    ACCESS,
    BROKER_PRINCIPAL,
    ProvisionSettings,
    acl_entries,
    broker_tls_current,
    issue_broker_tls,
)
from v2v_release.adapters.facts_projection import FACTS_FEED as RELEASE_FEED


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    init_pki(tmp_path / "pki", [parse_site_spec("HOSP-A:collection")])
    return tmp_path / "pki"


def test_the_broker_certificate_comes_from_the_consortium_ca(pki: Path) -> None:
    issued = issue_broker_tls(pki, dns_names=["kafka"])
    assert issued.keystore == pki / "kafka" / "broker.pem"
    assert stat.S_IMODE(issued.keystore.stat().st_mode) == 0o640
    assert stat.S_IMODE(issued.keystore.parent.stat().st_mode) == 0o750
    assert issued.truststore.read_bytes() == (pki / "ca.crt").read_bytes()
    pem = issued.keystore.read_bytes()
    key = load_pem_private_key(pem, password=None)  # PKCS#8, as Kafka's PEM keystore needs
    chain = x509.load_pem_x509_certificates(pem)
    ca = x509.load_pem_x509_certificate((pki / "ca.crt").read_bytes())
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert chain[0].public_key() == key.public_key()
    chain[0].verify_directly_issued_by(ca)
    assert chain[1] == ca
    common_name = chain[0].subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert common_name == BROKER_PRINCIPAL
    names = chain[0].extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"kafka", "localhost"} <= set(names.get_values_for_type(x509.DNSName))
    assert broker_tls_current(issued.keystore.parent, ["kafka"])
    assert not broker_tls_current(issued.keystore.parent, ["kafka", "kafka.v2v.svc"])


def test_each_service_writes_only_its_own_topic_and_reads_its_facts_feed() -> None:
    feeds: dict[str, tuple[str, ...]] = {
        "intake": (),  # intake learns nothing from Kafka
        "manufacturing": MANUFACTURING_FEED.contexts,
        "logistics": LOGISTICS_FEED.contexts,
        "release": RELEASE_FEED.contexts,
        "infusion": INFUSION_FEED.contexts,
    }
    for context in CONTEXTS:
        access = ACCESS[context]
        assert access.writes == (context,)
        assert set(access.reads) == set(feeds[context]), context
    for reader in ("projection", "audit"):
        assert (ACCESS[reader].writes, set(ACCESS[reader].reads)) == ((), set(CONTEXTS))


def test_the_acl_entries_of_a_service() -> None:
    assert acl_entries("release", ACCESS["release"]) == {
        ("TOPIC", "v2v.", "PREFIXED", "DESCRIBE"),
        ("TOPIC", topic_for("release"), "LITERAL", "WRITE"),
        ("TOPIC", topic_for("manufacturing"), "LITERAL", "READ"),
        ("TOPIC", topic_for("intake"), "LITERAL", "READ"),
        ("GROUP", "v2v-release-", "PREFIXED", "READ"),
        ("TOPIC", CHECKPOINT_TOPIC, "LITERAL", "WRITE"),  # its signed checkpoints (issue 15)
    }
    assert ("GROUP", "v2v-projection", "PREFIXED", "READ") in acl_entries(
        "projection", ACCESS["projection"]
    )


def test_every_service_writes_checkpoints_and_the_verifiers_read_them() -> None:
    for context in CONTEXTS:
        entries = acl_entries(context, ACCESS[context])
        assert ("TOPIC", CHECKPOINT_TOPIC, "LITERAL", "WRITE") in entries, context
        assert ("TOPIC", CHECKPOINT_TOPIC, "LITERAL", "READ") not in entries, context
    for reader in ("projection", "audit"):
        entries = acl_entries(reader, ACCESS[reader])
        assert ("TOPIC", CHECKPOINT_TOPIC, "LITERAL", "READ") in entries, reader
        assert not [e for e in entries if e[3] == "WRITE"], reader


def test_provisioning_reads_one_password_per_principal(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("V2V_KAFKA_BOOTSTRAP", "kafka:9092")
    monkeypatch.setenv("V2V_KAFKA_PASSWORD_INTAKE", "intake-pw")
    secret = tmp_path / "release"
    secret.write_text("release-pw\n")
    monkeypatch.setenv("V2V_KAFKA_PASSWORD_RELEASE_FILE", str(secret))
    settings = load_settings(ProvisionSettings)
    assert settings.passwords() == {"intake": "intake-pw", "release": "release-pw"}
