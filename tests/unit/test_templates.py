"""The web layer's layout rules: each blueprint named after its module with its pages in
templates/<blueprint>/, shared partials in templates/_shared/, status colours keyed on the
status value, one date format, one pager, and no sentences in templates (shop/wording.py)."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

from flask import Blueprint, Flask, render_template_string

from shop.orders.records import Status

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "templates"
SHARED = "_shared"
LAYOUT = {"base.html", "error.html"}  # the app's own: the layout and the error page


def blueprints() -> dict[str, Blueprint]:
    """Every blueprint under shop/, by the dotted name of the module that defines it."""
    found = {}
    for path in sorted((ROOT / "shop").rglob("*.py")):
        if "Blueprint(" in path.read_text(encoding="utf-8"):
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[module] = importlib.import_module(module).bp
    return found


def templates() -> dict[str, str]:
    return {str(path.relative_to(TEMPLATES)): path.read_text(encoding="utf-8")
            for path in sorted(TEMPLATES.rglob("*.html"))}


def test_every_blueprint_is_named_after_its_module():
    found = blueprints()
    assert len(found) >= 8
    assert {module: bp.name for module, bp in found.items()} == {
        module: module.rsplit(".", 1)[1] for module in found}


def test_each_blueprint_renders_only_its_own_folder_of_templates():
    names = {bp.name for bp in blueprints().values()}
    folders = {path.name for path in TEMPLATES.iterdir() if path.is_dir()}
    assert folders - {SHARED} <= names
    assert {path.name for path in TEMPLATES.iterdir() if path.is_file()} == LAYOUT
    for module, bp in blueprints().items():
        source = (ROOT / Path(*module.split("."))).with_suffix(".py").read_text()
        for rendered in re.findall(r'render_template\(\s*"([^"]+)"', source):
            assert rendered.startswith(f"{bp.name}/"), (module, rendered)


def test_status_colours_are_keyed_on_the_status_value_not_its_label():
    css = (ROOT / "static" / "style.css").read_text(encoding="utf-8")
    for status in Status:
        assert re.search(rf"\.status-{status.value}[\s,{{:]", css), status
    for name, text in templates().items():
        assert "status_label|lower" not in text, name


def test_templates_write_no_date_format_of_their_own():
    for name, text in templates().items():
        assert "strftime" not in text and "%H" not in text, name  # the |utc filter does


def test_the_pager_links_keep_the_filters_and_name_what_they_page_through():
    app = Flask(__name__, template_folder=TEMPLATES)
    inspector = Blueprint("inspector", __name__)
    inspector.add_url_rule("/flex", "calls", lambda: "")
    app.register_blueprint(inspector)
    page = ('{% from "_shared/pager.html" import pager %}'
            "{{ pager('inspector.calls', page, pages, 'calls', {'endpoint': 'evaluate'}) }}")
    with app.test_request_context():
        middle = render_template_string(page, page=2, pages=3)
        only = render_template_string(page, page=1, pages=1)
    assert 'aria-label="Pages of calls"' in middle
    assert '<a href="/flex?endpoint=evaluate&amp;page=1" rel="prev">Newer calls</a>' in middle
    assert "<span>Page 2 of 3</span>" in middle
    assert '<a href="/flex?endpoint=evaluate&amp;page=3" rel="next">Older calls</a>' in middle
    assert only.strip() == ""  # one page: no pager at all


# A sentence: a capital, at least three more words (on one line, or wrapped onto the next),
# and a full stop, question mark or exclamation mark.
SENTENCE = re.compile(
    r"[A-Z][\w'’,;:()/-]*(?:(?:[ \t]+|[ \t]*\n[ \t]*)[\w'’,;:()/+-]+){3,}[.?!](?=\s|$)")


def visible_text(template: str) -> str:
    """The words a template writes itself: no Jinja, no tags, no attribute values."""
    text = re.sub(r"\{#.*?#\}|\{%.*?%\}|\{\{.*?\}\}", " ", template, flags=re.S)
    text = re.sub(r"<script.*?</script>", " ", text, flags=re.S)
    return re.sub(r"<[^>]*>", " ", text)


def test_templates_hold_labels_and_markup_the_sentences_are_in_wording():
    found = {name: SENTENCE.findall(visible_text(text)) for name, text in templates().items()}
    assert {name: hits for name, hits in found.items() if hits} == {}


def test_the_sentence_check_would_see_a_sentence():
    assert SENTENCE.findall(visible_text('<p class="x">Your cart is empty. <a href="/">Back'
                                         "</a></p>")) == ["Your cart is empty."]
    assert SENTENCE.findall(visible_text("<h2>Refused deliveries</h2>{{ say.x }}")) == []
