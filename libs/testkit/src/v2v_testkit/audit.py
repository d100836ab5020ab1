"""Test support for the audit tools (`v2v audit`) and the projection: a synthetic history laid
out as Kafka would hold it (partitions, offsets) and as a history file, a key-ring-only PKI
folder, a PKI's ring extended with a synthetic history's keys, and one hand-written chain
with what unrelated sites may try on it (who may see a chain)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from v2v.common.v1 import common_pb2
from v2v.infusion.events.v1 import events_pb2 as infusion
from v2v.intake.events.v1 import events_pb2 as intake
from v2v.logistics.events.v1 import events_pb2 as logistics
from v2v.manufacturing.events.v1 import events_pb2 as manufacturing
from v2v.release.events.v1 import events_pb2 as release
from v2v_platform.auth.tls import KEY_RING_FILE
from v2v_platform.checkpoints.envelopes import CHECKPOINT_TOPIC
from v2v_platform.envelope.codec import decode
from v2v_platform.envelope.keys import KeyRing
from v2v_projection.audit.sources import partition_for
from v2v_projection.history_file import Extent, HistoryHeader, HistoryRecord
from v2v_testkit.synthetic.envelopes import EnvelopeWriter

GENERATED_AT = "2025-01-01T00:00:00+00:00"


def partitioned(
    by_topic: Mapping[str, Sequence[bytes]], partitions: int = 3
) -> tuple[HistoryHeader, list[HistoryRecord]]:
    """Each topic's envelopes spread over `partitions` by COI key (as the relay's producer
    does; checkpoints by their site id, their record key), offsets from 0 in publication
    order; extents are exactly the records."""
    extents: list[Extent] = []
    records: list[HistoryRecord] = []
    for topic in sorted(by_topic):
        lanes: list[list[bytes]] = [[] for _ in range(partitions)]
        for value in by_topic[topic]:
            envelope = decode(value)
            key = envelope.site_id if topic == CHECKPOINT_TOPIC else envelope.coi
            lanes[partition_for(key, partitions)].append(value)
        for partition, values in enumerate(lanes):
            extents.append(Extent(topic, partition, 0, len(values)))
            records += [HistoryRecord(topic, partition, o, v) for o, v in enumerate(values)]
    return HistoryHeader(GENERATED_AT, "generated", extents), records


def write_key_ring(directory: Path, keys: KeyRing) -> Path:
    """A PKI-directory-shaped folder holding only the key ring (what `verify --keys` reads)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / KEY_RING_FILE).write_text(keys.to_json() + "\n")
    return directory


def trust_keys(pki_dir: Path, keys: KeyRing) -> Path:
    """Add `keys` (e.g. a generated history's, with their sites' roles) to the key ring of the
    PKI in `pki_dir`, so its consumers verify that history; the PKI's own keys stay. A site in
    both must hold the same roles in both."""
    path = pki_dir / KEY_RING_FILE
    entries = {entry["key_id"]: entry for entry in json.loads(path.read_text())["keys"]}
    for entry in json.loads(keys.to_json())["keys"]:
        entries.setdefault(entry["key_id"], entry)
    merged = KeyRing.from_json(json.dumps({"keys": list(entries.values())}))
    temporary = path.with_suffix(".tmp")
    temporary.write_text(merged.to_json() + "\n")
    temporary.replace(path)
    return path


# One patient's chain by hand, and what unrelated sites may try on it (issue 13): the
# projection must show the chain to the sites the relationship facts name, and to no other.

PATIENT_SITE = "HOSP-A"  # enrols and treats
GMP_SITE = "GMP-B"  # the slot booked by HOSP-A, the batch
QC_SITE = "QC-B"  # the release of GMP-B's batch
CARRIER_SITE = "LOGI-1"  # the logistics site carrying both shipments
RELATED_SITES = (CARRIER_SITE, GMP_SITE, PATIENT_SITE, QC_SITE)
OTHER_HOSPITAL, OTHER_GMP, OTHER_QC = "HOSP-C", "GMP-D", "QC-D"  # related to nothing here
Topical = tuple[str, bytes]  # (topic, serialized envelope)


def _topic(context: str) -> str:
    return f"v2v.{context}.events.v1"


def _stamp(moment: datetime) -> Timestamp:
    value = Timestamp()
    value.FromDatetime(moment)
    return value


