"""What tests/peers/console.py and tests/peers/controller_console.py share: the line protocol with the Rust
test, signing in, and a page in Debian's Chromium that records what it loaded and the errors it logged."""

import sys

from playwright.sync_api import expect

TIMEOUT_MS = 20_000


def say(line):
    print(line, flush=True)


def hear(word):
    line = sys.stdin.readline().split()
    if not line or line[0] != word:
        raise SystemExit(f"expected {word!r} from the test, got {line!r}")
    return line[1:]


def sign_in(page, token, role):
    expect(page.locator("#login")).to_be_visible()
    page.fill("#token", token)
    page.click("#login-form button[type=submit]")
    expect(page.locator("#who")).to_have_attribute("data-role", role)
    expect(page.locator("#login")).to_be_hidden()


def changes_are_refused(page, row):
    """With a read-only token: Stop on `row` (a running experiment), Abort all and Start are each refused
    with 403, and the experiment still runs."""
    row.locator("button[data-stop]").click()
    expect(page.locator("#notice")).to_have_attribute("data-status", "refused")
    expect(page.locator("#notice")).to_contain_text("403")
    expect(page.locator("#notice")).to_contain_text("read-only")
    page.evaluate("document.getElementById('notice').hidden = true")
    page.once("dialog", lambda d: d.accept())
    page.click("#abort-all")
    expect(page.locator("#notice")).to_contain_text("Abort all refused (403)")
    page.evaluate("document.getElementById('notice').hidden = true")
    page.click("#start")
    expect(page.locator("#notice")).to_contain_text("refused (403)")
    expect(row).to_have_attribute("data-state", "running")


class Page:
    """A 1280×900 page of headless Chromium (through its executable path: `playwright install` is never
    run) that keeps the URLs it requested outside `url`'s origin and the errors of its console."""

    def __init__(self, playwright, chromium, url):
        self.origin = url.split("/console")[0]
        self.browser = playwright.chromium.launch(
            executable_path=chromium, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        context = self.browser.new_context(viewport={"width": 1280, "height": 900})
        self.page = context.new_page()
        self.page.set_default_timeout(TIMEOUT_MS)
        expect.set_options(timeout=TIMEOUT_MS)
        self.elsewhere, self.errors = [], []
        self.page.on("request", lambda r: None if r.url.startswith(self.origin + "/") else self.elsewhere.append(r.url))
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)

    def close(self):
        """Fails if the page loaded anything from elsewhere or broke its content-security-policy."""
        assert not self.elsewhere, f"the page loaded something from elsewhere: {self.elsewhere}"
        csp = [e for e in self.errors if "Content Security Policy" in e]
        assert not csp, f"the page broke its own content-security-policy: {csp}"
        self.browser.close()
