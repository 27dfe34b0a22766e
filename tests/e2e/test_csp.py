"""The Content-Security-Policy holds in a real browser: SenseJS loads and reports, and
nothing on the checkout page violates the policy."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page

from tests.support import open_checkout, sense_post

pytestmark = pytest.mark.e2e


def test_checkout_page_has_no_csp_violation(page: Page):
    console = []
    page.on("console", lambda message: console.append(message.text))
    page.add_init_script("""
        window.cspViolations = [];
        document.addEventListener('securitypolicyviolation',
            e => window.cspViolations.push(e.violatedDirective + ' ' + e.blockedURI));
    """)
    with page.expect_response(sense_post) as sense:  # SenseJS loaded, ran and reported
        open_checkout(page)
    assert sense.value.ok
    assert page.evaluate("window.cspViolations") == []
    assert not [text for text in console if "Content Security Policy" in text]
