"""Table layout for terminals of any width: identifiers whole, descriptive text wrapped.

The rule (from `kubectl get` and the Strimzi/ECK status columns): a pod, step, rule or version name is what a person
copies into the next command, so it is never cut. At 80 columns the descriptive columns (why, waited on, blocked by)
give up their width first and wrap; identifier columns keep theirs (`no_wrap`, measured to their longest name), and a
list of names that does not fit its share of the line goes one name a line instead of being elided. Only when even
the identifiers alone exceed the terminal does rich fold them (overflow "fold": every character still shown).

Used by the CLI's tables (`toolkit.cli.render`) and the rehearsal's (`toolkit.rehearsal.report`). rich is imported
only when a table is built, so `toolkit --help` stays light.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


def console(stderr: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=False)


GAP = 2  # columns between two cells: the right padding of one and the (blank) vertical rule


def table(title: str | None = None) -> Any:
    """A table without side borders or vertical rules (each costs columns at 80)."""
    from rich import box
    from rich.table import Table

    return Table(
        title=title,
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        padding=(0, 1, 0, 0),
        title_justify="left",
    )


def identifier_column(tbl: Any, header: str, justify: str = "left") -> None:
    """A column of names: never wrapped inside a name, never elided; folded only as a last resort."""
    tbl.add_column(header, no_wrap=True, overflow="fold", justify=justify)


def text_column(tbl: Any, header: str) -> None:
    """A column of descriptive text: it gives up width first and wraps between words; a word longer than the column
    is folded, not elided."""
    tbl.add_column(header, overflow="fold")


def names(items: Sequence[str], width: int, separator: str = ", ") -> str:
    """`items` on one line when that fits in `width` columns (or there is one), else one a line: whole either way."""
    joined = separator.join(items)
    if len(joined) <= width or len(items) <= 1:
        return joined
    return "\n".join(items)


def names_width(console_width: int) -> int:
    """The share of the line a list of names may take before it goes one a line: a quarter of the terminal."""
    return max(20, console_width // 4)


def step_cell(component: str, kind: str, members: Sequence[str], console_width: int) -> str:
    """What a step does and to whom, in one identifier cell: `kafka restart` with its members indented under it, on
    one line when they fit a quarter of the terminal, else one a line. One narrow column instead of two, so the
    descriptive columns keep room at 80 columns."""
    listed = names(members, names_width(console_width) - 2).replace("\n", "\n  ")
    return f"{component} {kind}\n  {listed}" if members else f"{component} {kind}"


def waits_lines(waits: Sequence[tuple[str, float]]) -> list[str]:
    """The gates a step waited on, one `rule seconds` a line (rule ids are identifiers: one never shares a line)."""
    return [f"{rule} {seconds:.0f}s" for rule, seconds in waits]


def widest(cells: Sequence[str]) -> int:
    return max((len(line) for cell in cells for line in cell.split("\n")), default=0)


def fits(column_widths: Sequence[int], console_width: int) -> bool:
    """Whether columns of these widths (their longest lines) fit side by side on the terminal."""
    return sum(column_widths) + GAP * (len(column_widths) - 1) <= console_width


@dataclass(frozen=True)
class StepRow:
    """One executed step, as the run and rehearsal tables show it."""

    component: str
    kind: str
    members: Sequence[str]
    took: str
    outcome: str
    waits: Sequence[tuple[str, float]] = ()
    start: str | None = None  # from the start of the run; None: no start column


def steps_table(rows: Sequence[StepRow], console_width: int, title: str | None = None) -> Any:
    """Executed steps: step (with its members), start, took, outcome, waited on.

    Every identifier whole, in the first of these layouts that fits the terminal: all columns side by side; side by
    side without the start column (the least needed: it is the sum of the steps before); the gates waited on under
    the step, in its own cell (80 columns with real pod names)."""
    from rich.markup import escape

    colours = {"done": "green", "halted": "red"}
    steps = [step_cell(r.component, r.kind, r.members, console_width) for r in rows]
    waits = ["\n".join(waits_lines(r.waits)) for r in rows]
    has_start = any(r.start is not None for r in rows)
    step_w, start_w = widest([*steps, "step"]), widest([r.start or "" for r in rows] + ["start"])
    took_w, outcome_w = widest([r.took for r in rows] + ["took"]), widest([r.outcome for r in rows] + ["outcome"])
    waits_w = widest([*waits, "waited on"])
    with_start, side_by_side = has_start, True
    if not fits([step_w, *([start_w] if has_start else []), took_w, outcome_w, waits_w], console_width):
        with_start = False
        if not fits([step_w, took_w, outcome_w, waits_w], console_width):
            with_start, side_by_side = has_start, False
    tbl = table(title)
    identifier_column(tbl, "step")
    if with_start:
        identifier_column(tbl, "start", justify="right")
    identifier_column(tbl, "took", justify="right")
    identifier_column(tbl, "outcome")
    if side_by_side:
        identifier_column(tbl, "waited on")
    for row, step, waited in zip(rows, steps, waits, strict=True):
        if not side_by_side and waited:
            lines = waited.split("\n")
            step += "\n  waited " + "\n         ".join(lines)
        cells = [escape(step)]
        if with_start:
            cells.append(row.start or "")
        colour = colours.get(row.outcome, "yellow")
        cells += [row.took, f"[{colour}]{escape(row.outcome)}[/]"]
        if side_by_side:
            cells.append(escape(waited))
        tbl.add_row(*cells)
    return tbl
