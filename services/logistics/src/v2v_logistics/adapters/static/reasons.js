// Every refusal reason of the courier API, in words a courier acts on.

const SENTENCES = {
  "check-character-mismatch":
    "STOP — this label's check character does not match its number. Do not take this bag; call the dispatcher.",
  "flags-mismatch":
    "STOP — this label's flags are not those of the bag on the manifest. Do not take it; call the dispatcher.",
  "unknown-unit": "STOP — this label is not a unit we know. Do not take it; call the dispatcher.",
  "other-coi": "STOP — this bag belongs to another patient (other COI). Do not take it.",
  "extra-unit":
    "STOP — this bag is not on this shipment's manifest. Do not take it; call the dispatcher.",
  "duplicate-scan": "STOP — this bag was already scanned for this handoff. Scan the next bag.",
  "wrong-custodian":
    "STOP — the box is not being handed over by its current custodian. " +
    "Check who hands it over ('Handed over by').",
  "wrong-state": "STOP — this shipment cannot be handed over in its current state.",
  "malformed-label": "STOP — this is not a readable unit label. Scan again or type the number.",
  "missing-unit": "STOP — not every bag on the manifest has been scanned. Do not leave yet.",
  "not-offered":
    "STOP — the holder has not handed this shipment over to you yet. " +
    "Ask them to hand it over on their phone or system first.",
  "not-a-party":
    "STOP — this shipment cannot be handed to that party. Hand it only to its " +
    "destination or its assigned courier.",
  "window-breached":
    "STOP — the product's stability window has been exceeded. Do not continue; " +
    "call the dispatcher.",
  "unauthenticated": "STOP — your courier login is no longer valid. Log in again.",
  "invalid-request": "STOP — the app sent an incomplete request. Try again.",
};

export function sentenceFor(reasonCode, detail) {
  return SENTENCES[reasonCode] ?? `STOP — refused: ${detail || reasonCode || "unknown reason"}.`;
}

export function reasonOf(problem, status) {
  if (status === 401) return "unauthenticated";
  if (problem && problem.reason_code) return problem.reason_code;
  if (status === 422) return "invalid-request";
  return "";
}
