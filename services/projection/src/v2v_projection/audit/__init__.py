"""The auditor's tools (`v2v audit ...`): export the history from Kafka to a file, replay it
with the projection's fold, verify every hash chain, signature and offset, and report on one
chain as printable HTML."""
