"""The chain's facts in the field's standards: GS1 EPCIS 2.0 JSON-LD (`epcis.py`, served by
`epcis_http.py`, written by `v2v audit epcis`); see docs/standards.md."""