@dataclass
class HandWrittenChain:
    """Events of one COI written as its sites' services would publish them, signed by the
    generated keys of `writer` (its `keys` ring holds the sites' roles)."""

    writer: EnvelopeWriter
    coi: str
    start: datetime
    records: list[Topical] = field(default_factory=list)

    @property
    def bag(self) -> str:
        return f"A1234{self.coi[-8:]}01"

    @property
    def products(self) -> tuple[str, str]:
        return f"B2345{self.coi[-8:]}01", f"B2345{self.coi[-8:]}02"

    @property
    def batch_id(self) -> str:
        return f"batch-{self.coi}"

    def at(self, hours: float) -> datetime:
        return self.start + timedelta(hours=hours)

    def stamp(self, hours: float) -> Timestamp:
        return _stamp(self.at(hours))

    def add(
        self, context: str, aggregate: str, payload: Message, hours: float, site: str
    ) -> Topical:
        aggregate_id = f"{aggregate}:{self.coi}"
        value = self.writer.write(
            self.coi, aggregate_id, payload, self.at(hours), site=site, context=context
        )
        self.records.append((_topic(context), value))
        return self.records[-1]

    def values(self) -> list[bytes]:
        return [value for _, value in self.records]


def enrolled_to_infused(writer: EnvelopeWriter, coi: str, start: datetime) -> HandWrittenChain:
    """HOSP-A enrols (and treats) the patient and books a slot at GMP-B; LOGI-1 carries the
    bag to GMP-B, which makes a product that QC-B releases; LOGI-1 carries it back; HOSP-A
    receives and infuses it. Every relationship the projection derives visibility from."""
    chain = HandWrittenChain(writer, coi, start)
    bag, (product, _) = chain.bag, chain.products
    enrolled = intake.PatientEnrolled(
        coi=coi,
        patient_pseudonym="PSN-1",
        enrolling_site_id=PATIENT_SITE,
        treating_site_id=PATIENT_SITE,
    )
    chain.add("intake", "Therapy", enrolled, 0, PATIENT_SITE)
    slot = intake.SlotBooked(coi=coi, manufacturing_site_id=GMP_SITE, slot_id="S-1")
    chain.add("intake", "Therapy", slot, 0.5, PATIENT_SITE)
    booked = manufacturing.SlotBooked(
        coi=coi, manufacturing_site_id=GMP_SITE, slot_id="S-1", booking_site_id=PATIENT_SITE
    )
    chain.add("manufacturing", "Slot", booked, 0.5, GMP_SITE)
    labelled = intake.UnitLabelled(coi=coi, collection_id="c-1", din=bag, unit_kind="apheresis-bag")
    chain.add("intake", "Therapy", labelled, 1, PATIENT_SITE)
    ship(chain, "Shipment", [bag], PATIENT_SITE, GMP_SITE, 2)
    received = manufacturing.UnitReceived(
        coi=coi, din=bag, manufacturing_site_id=GMP_SITE, received_at=chain.stamp(8)
    )
    chain.add("manufacturing", "ReceivedUnit", received, 8, GMP_SITE)
    started = manufacturing.BatchStarted(
        coi=coi,
        batch_id=chain.batch_id,
        manufacturing_site_id=GMP_SITE,
        input_dins=[bag],
        started_at=chain.stamp(10),
    )
    chain.add("manufacturing", "Batch", started, 10, GMP_SITE)
    made = manufacturing.ProductUnitsCreated(
        coi=coi,
        batch_id=chain.batch_id,
        product_dins=list(chain.products),
        input_dins=[bag],
        hold_condition=common_pb2.CONDITION_FRESH_COLD,
        created_at=chain.stamp(100),
    )
    chain.add("manufacturing", "Batch", made, 100, GMP_SITE)
    opened = release.BatchReleaseOpened(
        coi=coi,
        batch_id=chain.batch_id,
        manufacturing_site_id=GMP_SITE,
        product_dins=list(chain.products),
    )
    chain.add("release", "BatchRelease", opened, 101, QC_SITE)
    signature = common_pb2.SignatureManifestation(
        user_id="u-qp",
        printed_name="Dr. Quinn Person",
        meaning="approval",
        signed_at=chain.stamp(110),
    )
    certified = release.ProvisionallyCertified(
        coi=coi,
        batch_id=chain.batch_id,
        product_dins=list(chain.products),
        certified_at=chain.stamp(110),
        qp_signature=signature,
        spec_version="v1",
    )
    chain.add("release", "BatchRelease", certified, 110, QC_SITE)
    ship(chain, "ProductShipment", [product], GMP_SITE, PATIENT_SITE, 111)
    receive(chain, PATIENT_SITE, product, 120)
    infuse(chain, PATIENT_SITE, product, 125)
    return chain


def ship(
    chain: HandWrittenChain,
    aggregate: str,
    dins: list[str],
    origin: str,
    destination: str,
    hours: float,
) -> None:
    """A shipment the carrier (LOGI-1) created for `origin` and delivered to `destination`."""
    shipment_id = f"{aggregate.lower()}-{chain.coi}"
    created = logistics.ShipmentCreated(
        coi=chain.coi,
        shipment_id=shipment_id,
        manifest_dins=dins,
        origin_site_id=origin,
        destination_site_id=destination,
        custodian=f"site:{origin}",
        assigned_courier_id="C-17",
        created_at=chain.stamp(hours),
    )
    chain.add("logistics", aggregate, created, hours, CARRIER_SITE)
    delivered = logistics.ShipmentDelivered(
        coi=chain.coi,
        shipment_id=shipment_id,
        from_party=f"site:{origin}",
        destination_site_id=destination,
        received_at=chain.stamp(hours + 5),
    )
    chain.add("logistics", aggregate, delivered, hours + 5, CARRIER_SITE)


