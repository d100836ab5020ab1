"""Who a chain is visible to: the sites its RELATIONSHIP facts relate to its COI, never a site
merely because it authored something naming the COI (issue 13).

A site is related when
- it is the enrolling or the treating site of the COI's enrolment (`PatientEnrolled`, taken
  only from the enrolling site itself);
- a related site named it in a relationship fact: the GMP site of the enrolling site's slot
  booking (intake `SlotBooked`) or packaged unit (`UnitPackaged`); the GMP site that recorded
  a booking made by a related site (manufacturing `SlotBooked`: its `booking_site_id`, from
  the booking call's certificate, vouches for it; the booking site itself is never added); the
  destination and the carrier (the logistics site recording it) of a shipment created for a
  related origin (`ShipmentCreated`);
- it released a batch of the chain recorded by a related GMP site (the QC site of the batch:
  the author of its `BatchRelease*` records).

The treating site's infusion events add nobody; neither does a refusal (a mismatch), a
receipt, a batch, a delivery or anything else a site records about a COI it is not related
to. Relationship facts are links that hold once their voucher is related; the set is their
closure from the enrolment, computed after every fact is in, so it depends on the SET of facts
only, never on their order. Without an enrolment the chain is visible to auditors only.
"""

from __future__ import annotations

from v2v_projection.chain.builder import ChainBuilder, Link


def visible_sites(chain: ChainBuilder) -> set[str]:
    """The closure of the chain's links from its enrolment's sites."""
    related = set(chain.enrolments)
    pending = chain.links + release_links(chain)
    while pending:
        held = [link for link in pending if not related.isdisjoint(link.vouchers)]
        if not held:
            break
        pending = [link for link in pending if related.isdisjoint(link.vouchers)]
        for link in held:
            related.update(link.named)
    related.discard("")
    return related


def release_links(chain: ChainBuilder) -> list[Link]:
    """A release of one of the chain's batches relates its QC site through the batch's GMP."""
    return [
        Link(tuple(sorted(chain.batch_authors.get(batch_id, ()))), (site,))
        for batch_id, site in chain.releasers
    ]
