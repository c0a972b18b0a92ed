#!/usr/bin/env python3
"""Drives the controller's console (/console on `edgefault controller --admin`) in headless Chromium with
Playwright, in step with the Rust test tests/it/console/browser.rs, which runs the controller and three
sidecars (s1 and s2 labelled app=web, s3 app=api), sends traffic to the sidecars and checks over gRPC what
the page did. The two talk by lines, as tests/peers/console.py does.

    controller_console.py CONSOLE_URL ADMIN_TOKEN READ_ONLY_TOKEN CHROMIUM SCREENSHOT_DIR

Debian's Chromium is used through its executable path: `playwright install` is never run.
"""

import os
import re
import sys

from playwright.sync_api import expect, sync_playwright

from console_page import Page, changes_are_refused, hear, say, sign_in

URL, ADMIN, VIEWER, CHROMIUM, SHOTS = sys.argv[1:6]


def dataset(page, selector, key):
    return int(page.locator(selector).get_attribute(f"data-{key}") or 0)


def main():
    with sync_playwright() as p:
        chromium = Page(p, CHROMIUM, URL)
        page = chromium.page

        # The controller's page lists its sidecars with their labels, and offers a selector for scenarios.
        page.goto(URL)
        sign_in(page, ADMIN, "admin")
        expect(page.locator("#fleet")).to_be_visible()
        expect(page.locator("#sidecars tr[data-sidecar]")).to_have_count(3)
        expect(page.locator("#fleet-count")).to_have_text("3 connected of 3")
        expect(page.locator('#sidecars tr[data-sidecar="s1"]')).to_contain_text("app=web")
        expect(page.locator('#sidecars tr[data-sidecar="s3"]')).to_contain_text("app=api")
        expect(page.locator('#sidecars tr[data-sidecar="s1"] .state')).to_have_text("connected")
        expect(page.locator("#selector-param")).to_be_visible()

        # The scenario form: the 503 storm for every request, on the sidecars labelled app=web only.
        page.select_option("#scenario", "edge-5xx-storm")
        page.fill("#param-percentage", "100")
        page.select_option("#param-status", "503")
        page.fill("#sidecars-selector", "app=web")
        page.click("#start")
        expect(page.locator("#notice")).to_contain_text("started edge-5xx-storm: ")
        started = re.search(r"started edge-5xx-storm: (\S+)", page.locator("#notice").inner_text())
        assert started, page.locator("#notice").inner_text()
        exp = started.group(1).rstrip(",")
        row = page.locator(f'tr[data-id="{exp}"]')
        expect(row).to_have_attribute("data-state", "running")
        expect(row.locator(".sidecars")).to_have_text("sidecars: 2 applied")
        expect(page.locator('#sidecars tr[data-sidecar="s1"] td.num')).to_have_text("1")
        expect(page.locator('#sidecars tr[data-sidecar="s3"] td.num')).to_have_text("0")
        say(f"started {exp}")

        # The test sends traffic to the three sidecars: the fleet's chart of the route counts all of it,
        # with the 503s of s1 and s2 in its 5xx share.
        hear("traffic")
        chart = '.chart[data-route="web/default"]'
        expect(page.locator(chart)).to_be_visible()
        first = dataset(page, chart, "requests")
        page.wait_for_function(
            "n => Number(document.querySelector('.chart[data-route=\"web/default\"]').dataset.requests) > n + 10",
            arg=first,
        )
        page.wait_for_function(
            "() => Number(document.querySelector('.chart[data-route=\"web/default\"]').dataset['5xx']) > 0"
        )
        expect(page.locator(f'#events li[data-experiment="{exp}"]').first).to_be_visible()
        expect(page.locator("#events")).to_contain_text("sidecar s1: ")

        # A screenshot for docs/console.md.
        page.wait_for_timeout(5000)
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=os.path.join(SHOTS, "console-controller.png"), full_page=True)

        # Abort all asks once; accepted, the fleet experiment ends.
        asked = []
        page.once("dialog", lambda d: (asked.append(d.message), d.accept()))
        page.click("#abort-all")
        expect(page.locator("#notice")).to_contain_text("1 experiment(s) aborted")
        assert len(asked) == 1, asked
        expect(row).to_have_attribute("data-state", "aborted")
        expect(page.locator("#running")).to_have_attribute("data-running", "0")
        say("aborted")

        # A read-only token sees the fleet and changes nothing.
        (kept,) = hear("readonly")
        page.click("#signout")
        sign_in(page, VIEWER, "read-only")
        expect(page.locator("#sidecars tr[data-sidecar]")).to_have_count(3)
        row = page.locator(f'tr[data-id="{kept}"]')
        expect(row).to_have_attribute("data-state", "running")
        changes_are_refused(page, row)
        say("refused")

        hear("done")
        chromium.close()


if __name__ == "__main__":
    main()