def receive(chain: HandWrittenChain, site: str, din: str, hours: float) -> Topical:
    received = infusion.ProductReceived(
        coi=chain.coi,
        din=din,
        treating_site_id=site,
        batch_id=chain.batch_id,
        received_at=chain.stamp(hours),
    )
    return chain.add("infusion", f"ProductAtSite-{site}-{din}", received, hours, site)


def infuse(chain: HandWrittenChain, site: str, din: str, hours: float) -> Topical:
    administered = infusion.InfusionAdministered(
        coi=chain.coi, din=din, administered_at=chain.stamp(hours), release_basis="provisional"
    )
    return chain.add("infusion", f"ProductAtSite-{site}-{din}", administered, hours, site)


def refused_bedside_scan(chain: HandWrittenChain, site: str, hours: float) -> Topical:
    """A bedside scan refused at `site` against the chain's COI (e.g. a guessed one)."""
    mismatch = infusion.BedsideMismatchRecorded(
        coi=chain.coi,
        scanned_din=chain.products[0],
        wristband_coi=chain.coi,
        reason_code="coi-mismatch",
        scanned_at=chain.stamp(hours),
    )
    return chain.add("infusion", f"BedsideMismatch-{site}", mismatch, hours, site)


def unrelated_attempts(chain: HandWrittenChain) -> dict[str, Topical]:
    """What sites the chain does not relate to may publish naming its COI, each a fact that
    today's services could record (or a misbehaving site could sign), by name."""
    coi, (product, spare) = chain.coi, chain.products
    other_slot = manufacturing.SlotBooked(
        coi=coi, manufacturing_site_id=GMP_SITE, slot_id="S-9", booking_site_id=OTHER_HOSPITAL
    )
    foreign_slot = manufacturing.SlotBooked(
        coi=coi, manufacturing_site_id=OTHER_GMP, slot_id="S-8", booking_site_id=OTHER_HOSPITAL
    )
    intake_slot = intake.SlotBooked(coi=coi, manufacturing_site_id=OTHER_GMP, slot_id="S-7")
    enrolment_claim = intake.PatientEnrolled(
        coi=coi,
        patient_pseudonym="PSN-X",
        enrolling_site_id=PATIENT_SITE,
        treating_site_id=OTHER_HOSPITAL,
    )
    foreign_batch = manufacturing.BatchStarted(
        coi=coi,
        batch_id=f"other-{chain.batch_id}",
        manufacturing_site_id=OTHER_GMP,
        input_dins=[chain.bag],
        started_at=chain.stamp(12),
    )
    foreign_release = release.BatchReleaseOpened(
        coi=coi,
        batch_id=f"other-{chain.batch_id}",
        manufacturing_site_id=OTHER_GMP,
        product_dins=[product],
    )
    foreign_shipment = logistics.ShipmentCreated(
        coi=coi,
        shipment_id=f"stolen-{coi}",
        manifest_dins=[spare],
        origin_site_id=OTHER_HOSPITAL,
        destination_site_id=OTHER_GMP,
        custodian=f"site:{OTHER_HOSPITAL}",
        created_at=chain.stamp(130),
    )
    received_elsewhere = infusion.ProductReceived(
        coi=coi, din=spare, treating_site_id=OTHER_HOSPITAL, received_at=chain.stamp(131)
    )
    return {
        "refused bedside scan": refused_bedside_scan(chain, OTHER_HOSPITAL, 126),
        "slot booked at the chain's GMP by another hospital": chain.add(
            "manufacturing", "Slot-S-9", other_slot, 3, GMP_SITE
        ),
        "slot booked at another GMP by another hospital": chain.add(
            "manufacturing", "Slot-S-8", foreign_slot, 3, OTHER_GMP
        ),
        "slot booked by another hospital's intake": chain.add(
            "intake", "Therapy-HOSP-C", intake_slot, 3, OTHER_HOSPITAL
        ),
        "enrolment claimed by another hospital": chain.add(
            "intake", "Therapy-claim", enrolment_claim, 0.1, OTHER_HOSPITAL
        ),
        "batch at another GMP": chain.add(
            "manufacturing", "Batch-other", foreign_batch, 12, OTHER_GMP
        ),
        "release of the other GMP's batch": chain.add(
            "release", "BatchRelease-QC-D", foreign_release, 102, OTHER_QC
        ),
        "shipment from another hospital": chain.add(
            "logistics", "Shipment-stolen", foreign_shipment, 130, CARRIER_SITE
        ),
        "receipt at another hospital": chain.add(
            "infusion", f"ProductAtSite-{OTHER_HOSPITAL}", received_elsewhere, 131, OTHER_HOSPITAL
        ),
    }
