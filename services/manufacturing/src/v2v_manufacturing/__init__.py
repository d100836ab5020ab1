"""v2v manufacturing service: slot calendars, unit receipt, batches, process steps and lineage."""
