"""The lifecycle's docs are drawn from the table the code runs on: the committed diagram and
the table in docs/LIFECYCLE.md are exactly what `python -m shop.orders.diagram` makes."""

from __future__ import annotations

from shop.orders import diagram, lifecycle


def test_the_committed_svg_is_drawn_from_the_table():
    assert diagram.SVG_PATH.read_text() == diagram.svg(), (
        "docs/lifecycle.svg is behind shop/orders/lifecycle.py: run python -m shop.orders.diagram")


def test_the_documented_table_is_the_table():
    doc = diagram.DOC_PATH.read_text()
    assert diagram.documented_table(doc) == diagram.markdown_table()
    assert "(lifecycle.svg)" in doc


def test_the_diagram_shows_every_state_cell_and_transition():
    drawn = diagram.svg()
    assert all(f">{state}<" in drawn for state in lifecycle.State)
    assert drawn.count('class="cell"') == len(lifecycle.State) * len(lifecycle.EVENTS)
    assert drawn.count('class="flow"') == len(lifecycle.FLOW)
    # Every state is reached, and every state but the settled ones leads on.
    reached = {end for _, end, _ in lifecycle.FLOW}
    assert reached == set(lifecycle.State) - {lifecycle.State.PENDING}
