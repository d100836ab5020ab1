"""Plain-text phrases for parts of a chain view, shared by the terminal tables and the report."""

from __future__ import annotations

from typing import Any

Chain = dict[str, Any]


def release_statuses(chain: Chain, *, with_batch: bool = True) -> list[str]:
    return [
        f"{r['batch_id']}: {r['status']}" if with_batch else str(r["status"])
        for r in chain["releases"]
    ]


def infusion_status(chain: Chain) -> str | None:
    infusion = chain.get("infusion")
    return str(infusion["status"]) if infusion else None


def adverse_event(event: Any) -> str:
    """``crs grade 3, onset 2025-01-31T15:17:24+00:00 (B23452500002100)``."""
    if not isinstance(event, dict):
        return str(event)
    text = f"{event.get('kind', '?')} grade {event.get('grade', '?')}"
    if event.get("onset_at"):
        text += f", onset {event['onset_at']}"
    return text + (f" ({event['din']})" if event.get("din") else "")


def adverse_events(chain: Chain) -> list[str]:
    infusion = chain.get("infusion") or {}
    return [adverse_event(event) for event in infusion.get("adverse_events") or []]


def short_time(text: str | None) -> str:
    """``2025-01-20T00:11:19.843215+00:00`` -> ``2025-01-20 00:11:19Z`` (for lists)."""
    if not text:
        return "-"
    return text[:19].replace("T", " ") + ("Z" if text.endswith("+00:00") else "")
