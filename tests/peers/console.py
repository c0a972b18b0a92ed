#!/usr/bin/env python3
"""Drives edgefault's console (/console on the admin port) in headless Chromium with Playwright, in step
with the Rust test tests/it/console/browser.rs, which starts experiments over gRPC, sends traffic and checks
over gRPC what the page did. The two talk by lines: this script prints a line when it has done a step and
reads the Rust side's answer from stdin.

    console.py CONSOLE_URL ADMIN_TOKEN READ_ONLY_TOKEN CHROMIUM SCREENSHOT_DIR

Debian's Chromium is used through its executable path: `playwright install` is never run.
"""

import os
import re
import sys

from playwright.sync_api import expect, sync_playwright

from console_page import Page, changes_are_refused, hear, say, sign_in

URL, ADMIN, VIEWER, CHROMIUM, SHOTS = sys.argv[1:6]


def requests_on(page, route):
    v = page.locator(f'.chart[data-route="{route}"]').get_attribute("data-requests")
    return int(v or 0)


def main():
    with sync_playwright() as p:
        chromium = Page(p, CHROMIUM, URL)
        page = chromium.page

        # Without a token the page asks for one; the token never goes into the address.
        page.goto(URL)
        sign_in(page, ADMIN, "admin")
        assert ADMIN not in page.url, page.url
        expect(page.locator("#running")).to_have_attribute("data-running", "0")
        expect(page.locator("#scenario option")).not_to_have_count(0)
        say("ready")

        # An experiment with phases, started over gRPC, appears with its phase; the next phase shows.
        phased, other = hear("started")
        row = page.locator(f'tr[data-id="{phased}"]')
        expect(row).to_have_attribute("data-state", "running")
        # The first phase lasts two seconds: a slow machine may poll past it, the event log keeps it.
        expect(row).to_have_attribute("data-phase", re.compile("^(calm|storm)$"))
        expect(row).to_have_attribute("data-phase", "storm")
        expect(page.locator(f'#events li[data-kind=phase][data-experiment="{phased}"]').first).to_be_visible()
        expect(page.locator(f'#events li[data-kind=phase][data-experiment="{phased}"]')).to_have_count(2)
        expect(page.locator("#events")).to_contain_text("phased-outage calm")
        expect(row.locator(".chip.now")).to_have_text("storm")
        expect(row.locator("svg.timeline")).to_be_visible()
        expect(page.locator(f'tr[data-id="{other}"]')).to_have_attribute("data-state", "running")
        expect(page.locator("#running")).to_have_attribute("data-running", "2")
        expect(page.locator("#events li[data-kind=started]")).not_to_have_count(0)

        # The charts move with the traffic the test sends: the route's request count rises, and the storm's
        # 503s show in its 5xx share.
        chart = page.locator('.chart[data-route="web/default"]')
        expect(chart).to_be_visible()
        first = requests_on(page, "web/default")
        page.wait_for_function(
            "n => Number(document.querySelector('.chart[data-route=\"web/default\"]').dataset.requests) > n + 10",
            arg=first,
        )
        page.wait_for_function(
            "() => Number(document.querySelector('.chart[data-route=\"web/default\"]').dataset['5xx']) > 0"
        )
        assert chart.locator("svg.share rect").count() > 0, "the share chart has bars"
        assert chart.locator("svg.latency path").count() == 2, "p50 and p99 lines"

        # Screenshots for docs/console.md: a laptop and a phone.
        page.wait_for_timeout(6000)
        page.screenshot(path=os.path.join(SHOTS, "console.png"), full_page=True)
        page.set_viewport_size({"width": 360, "height": 780})
        page.wait_for_timeout(1200)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 360, f"the page fits a phone's 360 px ({width} px)"
        page.screenshot(path=os.path.join(SHOTS, "console-phone.png"), full_page=False)
        page.set_viewport_size({"width": 1280, "height": 900})

        # Abort all asks once; accepted, every experiment ends.
        asked = []
        page.once("dialog", lambda d: (asked.append(d.message), d.accept()))
        page.click("#abort-all")
        expect(page.locator("#notice")).to_contain_text("2 experiment(s) aborted")
        assert len(asked) == 1, asked
        expect(page.locator("#running")).to_have_attribute("data-running", "0")
        for exp in (phased, other):
            expect(page.locator(f'tr[data-id="{exp}"]')).to_have_attribute("data-state", "aborted")
        expect(page.locator("tr[data-state=running], tr[data-state=pending]")).to_have_count(0)
        say("aborted")

        # A read-only token sees everything and changes nothing: Stop and Abort all are refused (403).
        (kept,) = hear("readonly")
        page.click("#signout")
        sign_in(page, VIEWER, "read-only")
        row = page.locator(f'tr[data-id="{kept}"]')
        expect(row).to_have_attribute("data-state", "running")
        changes_are_refused(page, row)
        say("refused")

        hear("done")
        chromium.close()


if __name__ == "__main__":
    main()
