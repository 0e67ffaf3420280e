"""Small-cell suppression with complementary suppression, on aggregate tables only (pure Python + SciPy).

Model: a set of published cells (id -> person count) and linear relations between them
(``total = sum(parts)``: a margin and its cells, the grand total and a margin). A row that exists is known to
be >= 1 (zero strata are simply absent), so that is part of what an attacker knows too.

1. Primary suppression: every cell with 0 < n < min_cell_count.
2. Complementary suppression, to a fixed point:
   a. no relation may hold exactly one suppressed cell (else total minus the rest gives it back):
      suppress the smallest other non-zero cell of that relation;
   b. audit the whole system: for each suppressed cell, the smallest and largest value it can take given every
      relation, the published cells and ``x >= 1`` (linear programs). A cell whose range is a single
      value is recoverable, e.g. two hidden cells in a row differing from the margin by 2 are both 1; suppress
      the smallest non-zero published cell sharing a relation with it and audit again.
Cells are only ever added, so the loop ends (at worst everything in a relation group is suppressed).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import linprog

log = logging.getLogger(__name__)

PRIMARY, COMPLEMENTARY = "primary", "complementary"


@dataclass(frozen=True)
class Relation:
    """total = sum(parts), an exact linear relation between published cells."""

    total: str
    parts: tuple[str, ...]

    @property
    def members(self) -> tuple[str, ...]:
        """All cells in the relation, total first."""
        return (self.total, *self.parts)


def primary(values: Mapping[str, int], min_cell_count: int) -> dict[str, str]:
    """Cells with a count in 1 .. min_cell_count-1."""
    return {c: PRIMARY for c, v in values.items() if 0 < v < min_cell_count}


def _pick(candidates: Iterable[str], values: Mapping[str, int], totals: set[str]) -> str | None:
    """Smallest non-zero unsuppressed candidate; margins only when no inner cell will do (less information lost)."""
    pool = sorted(set(candidates), key=lambda c: (values[c], c in totals, c))
    return pool[0] if pool else None


def _single_suppressed(values: Mapping[str, int], relations: Sequence[Relation], sup: dict[str, str],
                       totals: set[str]) -> bool:
    """One pass of rule (a); True when a cell was added."""
    changed = False
    for rel in relations:
        hidden = [m for m in rel.members if m in sup]
        if len(hidden) != 1:
            continue
        pick = _pick((m for m in rel.members if m not in sup and values[m] > 0), values, totals)
        if pick is not None:
            sup[pick] = COMPLEMENTARY
            changed = True
    return changed


def _system(values: Mapping[str, int], relations: Sequence[Relation],
            hidden: set[str]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """A x = b over the hidden cells of every relation that holds one (published cells moved to b)."""
    rels = [r for r in relations if any(m in hidden for m in r.members)]
    cells = sorted({m for r in rels for m in r.members if m in hidden})
    col = {c: i for i, c in enumerate(cells)}
    a = np.zeros((len(rels), len(cells)))
    b = np.zeros(len(rels))
    for i, rel in enumerate(rels):
        for m, sign in [(rel.total, 1.0)] + [(p, -1.0) for p in rel.parts]:
            if m in hidden:
                a[i, col[m]] += sign
            else:
                b[i] -= sign * values[m]
    return cells, a, b


def _solve(goal: np.ndarray, a: np.ndarray, b: np.ndarray, lower: float) -> Any:
    res = linprog(goal, A_eq=a, b_eq=b, bounds=[(lower, None)] * len(goal), method="highs")
    if res.status == 2:  # the true values are always feasible, so this is a caller bug
        raise ValueError("inconsistent relations: the published cells admit no solution")
    return res


def feasible_ranges(values: Mapping[str, int], relations: Sequence[Relation], hidden: Iterable[str],
                    lower: float = 1.0) -> dict[str, tuple[float, float]]:
    """[min, max] each hidden cell can take given the relations, the published cells and x >= lower (LP bounds)."""
    cells, a, b = _system(values, relations, set(hidden))
    out: dict[str, tuple[float, float]] = {}
    for j, c in enumerate(cells):
        goal = np.zeros(len(cells))
        goal[j] = 1.0
        lo, hi = _solve(goal, a, b, lower), _solve(-goal, a, b, lower)
        out[c] = (lo.fun if lo.status == 0 else lower, -hi.fun if hi.status == 0 else float("inf"))
    return out


def exposed(values: Mapping[str, int], relations: Sequence[Relation], sup: Mapping[str, str],
            lower: float = 1.0) -> list[str]:
    """Suppressed cells whose value the published cells pin down exactly (LP bounds meet).

    The true values are one feasible point, so any LP solution that differs from them in a cell by half a
    unit or more proves that cell is not pinned; one solve usually clears many cells at once.
    """
    cells, a, b = _system(values, relations, set(sup))
    truth = np.array([values[c] for c in cells], dtype=float)
    open_ = set(range(len(cells)))
    pinned = []
    while open_:
        j = min(open_)
        for sign in (1.0, -1.0):
            goal = np.zeros(len(cells))
            goal[j] = sign
            res = _solve(goal, a, b, lower)
            if res.status == 3:  # unbounded in this direction: certainly not pinned
                open_.discard(j)
                break
            if res.status != 0 or res.x is None:  # solver gave up: leave j open, i.e. treat it as pinned (safe side)
                continue
            open_ -= set(np.flatnonzero(np.abs(res.x - truth) >= 0.5).tolist())
            if j not in open_:
                break
        if j in open_:
            pinned.append(cells[j])
            open_.discard(j)
    return sorted(pinned)


def suppress(values: Mapping[str, int], relations: Sequence[Relation], min_cell_count: int,
             max_rounds: int = 10_000) -> dict[str, str]:
    """Suppressed cells -> 'primary' | 'complementary', such that none can be recovered by differencing."""
    missing = {m for r in relations for m in r.members} - set(values)
    if missing:
        raise ValueError(f"relations name unknown cells: {sorted(missing)[:5]}")
    totals = {r.total for r in relations}
    sup = primary(values, min_cell_count)
    by_cell: dict[str, list[Relation]] = {}
    for rel in relations:
        for m in rel.members:
            by_cell.setdefault(m, []).append(rel)
    for _ in range(max_rounds):
        if _single_suppressed(values, relations, sup, totals):
            continue
        leaks = exposed(values, relations, sup)
        if not leaks:
            return sup
        # widen around every leak whose relations gained nothing yet this round (one LP audit per round, not per leak)
        widened, before = False, set(sup)
        for leak in leaks:
            if any(m in sup and m not in before for r in by_cell.get(leak, []) for m in r.members):
                continue
            widened |= _widen(leak, values, by_cell, sup, totals)
        if not widened:
            log.warning("cells %s stay recoverable: nothing left to suppress around them", leaks[:5])
            return sup
    raise RuntimeError("complementary suppression did not converge")


def _widen(cell: str, values: Mapping[str, int], by_cell: Mapping[str, list[Relation]], sup: dict[str, str],
           totals: set[str]) -> bool:
    """Suppress one more cell near `cell`: first in its own relations, then further out in its relation group."""
    frontier, seen = [cell], {cell}
    while frontier:
        rels = [r for c in frontier for r in by_cell.get(c, [])]
        pick = _pick((m for r in rels for m in r.members if m not in sup and values[m] > 0), values, totals)
        if pick is not None:
            sup[pick] = COMPLEMENTARY
            return True
        nxt = {m for r in rels for m in r.members if m in sup} - seen
        seen |= nxt
        frontier = sorted(nxt)
    return False
