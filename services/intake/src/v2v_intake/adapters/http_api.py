"""The intake HTTP API (FastAPI) over the same application as gRPC.

Sites authenticate with a consortium-signed bearer token; errors are problem+json (a failed
re-authentication of a label scan's person: 401). Every route declares the access of its gRPC
twin (`grpc_api.ACCESS`) and requires its roles.
No ``from __future__ import annotations`` here: FastAPI must resolve the dependency
annotations, which refer to variables local to ``create_http_app``.
"""

from datetime import date, datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Response
from pydantic import AwareDatetime, BaseModel, Field

from v2v_intake.adapters.grpc_api import ACCESS
from v2v_intake.application import IntakeApplication
from v2v_intake.domain.therapy import MAX_UNITS_PER_LABELLING
from v2v_intake.domain.values import PersonalDetails
from v2v_intake.views import CollectionInput, PackagingInput, TherapyView
from v2v_platform.access_policy import Relation, reads
from v2v_platform.attribution import Attribution
from v2v_platform.auth import CallerIdentity, Role
from v2v_platform.esign.persons import requested
from v2v_platform.http_api import (
    Finite,
    FreeText,
    IdText,
    NameText,
    Password,
    SiteTokenVerifier,
    create_app,
    require_roles,
)
from v2v_platform.labels.service import PDF_RESPONSES, pdf_response
from v2v_platform.proto_values import attribution
from v2v_platform.scope import Scope


class OperatorBody(BaseModel):
    user_id: IdText
    printed_name: NameText


class PersonalDetailsBody(BaseModel):
    given_name: NameText
    family_name: NameText
    mrn: IdText
    birth_date: date


class EnrolBody(BaseModel):
    operator: OperatorBody
    patient_pseudonym: IdText
    personal_details: PersonalDetailsBody
    treating_site_id: IdText
    enrolled_at: datetime | None = None


class EraseBody(BaseModel):
    operator: OperatorBody
    reason: FreeText


class BookSlotBody(BaseModel):
    """`booked_at`: when the booking was made (clinical time; default now)."""

    operator: OperatorBody
    manufacturing_site_id: IdText
    slot_date: date
    booked_at: datetime | None = None


class CollectionBody(BaseModel):
    operator: OperatorBody
    started_at: datetime
    ended_at: datetime
    volume_ml: Finite
    total_nucleated_cells_e9: Finite
    cd3_cells_e9: Finite
    slot_id: IdText = ""


class LabelBody(BaseModel):
    operator: OperatorBody
    count: int = Field(ge=1, le=MAX_UNITS_PER_LABELLING)
    unit_kind: IdText = "apheresis-bag"
    labelled_at: datetime | None = None


class ESignature(BaseModel):
    """A person's re-authentication (the password is never stored or logged)."""

    user_id: IdText
    password: Password
    meaning: IdText


class ScanBody(BaseModel):
    """Scanned labels as read: a refusal records and repeats at most 256 characters of each.
    `signature`: the scanning person's re-authentication (meaning "verification"); the
    operator must be that person. `scanned_at`: when the label was scanned (clinical time;
    default now)."""

    operator: OperatorBody
    scanned_din: str
    scanned_coi: str
    signature: ESignature
    scanned_at: datetime | None = None


class PackageBody(BaseModel):
    operator: OperatorBody
    condition: IdText
    temperature_c: Finite
    manufacturing_site_id: IdText
    frozen_at: datetime | None = None
    packaged_at: datetime | None = None


UNIT_LABEL = reads(Relation.OWN_SITE, Role.COLLECTION)
"""A bag's label: printed by the site that labelled it (any other: 404, as if absent)."""


def acting(
    method: str, operator: OperatorBody, caller: CallerIdentity, reason: str = ""
) -> Attribution:
    """The acting operator of `method`; site and role from the caller's token."""
    roles = sorted(ACCESS[method].roles)
    return attribution(caller, roles, operator.user_id, operator.printed_name, reason)


def declared(method: str) -> dict[str, Any]:
    """The route's `openapi_extra`: its gRPC twin's access."""
    return ACCESS[method].openapi()


