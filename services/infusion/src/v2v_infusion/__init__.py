"""v2v infusion service: receipt, storage, thaw, two-person bedside verification, infusion,
adverse events, and e-signed acknowledgement of post-release failure alerts."""
