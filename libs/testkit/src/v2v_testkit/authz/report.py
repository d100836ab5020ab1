"""The matrix's counts and findings, as the test prints and asserts them."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from v2v_testkit.authz.callers import ORDER, CallerKind
from v2v_testkit.authz.expectations import Verdict
from v2v_testkit.authz.matrix import Result

UNAUTHORIZED = (Verdict.UNAUTHORIZED_SUCCESS, Verdict.UNAUTHORIZED_PASS)


@dataclass
class MatrixReport:
    methods: int
    routes: int
    results: list[Result] = field(default_factory=list)
    undeclared: list[str] = field(default_factory=list)
    """Methods and routes that declare no access (no ACCESS entry / no x-v2v-access)."""
    unbuilt: list[str] = field(default_factory=list)
    """Methods and routes without a request builder."""
    stale: list[str] = field(default_factory=list)
    """ACCESS entries naming no method."""

    def with_verdict(self, *verdicts: Verdict) -> list[Result]:
        return [result for result in self.results if result.verdict in verdicts]

    @property
    def unauthorized(self) -> list[Result]:
        return self.with_verdict(*UNAUTHORIZED)

    @property
    def wrongly_refused(self) -> list[Result]:
        return self.with_verdict(Verdict.WRONGLY_REFUSED)

    @property
    def errors(self) -> list[Result]:
        return self.with_verdict(Verdict.ERROR)

    def by_kind(self, kind: CallerKind) -> Counter[Verdict]:
        return Counter(result.verdict for result in self.results if result.kind is kind)

    def by_context(self) -> dict[str, Counter[Verdict]]:
        counts: dict[str, Counter[Verdict]] = {}
        for result in self.results:
            counts.setdefault(result.context, Counter())[result.verdict] += 1
        return dict(sorted(counts.items()))

    def summary_line(self) -> str:
        kinds = "; ".join(
            f"{kind}: {counts[Verdict.ALLOWED]} allowed / {counts[Verdict.REFUSED]} refused"
            for kind in ORDER
            for counts in (self.by_kind(kind),)
        )
        return (
            f"authorization matrix: {self.methods} gRPC methods, {self.routes} HTTP routes,"
            f" {len(self.results)} calls tried ({kinds});"
            f" unauthorized successes {len(self.with_verdict(Verdict.UNAUTHORIZED_SUCCESS))},"
            f" unauthorized passes {len(self.with_verdict(Verdict.UNAUTHORIZED_PASS))},"
            f" wrongly refused {len(self.wrongly_refused)}, errors {len(self.errors)},"
            f" undeclared {len(self.undeclared)}, without builder {len(self.unbuilt)}"
        )

    def table(self) -> str:
        verdicts = list(Verdict)
        header = f"{'':<16}" + "".join(f"{v.value:>22}" for v in verdicts)
        lines = ["authorization matrix by caller kind", header]
        for kind in ORDER:
            counts = self.by_kind(kind)
            lines.append(f"{kind.value:<16}" + "".join(f"{counts[v]:>22}" for v in verdicts))
        lines += ["by service", header]
        for context, counts in self.by_context().items():
            lines.append(f"{context:<16}" + "".join(f"{counts[v]:>22}" for v in verdicts))
        return "\n".join(lines)

    def listing(self) -> str:
        """Every call, in the order made: caller kind, verdict, status, method or route,
        caller, the error's detail, and how many seeded identifiers the answer names beyond
        those the request named (for the related site and the auditor: that the records are
        there to be seen)."""
        return "\n".join(_line(result) for result in self.results)

    def findings(self) -> list[str]:
        """Everything that fails the matrix, one line each."""
        lines = [f"declares no access: {key}" for key in self.undeclared]
        lines += [f"stale ACCESS entry: {entry}" for entry in self.stale]
        lines += [f"no request builder: {key}" for key in self.unbuilt]
        for verdict in (*UNAUTHORIZED, Verdict.WRONGLY_REFUSED, Verdict.ERROR):
            lines += [f"{verdict}: {r.describe()}" for r in self.with_verdict(verdict)]
        return lines


def _line(result: Result) -> str:
    line = f"{result.kind.value:<15} {result.verdict.value:<21} {result.outcome.status:<20}"
    line += f" {result.endpoint} as {result.who}"
    if result.outcome.detail:
        line += f": {result.outcome.detail}"
    if result.leaked:
        line += f" [names {len(result.leaked)} seeded ids it was not asked about]"
    return line
