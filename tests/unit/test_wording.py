"""The README's "First two minutes" and the home page's tour are one list of steps."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

from shop.wording import TOUR_STEPS, marked, utc

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_steps() -> list[str]:
    """The numbered list under "## First two minutes", each item unwrapped onto one line."""
    section = README.read_text(encoding="utf-8").split("## First two minutes\n", 1)[1]
    section = section.split("\n## ", 1)[0]
    steps: list[str] = []
    for line in section.splitlines():
        numbered = re.match(r"(\d+)\. (.*)", line)
        if numbered:
            assert int(numbered.group(1)) == len(steps) + 1, line
            steps.append(numbered.group(2))
        elif steps and line.startswith("   ") and line.strip():
            steps[-1] += " " + line.strip()
    return steps


def test_the_readme_lists_the_tours_steps_word_for_word():
    assert readme_steps() == list(TOUR_STEPS)


def test_marks_bold_code_and_links_fill_values_and_escape_the_rest():
    html = marked("Click **Pay** <now> after `make demo` & wait")
    assert html == ("Click <strong>Pay</strong> &lt;now&gt; after <code>make demo</code> "
                    "&amp; wait")
    linked = marked("Go [back & retry] to `{url}`.", "/cart?a=1&b=2", url="<http://x/>")
    assert linked == ('Go <a href="/cart?a=1&amp;b=2">back &amp; retry</a> to '
                      "<code>&lt;http://x/&gt;</code>.")
    assert marked("See [the log].") == "See [the log]."  # no link given: written as it is


def test_every_moment_is_shown_in_one_format_in_utc():
    assert utc(0) == "1970-01-01 00:00:00 UTC"  # epoch seconds, as the database keeps them
    paris = datetime(2026, 12, 6, 19, 35, 2, tzinfo=timezone(timedelta(hours=1)))
    assert utc(paris) == "2026-12-06 18:35:02 UTC"
    assert utc(paris, time_only=True) == "18:35:02 UTC"
    assert utc(datetime(2026, 12, 6, 18, 35, 2)) == "2026-12-06 18:35:02 UTC"  # naive is UTC
