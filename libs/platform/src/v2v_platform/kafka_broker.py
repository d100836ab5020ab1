"""What an authenticated, encrypted Kafka broker for v2v needs, made one way for docker compose,
the Helm chart and the integration test:

- `issue_broker_tls`: the broker's TLS certificate, issued by the consortium CA (the CA every
  service already trusts: V2V_KAFKA_SSL_CAFILE=<pki>/ca.crt), written as Kafka's PEM keystore
  `broker.pem` (PKCS#8 key + certificate chain) beside `ca.crt`, its truststore;
- `ACCESS`: who may do what. Each service's principal (its SCRAM user, named after its context)
  may write only its own topic v2v.<context>.events.v1, read the topics of its facts feed
  (`adapters/facts_projection.py`, FACTS_FEED contexts) with its consumer groups
  (v2v-<context>-...), write its signed checkpoints to v2v.checkpoints.v1, and describe every
  v2v topic (the relay checks that all six exist with the same partition count); the
  projection and the auditor's export read all five and the checkpoints; nobody else may do
  anything (StandardAuthorizer, allow.everyone.if.no.acl.found=false);
- `provision`: creates the topics, sets each service's SCRAM-SHA-512 credential and makes the
  ACLs exactly `ACCESS` (creating what is missing, deleting what is not in it), as the super user.

    python -m v2v_platform.kafka_broker tls --pki DIR [--out DIR] [--dns NAME ...]
    python -m v2v_platform.kafka_broker provision      (settings from V2V_* variables)
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID
from pydantic import SecretStr, field_validator

from v2v_platform.auth.pki import DEFAULT_SITE_VALIDITY_DAYS, PkiError, leaf_builder, load_ca
from v2v_platform.auth.tls import CA_CERT_FILE
from v2v_platform.checkpoints.envelopes import CHECKPOINT_TOPIC
from v2v_platform.config import KafkaSettings, load_or_exit
from v2v_platform.envelope.headers import CONTEXTS, topic_for
from v2v_platform.kafka_security import client_options

log = logging.getLogger(__name__)

BROKER_PRINCIPAL = "kafka-broker"
"""The CN of the broker's certificate: its principal on the TLS controller listener (a super
user, with the SCRAM user `admin` the operator provisions with)."""
KAFKA_DIR = "kafka"
KEYSTORE_FILE = "broker.pem"
TRUSTSTORE_FILE = "ca.crt"
KEYSTORE_MODE = 0o640  # the broker runs as another user of the PKI files' group
DIRECTORY_MODE = 0o750
SCRAM_MECHANISM = "SCRAM-SHA-512"
TOPIC_PREFIX = "v2v."


@dataclass(frozen=True)
class Access:
    """What one principal may do: write `writes`' topics, read `reads`' topics (with groups
    starting `group_prefix`), write or read the checkpoints topic (`checkpoints`), describe
    every v2v topic."""

    writes: tuple[str, ...]
    reads: tuple[str, ...]
    group_prefix: str | None
    checkpoints: Literal["WRITE", "READ"] | None = None


ACCESS: Mapping[str, Access] = {
    "intake": Access(("intake",), (), None, "WRITE"),
    "manufacturing": Access(
        ("manufacturing",), ("intake", "manufacturing"), "v2v-manufacturing-", "WRITE"
    ),
    "logistics": Access(("logistics",), ("intake", "manufacturing"), "v2v-logistics-", "WRITE"),
    "release": Access(("release",), ("manufacturing", "intake"), "v2v-release-", "WRITE"),
    "infusion": Access(
        ("infusion",),
        ("manufacturing", "release", "intake", "infusion", "logistics"),
        "v2v-infusion-",
        "WRITE",
    ),
    "projection": Access((), CONTEXTS, "v2v-projection", "READ"),
    "audit": Access((), CONTEXTS, None, "READ"),
}
"""Principal (SCRAM user) -> its access. The services' groups are v2v-<context>-<site>-<name>
(`service_runtime`), the projection's V2V_CONSUMER_GROUP (default v2v-projection); the audit
export reads without a group. Every service's relay writes its signed checkpoints (issue 15)
to v2v.checkpoints.v1, which the projection (the verifier) and the audit export read."""


# ---------------------------------------------------------------- TLS material


@dataclass(frozen=True)
class BrokerTls:
    keystore: Path
    truststore: Path
    not_after: datetime.datetime


def issue_broker_tls(
    pki_dir: Path,
    out_dir: Path | None = None,
    dns_names: Sequence[str] = (),
    days: int = DEFAULT_SITE_VALIDITY_DAYS,
) -> BrokerTls:
    """A new key and certificate for the broker (CN kafka-broker; SAN `dns_names`, localhost,
    127.0.0.1 and ::1; server and client auth), signed by the consortium CA of `pki_dir`, into
    `out_dir` (default <pki>/kafka): broker.pem (key + certificate + CA, mode 0640) and ca.crt."""
    ca = load_ca(pki_dir)
    out = out_dir or pki_dir / KAFKA_DIR
    out.mkdir(mode=DIRECTORY_MODE, parents=True, exist_ok=True)
    out.chmod(DIRECTORY_MODE)
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [
        x509.DNSName(name) for name in dict.fromkeys([*dns_names, "localhost"])
    ]
    names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ("127.0.0.1", "::1")]
    ca_ski = ca.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        leaf_builder(ca, key, BROKER_PRINCIPAL, days)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
        .sign(ca.key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    keystore = key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    keystore += cert.public_bytes(pem) + ca.cert.public_bytes(pem)
    keystore_path, truststore_path = out / KEYSTORE_FILE, out / TRUSTSTORE_FILE
    _write(keystore_path, keystore, KEYSTORE_MODE)
    _write(truststore_path, (pki_dir / CA_CERT_FILE).read_bytes(), 0o644)
    return BrokerTls(keystore_path, truststore_path, cert.not_valid_after_utc)


def _write(path: Path, data: bytes, mode: int) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode & 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)
    temporary.chmod(mode)
    temporary.replace(path)


def broker_tls_current(out_dir: Path, dns_names: Iterable[str]) -> bool:
    """Whether out_dir holds a broker certificate valid for another 30 days that names all
    of `dns_names` (then the `tls` command keeps it)."""
    keystore = out_dir / KEYSTORE_FILE
    if not keystore.is_file() or not (out_dir / TRUSTSTORE_FILE).is_file():
        return False
    try:
        cert = x509.load_pem_x509_certificate(keystore.read_bytes())
    except ValueError:
        return False
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    named = set(names.get_values_for_type(x509.DNSName))
    soon = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=30)
    return set(dns_names) <= named and cert.not_valid_after_utc > soon


# ---------------------------------------------------------------- ACLs


def acl_entries(principal: str, access: Access) -> set[tuple[str, str, str, str]]:
    """(resource type, name, pattern type, operation) allowed to `principal`, all hosts."""
    entries = {("TOPIC", TOPIC_PREFIX, "PREFIXED", "DESCRIBE")}
    entries |= {("TOPIC", topic_for(context), "LITERAL", "WRITE") for context in access.writes}
    entries |= {("TOPIC", topic_for(context), "LITERAL", "READ") for context in access.reads}
    if access.checkpoints:
        entries.add(("TOPIC", CHECKPOINT_TOPIC, "LITERAL", access.checkpoints))
    if access.group_prefix:
        entries.add(("GROUP", access.group_prefix, "PREFIXED", "READ"))
    return entries


def _acl(principal: str, entry: tuple[str, str, str, str]) -> Any:
    from kafka.admin import (
        ACL,
        ACLOperation,
        ACLPermissionType,
        ACLResourcePatternType,
        ResourcePattern,
        ResourceType,
    )

    resource_type, name, pattern_type, operation = entry
    pattern = ResourcePattern(
        ResourceType[resource_type], name, ACLResourcePatternType[pattern_type]
    )
    return ACL(f"User:{principal}", "*", ACLOperation[operation], ACLPermissionType.ALLOW, pattern)


def _entry(acl: Any) -> tuple[str, str, str, str] | None:
    """The entry an existing ACL grants; None for one `acl_entries` never makes (a DENY, a
    single host)."""
    if acl.permission_type.name != "ALLOW" or acl.host != "*":
        return None
    pattern = acl.resource_pattern
    return (
        pattern.resource_type.name,
        pattern.resource_name,
        pattern.pattern_type.name,
        acl.operation.name,
    )


def _existing(admin: Any, principal: str) -> list[Any]:
    from kafka.admin import (
        ACLFilter,
        ACLOperation,
        ACLPermissionType,
        ACLResourcePatternType,
        ResourcePatternFilter,
        ResourceType,
    )

    query = ACLFilter(
        principal=f"User:{principal}",
        host=None,
        operation=ACLOperation.ANY,
        permission_type=ACLPermissionType.ANY,
        resource_pattern=ResourcePatternFilter(ResourceType.ANY, None, ACLResourcePatternType.ANY),
    )
    acls, _ = admin.describe_acls(query)  # an error response raises
    return list(acls)


def converge_acls(admin: Any, access: Mapping[str, Access] = ACCESS) -> dict[str, int]:
    """Make each principal's ACLs exactly `access` (create missing, delete the others).
    Returns the number of ACLs created and deleted."""
    created = deleted = 0
    for principal, granted in access.items():
        wanted = acl_entries(principal, granted)
        existing = _existing(admin, principal)
        have = {_entry(acl) for acl in existing}
        missing = [_acl(principal, entry) for entry in sorted(wanted - have)]
        extra = [acl for acl in existing if _entry(acl) not in wanted]
        if missing:
            result = admin.create_acls(missing)
            if result.get("failed"):
                raise ProvisioningFailed(f"ACLs of {principal} refused: {result['failed']}")
            created += len(missing)
        if extra:
            admin.delete_acls(extra)
            deleted += len(extra)
    return {"created": created, "deleted": deleted}


# ---------------------------------------------------------------- provisioning


class ProvisioningFailed(RuntimeError):
    """The broker refused part of the provisioning; the message says which."""


def set_credentials(admin: Any, passwords: Mapping[str, str]) -> None:
    """Upsert each user's SCRAM-SHA-512 credential (8192 iterations, a fresh salt)."""
    from kafka.admin import UserScramCredentialUpsertion

    if not passwords:
        return
    upserts = [
        UserScramCredentialUpsertion(user, SCRAM_MECHANISM, password, iterations=8192)
        for user, password in sorted(passwords.items())
    ]
    failed = {u: e for u, e in admin.alter_user_scram_credentials(upserts).items() if e}
    if failed:
        raise ProvisioningFailed(f"SCRAM credentials refused: {failed}")


