"""The console answers an MCP server's request for input (elicitation) in a real browser: the asking
agent's lane says "waiting input", a form generated from the request's schema shows its defaults, a
misfit answer is refused with what is wrong, and a filled-in form reaches the MCP server's tool."""

from __future__ import annotations

import pytest

from tests.browser.conftest import Page, Server, colours
from tests.support.booking_team import write_booking_team

pytestmark = pytest.mark.browser


def test_a_pending_form_is_filled_in_and_accepted(server: Server, page: Page) -> None:
    write_booking_team(server.lake.parent / "teams", "console_form")
    p = page.page
    p.goto(f"{server.url}/console/")
    p.select_option("form.new-session select[name=team]", "console_form")
    p.fill("form.new-session input[name=input]", "book")
    p.click("form.new-session button[type=submit]")

    form = p.locator("form.elicitation")
    form.wait_for()
    assert p.inner_text(".lane-head[data-lane='lead'] .state") == "waiting input"
    assert "own asks: Who is the booking for?" in form.inner_text()
    assert p.locator(".item.tool[data-tool='own__book'] .badge").inner_text() == "waiting input"
    seats = form.locator("input[name=seats]")
    assert (seats.get_attribute("type"), seats.input_value()) == ("number", "2")  # the schema's default
    assert form.locator("input[name=name]").input_value() == ""
    png = page.screenshot("elicitation-form", "form.elicitation")
    assert colours(png) > 5

    form.locator("button.accept").click()  # name is required: the server says so, the form stays
    p.wait_for_selector("form.elicitation .form-error:has-text(\"'name' is a required property\")")
    form.locator("input[name=name]").fill("Ada")
    seats.fill("3")
    form.locator("button.accept").click()
    p.wait_for_selector(".session-status.status-completed")
    card = p.locator(".item.tool[data-tool='own__book']")
    assert "status-ok" in (card.get_attribute("class") or "")
    assert "booked 3 seats for Ada" in card.inner_text() and "input accept by client" in card.inner_text()
    assert p.locator("form.elicitation").count() == 0
    assert p.inner_text(".lane-head[data-lane='lead'] .state") == "done"
    # The refused answer's 422 is the only thing the browser logged (Chromium logs every failed fetch).
    refused = [e for e in page.errors if "status of 422" in e]
    assert len(refused) == 1 and [e for e in page.errors if e not in refused] == [], page.errors
