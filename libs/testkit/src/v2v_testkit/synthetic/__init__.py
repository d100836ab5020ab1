"""Synthetic chains for the projection's tests, the audit tools' tests and the benchmarks:
signed, hash-chained envelopes of whole patient journeys through all five contexts, as the
relays would publish them (not the simulator, which drives the real services).

    chains.py         generate_history(seed, patients, rules=...): the whole history
    consortium.py     sites, couriers, named users, signing keys, conditions
    patient.py        Journey: one patient's chain while it is written
    collection.py     enrolment, slot, apheresis, labels, packaging
    shipping.py       shipments, custody handoffs, temperatures, window breaches
    manufacturing.py  receipt at the GMP site, the batch, product units
    release.py        QC results, certification, rejection, OOS, post-release results
    bedside.py        receipt at the treating site, thaw, bedside verification, infusion
    envelopes.py      EnvelopeWriter: hand-written envelopes with the same keys
    sealing.py        fast chaining and signing, byte-identical to the platform codec
"""