class ProvisionSettings(KafkaSettings):
    """`provision`'s settings: the super user's own client settings (V2V_KAFKA_BOOTSTRAP,
    V2V_KAFKA_SECURITY_PROTOCOL, ...), the topics' layout, and one password per principal
    (V2V_KAFKA_PASSWORD_<PRINCIPAL>, or ..._FILE; a principal without one keeps its
    credential as it is)."""

    kafka_password_intake: SecretStr | None = None
    kafka_password_manufacturing: SecretStr | None = None
    kafka_password_logistics: SecretStr | None = None
    kafka_password_release: SecretStr | None = None
    kafka_password_infusion: SecretStr | None = None
    kafka_password_projection: SecretStr | None = None
    kafka_password_audit: SecretStr | None = None
    kafka_password_intake_file: Path | None = None
    kafka_password_manufacturing_file: Path | None = None
    kafka_password_logistics_file: Path | None = None
    kafka_password_release_file: Path | None = None
    kafka_password_infusion_file: Path | None = None
    kafka_password_projection_file: Path | None = None
    kafka_password_audit_file: Path | None = None

    @field_validator(*(f"kafka_password_{principal}_file" for principal in ACCESS), mode="after")
    @classmethod
    def _readable(cls, value: Path | None) -> Path | None:
        if value is not None and not (value.is_file() and value.read_text().strip()):
            raise ValueError("no such file, or it is empty")
        return value

    def passwords(self) -> dict[str, str]:
        found: dict[str, str] = {}
        for principal in ACCESS:
            secret: SecretStr | None = getattr(self, f"kafka_password_{principal}")
            file: Path | None = getattr(self, f"kafka_password_{principal}_file")
            if secret is not None:
                found[principal] = secret.get_secret_value()
            elif file is not None:
                found[principal] = file.read_text().strip()
        return found