def create_http_app(app: IntakeApplication, verifier: SiteTokenVerifier) -> FastAPI:
    api = create_app("v2v intake", "1", "Enrolment, COI, slots, collections, labels, packaging")

    def caller_for(method: str) -> Any:
        return require_roles(lambda: verifier, *sorted(ACCESS[method].roles))

    Enroller = Annotated[CallerIdentity, Depends(caller_for("EnrolPatient"))]
    Reading = Annotated[CallerIdentity, Depends(caller_for("GetPatient"))]
    Eraser = Annotated[CallerIdentity, Depends(caller_for("ErasePersonalDetails"))]
    Booker = Annotated[CallerIdentity, Depends(caller_for("BookSlot"))]
    Collector = Annotated[CallerIdentity, Depends(caller_for("RecordCollection"))]
    Labeller = Annotated[CallerIdentity, Depends(caller_for("LabelUnits"))]
    Verifier = Annotated[CallerIdentity, Depends(caller_for("VerifyLabel"))]
    Packager = Annotated[CallerIdentity, Depends(caller_for("PackageUnit"))]
    LabelPrinter = Annotated[
        CallerIdentity, Depends(require_roles(lambda: verifier, *sorted(UNIT_LABEL.roles)))
    ]

    @api.post("/v1/therapies", status_code=201, openapi_extra=declared("EnrolPatient"))
    def enrol_patient(body: EnrolBody, caller: Enroller) -> dict[str, str]:
        d = body.personal_details
        details = PersonalDetails(d.given_name, d.family_name, d.mrn, d.birth_date)
        by = acting("EnrolPatient", body.operator, caller)
        treating = body.treating_site_id
        coi = app.enrol_patient(body.patient_pseudonym, details, treating, by, body.enrolled_at)
        return {"coi": coi}

    @api.get("/v1/therapies/{coi}", openapi_extra=declared("GetPatient"))
    def get_patient(coi: str, caller: Reading) -> TherapyView:
        return app.get_patient(coi, Scope.of(caller))

    @api.post(
        "/v1/therapies/{coi}/erasure",
        status_code=204,
        openapi_extra=declared("ErasePersonalDetails"),
    )
    def erase_personal_details(coi: str, body: EraseBody, caller: Eraser) -> None:
        by = acting("ErasePersonalDetails", body.operator, caller, body.reason)
        app.erase_personal_details(coi, by)

    @api.post("/v1/therapies/{coi}/slots", status_code=201, openapi_extra=declared("BookSlot"))
    def book_slot(coi: str, body: BookSlotBody, caller: Booker) -> dict[str, str]:
        by = acting("BookSlot", body.operator, caller)
        slot_id, site, day = app.book_slot(
            coi, body.manufacturing_site_id, body.slot_date, by, body.booked_at
        )
        return {"slot_id": slot_id, "manufacturing_site_id": site, "slot_date": day.isoformat()}

    @api.post(
        "/v1/therapies/{coi}/collections",
        status_code=201,
        openapi_extra=declared("RecordCollection"),
    )
    def record_collection(coi: str, body: CollectionBody, caller: Collector) -> dict[str, str]:
        values = CollectionInput(
            body.started_at,
            body.ended_at,
            body.volume_ml,
            body.total_nucleated_cells_e9,
            body.cd3_cells_e9,
            body.slot_id,
        )
        by = acting("RecordCollection", body.operator, caller)
        return {"collection_id": app.record_collection(coi, values, by)}

    @api.post(
        "/v1/therapies/{coi}/collections/{collection_id}/units",
        status_code=201,
        openapi_extra=declared("LabelUnits"),
    )
    def label_units(
        coi: str, collection_id: str, body: LabelBody, caller: Labeller
    ) -> dict[str, list[str]]:
        by = acting("LabelUnits", body.operator, caller)
        labelling = body.count, body.unit_kind, by, body.labelled_at
        return {"dins": app.label_units(coi, collection_id, *labelling)}

    @api.post("/v1/therapies/{coi}/units/{din}/scans", openapi_extra=declared("VerifyLabel"))
    def verify_label(coi: str, din: str, body: ScanBody, caller: Verifier) -> dict[str, bool]:
        by = acting("VerifyLabel", body.operator, caller)
        given = body.signature
        password = given.password.get_secret_value()
        proof = requested(given.user_id, password, given.meaning)
        scanned = body.scanned_din, body.scanned_coi
        return {"verified": app.verify_label(coi, din, *scanned, proof, by, body.scanned_at)}

    @api.post("/v1/therapies/{coi}/units/{din}/packaging", openapi_extra=declared("PackageUnit"))
    def package_unit(
        coi: str, din: str, body: PackageBody, caller: Packager
    ) -> dict[str, datetime]:
        packaging = PackagingInput(
            body.condition,
            body.temperature_c,
            body.manufacturing_site_id,
            body.frozen_at,
            body.packaged_at,
        )
        window = app.package_unit(coi, din, packaging, acting("PackageUnit", body.operator, caller))
        return {"window_starts_at": window}

    @api.get(
        "/v1/therapies/{coi}/units/{din}/label.pdf",
        response_class=Response,
        responses=PDF_RESPONSES,
        openapi_extra=UNIT_LABEL.openapi(),
    )
    def unit_label(
        coi: str,
        din: str,
        caller: LabelPrinter,
        product_code: IdText | None = None,
        expires_at: AwareDatetime | None = None,
    ) -> Response:
        """The bag's ISBT 128 label (PDF, 100 x 100 mm): DIN with flags and check character,
        COI, the product code (one this site loaded: V2V_PRODUCT_CODES_FILE) and expiry when
        given, a Code 128 per data structure and a DataMatrix with all of them."""
        label = app.unit_label(coi, din, Scope.of(caller), product_code, expires_at)
        return pdf_response(label)

    return api
