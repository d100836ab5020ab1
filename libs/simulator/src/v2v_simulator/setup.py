"""What the consortium needs before the first patient, set up only when missing: the PKI
(CA, site certificates, signing keys, the DIN blocks each DIN-issuing service numbers from),
the e-signature signers in the services' own signer
stores, and the couriers' tokens (issued by the logistics site administrator's command, each
with the courier's password, which the courier signs in with once)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx

from v2v.common.v1.common_pb2 import Operator
from v2v_platform.auth.pki import init_pki, parse_site_spec, write_ring_roles
from v2v_platform.auth.tls import KEY_RING_FILE
from v2v_platform.din_allocation import declare_all
from v2v_platform.esign import Signer, SignerStore, hash_password, open_signer_store
from v2v_platform.processes import ServiceProcess
from v2v_simulator.consortium import COURIERS, SIGNING_PASSWORD, Consortium
from v2v_simulator.system import System, din_issuers

TOKENS_FILE = "courier-tokens.json"
COURIER_PASSWORD = "courier shift password"  # demo couriers only; never a real password


class SetupFailed(RuntimeError):
    """A set-up step failed; the message says which and why."""


def ensure_pki(pki: Path, consortium: Consortium) -> bool:
    """Create the PKI for every site unless it exists; True when it was created. An existing
    PKI gets its sites' certified roles written into its key ring (a ring made before it
    carried roles would make every consumer refuse every record as unauthorised). Either way
    every DIN-issuing service (intake, manufacturing) has its DIN block declared under its
    FIN (`din-allocations.json`; disjoint per FIN: an in-house site's two get two blocks)."""
    if (pki / KEY_RING_FILE).is_file():
        missing = [s for s in consortium.site_ids if not (pki / "sites" / s).is_dir()]
        if missing:
            raise SetupFailed(
                f"the PKI in {pki} has no material for {', '.join(missing)}; add the sites with"
                f" `v2v pki add-site --out {pki} --site ...` or start over with a new data dir"
            )
        write_ring_roles(pki)
        declare_all(pki, din_issuers(consortium))
        return False
    init_pki(pki, [parse_site_spec(spec) for spec in consortium.site_specs()])
    declare_all(pki, din_issuers(consortium))
    return True


def open_store(process: ServiceProcess) -> SignerStore:
    """The signer store of a running (or defined) service, from its store settings."""
    dsn = process.env.get("V2V_POSTGRES_DSN")
    sqlite = process.env.get("V2V_SQLITE_PATH")
    return open_signer_store(dsn, Path(sqlite) if sqlite else None)


def ensure_signers(system: System) -> int:
    """QPs and treating physicians in the release stores; at each hospital its physician and
    its two nurses (bedside scans, infusion witness) in its infusion store and its two
    collection staff (label verification) in its intake store, each nurse and collector with
    their own password (added or re-registered: the same password, failures cleared).
    Returns how many."""
    consortium = system.consortium
    password_hash = hash_password(SIGNING_PASSWORD)

    def signer(site_id: str, who: Operator, role: str, hashed: str = password_hash) -> Signer:
        return Signer(site_id, who.user_id, who.printed_name, frozenset({role}), hashed)

    placed: list[Signer] = []
    for gmp in consortium.gmp_sites:
        store = open_store(system.service("release", gmp.site_id))
        signers = [signer(gmp.site_id, gmp.qp, "qp")]
        signers += [signer(h.site_id, h.physician, "physician") for h in consortium.hospitals]
        for each in signers:
            store.put(each)
        placed += signers
    for hospital in consortium.hospitals:
        site = hospital.site_id
        checking = hospital.checking_persons()
        doctor = signer(site, hospital.physician, "physician")
        for context in ("infusion", "intake"):
            signers = [doctor] if context == "infusion" else []
            signers += [
                signer(site, who, role, hash_password(hospital.password(who)))
                for who, role in checking[context]
            ]
            store = open_store(system.service(context, site))
            for each in signers:
                store.put(each)
            placed += signers
    return len(placed)


def issue_courier_token(logistics: ServiceProcess, courier_id: str, name: str, site: str) -> str:
    """`python -m v2v_logistics issue-courier-token` with the logistics service's settings."""
    command = [sys.executable, "-m", "v2v_logistics", "issue-courier-token"]
    command += ["--courier", courier_id, "--name", name, "--site", site, "--password-stdin"]
    done = subprocess.run(
        command,
        env={**os.environ, **logistics.env},
        input=f"{COURIER_PASSWORD}\n",
        capture_output=True,
        text=True,
        check=False,
    )
    token = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    if done.returncode != 0 or not token:
        raise SetupFailed(
            f"issue-courier-token for {courier_id} exited {done.returncode}: {done.stderr.strip()}"
        )
    return token


def ensure_courier_tokens(system: System, data_dir: Path) -> dict[str, str]:
    """A working token per courier: the stored ones the logistics service still accepts,
    new ones for the others (stored in `data_dir`, readable by the owner only)."""
    path = data_dir / TOKENS_FILE
    tokens: dict[str, str] = json.loads(path.read_text()) if path.is_file() else {}
    logistics = system.service("logistics", system.consortium.logistics_site)
    changed = False
    for courier_id, name in COURIERS:
        token = tokens.get(courier_id)
        if token is None or not _accepted(logistics, token):
            site = system.consortium.logistics_site
            token = issue_courier_token(logistics, courier_id, name, site)
            sign_in(logistics, courier_id, token)
            tokens[courier_id] = token
            changed = True
    if changed:
        path.write_text(json.dumps(tokens, indent=2))
        path.chmod(0o600)
    return tokens


def sign_in(logistics: ServiceProcess, courier_id: str, token: str) -> None:
    """The courier signs in with the new token and their password (as on the courier page)."""
    reply = httpx.post(
        f"{logistics.http_base}/v1/courier/login",
        headers={"Authorization": f"Bearer {token}"},
        json={"password": COURIER_PASSWORD},
        timeout=10,
    )
    if reply.status_code != 200:
        raise SetupFailed(f"courier {courier_id} could not sign in: {reply.status_code}")


def _accepted(logistics: ServiceProcess, token: str) -> bool:
    reply = httpx.get(
        f"{logistics.http_base}/v1/courier/me",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    return reply.status_code == 200