def provision(settings: ProvisionSettings) -> dict[str, int]:
    """Topics, SCRAM credentials and ACLs, as the super user `settings` authenticate as."""
    from kafka import KafkaAdminClient

    from v2v_platform.relay.publisher import ensure_topics
    from v2v_platform.relay.topics import V2V_TOPICS

    security = client_options(settings)
    ensure_topics(
        settings.kafka_bootstrap,
        V2V_TOPICS,
        settings.topic_partitions,
        settings.topic_replication_factor,
        **security,
    )
    admin = KafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap, client_id="v2v-provision", **security
    )
    try:
        passwords = settings.passwords()
        set_credentials(admin, passwords)
        counts = converge_acls(admin)
    finally:
        admin.close()
    return {**counts, "credentials": len(passwords)}


# ---------------------------------------------------------------- command line

app = typer.Typer(
    help="An authenticated, encrypted Kafka broker for v2v: its TLS material, the services'"
    " SCRAM users and ACLs.",
    no_args_is_help=True,
)


@app.command("tls")
def tls_command(
    pki: Annotated[Path, typer.Option("--pki", help="PKI directory with the consortium CA.")],
    out: Annotated[
        Path | None, typer.Option("--out", help="Where to write (default: <pki>/kafka).")
    ] = None,
    dns: Annotated[
        list[str] | None, typer.Option("--dns", help="A name clients dial (repeatable).")
    ] = None,
    days: Annotated[int, typer.Option("--days", min=1, max=3650)] = DEFAULT_SITE_VALIDITY_DAYS,
    force: Annotated[bool, typer.Option("--force", help="Re-issue even if current.")] = False,
) -> None:
    """Issue the broker's certificate from the consortium CA (kept when still current)."""
    target = out or pki / KAFKA_DIR
    names = dns or []
    if not force and broker_tls_current(target, names):
        typer.echo(f"broker TLS material in {target} is current; kept")
        return
    try:
        issued = issue_broker_tls(pki, target, names, days)
    except PkiError as error:
        raise typer.BadParameter(str(error), param_hint="'--pki'") from None
    typer.echo(
        f"broker keystore {issued.keystore}, truststore {issued.truststore},"
        f" valid until {issued.not_after:%Y-%m-%d}"
    )


@app.command("provision")
def provision_command() -> None:
    """Create the topics, set the services' SCRAM credentials and make the ACLs exactly the
    v2v access table (run as the super user; idempotent)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    counts = provision(load_or_exit(ProvisionSettings))
    typer.echo(
        f"provisioned: {counts['credentials']} credential(s) set, {counts['created']} ACL(s)"
        f" created, {counts['deleted']} deleted"
    )


if __name__ == "__main__":
    app()
