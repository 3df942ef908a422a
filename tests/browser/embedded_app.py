"""The merchant app in a real browser, framed the way Salla frames it.

Run by the Rust integration test `browser::*` (tests/it/browser.rs), which starts the app against the fakes,
installs stores, and writes a spec (JSON) naming the app's URL, tokens the fake Salla will accept or refuse,
and what each tenant's screens must show. This script serves the fake Salla host page (tests/browser/host.html)
on http://localhost:P, so the app on http://127.0.0.1:Q is framed cross-site and cookies behave as they do
inside Salla, then drives Debian's Chromium through Playwright for Python (no browser download).

Usage: python embedded_app.py SPEC.json SCENARIO...   (happy refresh invalid isolation crm screens lcp)
Prints one JSON line per scenario with what it measured; exits non-zero with the reason on the first failure.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import sys
import threading
import time
import urllib.parse
from pathlib import Path

from playwright.sync_api import Frame, Page, sync_playwright

HERE = Path(__file__).resolve().parent
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "[::1]"}
SCREENS = ["home", "customers", "customer", "orders", "order", "carts", "crm", "settings", "team"]
TIMEOUT_MS = 20_000


class Failure(Exception):
    pass


def check(condition: bool, message: str) -> None:
    if not condition:
        raise Failure(message)


def serve_host() -> tuple[http.server.ThreadingHTTPServer, int]:
    """The fake Salla dashboard, on localhost (a different site from the app's 127.0.0.1)."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):  # noqa: D401 - keep the test output readable
            pass

    handler = functools.partial(Quiet, directory=str(HERE))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


class Run:
    def __init__(self, spec: dict, playwright):
        self.spec = spec
        self.app = spec["app_url"].rstrip("/")
        self.app_origin = urllib.parse.urlsplit(self.app).netloc
        self.shots = Path(spec["screenshots"])
        self.shots.mkdir(parents=True, exist_ok=True)
        self.server, self.host_port = serve_host()
        self.browser = playwright.chromium.launch(
            executable_path=spec.get("chromium", "/usr/bin/chromium"),
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
            ],
        )

    @staticmethod
    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    def close(self):
        self.browser.close()
        self.server.shutdown()

    def host_url(self, tokens: list[str], lang: str = "ar", theme: str = "light") -> str:
        query = urllib.parse.urlencode(
            {
                "app": self.app,
                "tokens": ",".join(tokens),
                "lang": lang,
                "theme": theme,
                "app_id": self.spec["app_id"],
            }
        )
        return f"http://localhost:{self.host_port}/host.html?{query}"

    def open(self, tokens: list[str], lang: str = "ar", theme: str = "light", width: int = 1280):
        """A fresh browser context (no shared storage) with the host page loaded; records every request."""
        context = self.browser.new_context(
            viewport={"width": width, "height": 900}, color_scheme="dark" if theme == "dark" else "light"
        )
        page = context.new_page()
        requests: list[dict] = []

        def record(request):
            requests.append(
                {"url": request.url, "method": request.method, "headers": request.headers}
            )

        page.on("request", record)
        # What the page said, for the failure message: console errors and refused requests.
        page.on("console", lambda m: m.type in ("error", "warning") and self.log(f"console {m.type}: {m.text}"))
        page.on("requestfailed", lambda r: self.log(f"request failed: {r.method} {r.url} {r.failure}"))
        page.on(
            "response",
            lambda r: r.status >= 400
            and self.log(f"response {r.status}: {r.request.method} {r.url} {r.headers.get('content-type')}"),
        )
        page.goto(self.host_url(tokens, lang, theme), wait_until="domcontentloaded")
        return context, page, requests

    def app_frame(self, page: Page) -> Frame:
        deadline = time.monotonic() + TIMEOUT_MS / 1000
        while time.monotonic() < deadline:
            for frame in page.frames:
                if frame.url.startswith(self.app):
                    return frame
            page.wait_for_timeout(50)
        raise Failure(
            f"the app's frame never loaded: frames {[f.url for f in page.frames]}, "
            f"loads {page.evaluate('window.__loads')}, events {self.events(page)}"
        )

    def events(self, page: Page) -> list[str]:
        return [e["event"] for e in page.evaluate("window.__events")]

    def wait_event(self, page: Page, name: str) -> None:
        try:
            page.wait_for_function(
                "name => window.__events.some(e => e.event === name)", arg=name, timeout=TIMEOUT_MS
            )
        except Exception as error:  # noqa: BLE001 - turned into a readable failure
            raise Failure(f"the app never sent {name}; it sent {self.events(page)}") from error

    def testid(self, frame: Frame, testid: str):
        locator = frame.locator(f'[data-testid="{testid}"]').first
        try:
            locator.wait_for(state="visible", timeout=TIMEOUT_MS)
        except Exception as error:  # noqa: BLE001 - turned into a readable failure
            body = frame.locator("body").inner_text()[:600] if not frame.is_detached() else "(detached)"
            raise Failure(f"[data-testid={testid}] never appeared at {frame.url}; the page shows: {body!r}") from error
        return locator

    def expect(self, frame: Frame, expected: dict, who: str) -> None:
        """Each element shows its text: exactly for a `…-value` element, as a part of it otherwise."""
        for testid, text in expected.items():
            shown = self.testid(frame, testid).inner_text().strip()
            matches = shown == text if testid.endswith("-value") else text in shown
            check(matches, f"{who}'s {testid} shows {shown!r}, expected {text!r}")

    def assert_loopback_and_bearer(self, requests: list[dict]) -> int:
        """No request leaves loopback; every request to the app's data routes carries the Wosool session."""
        authorised = 0
        for request in requests:
            parts = urllib.parse.urlsplit(request["url"])
            if parts.scheme in ("data", "blob", "about"):
                continue
            check(
                parts.hostname in LOOPBACK_HOSTS,
                f"a request left loopback: {request['method']} {request['url']}",
            )
            if parts.netloc != self.app_origin:
                continue
            path = parts.path
            if path.startswith("/app") or (path.startswith("/api/") and path != "/api/embedded/session"):
                bearer = request["headers"].get("authorization", "")
                check(
                    bearer.startswith("Bearer wss_"),
                    f"{request['method']} {path} went without the session bearer ({bearer[:12]!r})",
                )
                authorised += 1
        return authorised

    # --- scenarios -------------------------------------------------------------------------------------

    def happy(self) -> dict:
        tenant = self.spec["tenants"]["a"]
        context, page, requests = self.open([tenant["token"]])
        started = time.monotonic()
        frame = self.app_frame(page)
        self.wait_event(page, "embedded::ready")
        ready_ms = (time.monotonic() - started) * 1000
        html = frame.locator("html")
        check(html.get_attribute("dir") == "rtl", f"dir is {html.get_attribute('dir')!r}, not rtl")
        check(html.get_attribute("lang") == "ar", f"lang is {html.get_attribute('lang')!r}, not ar")
        title = frame.title()
        check(any("\u0600" <= ch <= "\u06ff" for ch in title), f"the title {title!r} is not Arabic")
        self.expect(frame, tenant["expect"], "tenant A")
        authorised = self.assert_loopback_and_bearer(requests)
        check(authorised >= 1, "no request to the app carried the session")
        events = self.events(page)
        check(events.count("embedded::ready") == 1, f"ready sent {events.count('embedded::ready')} times")
        check("embedded::auth.refresh" not in events, "a valid token caused a refresh")
        page.screenshot(path=str(self.shots / "happy-path-host.png"), full_page=True)
        context.close()
        return {"ready_ms": round(ready_ms), "authorised_requests": authorised, "events": events}

    def refresh(self) -> dict:
        tenant = self.spec["tenants"]["a"]
        context, page, requests = self.open([tenant["expired_token"], tenant["token"]])
        self.wait_event(page, "embedded::ready")
        frame = self.app_frame(page)
        first = next(iter(tenant["expect"]))
        self.testid(frame, first)
        events = self.events(page)
        check(
            events.count("embedded::auth.refresh") == 1,
            f"expected exactly one refresh, saw {events.count('embedded::auth.refresh')}: {events}",
        )
        check(page.evaluate("window.__loads") == 2, "the frame was not reloaded exactly once")
        check("embedded::destroy" not in events, "an expired token destroyed the app")
        self.assert_loopback_and_bearer(requests)
        context.close()
        return {"events": events}

    def invalid(self) -> dict:
        tenant = self.spec["tenants"]["a"]
        context, page, requests = self.open([tenant["invalid_token"]])
        self.wait_event(page, "embedded::destroy")
        events = self.events(page)
        check("embedded::ready" not in events, "an invalid token still signalled ready")
        check("embedded::auth.refresh" not in events, "an invalid token asked for a refresh")
        self.assert_loopback_and_bearer(requests)
        context.close()
        return {"events": events}

    def isolation(self) -> dict:
        a, b = self.spec["tenants"]["a"], self.spec["tenants"]["b"]
        context, page, requests = self.open([b["token"]])
        frame = self.app_frame(page)
        self.wait_event(page, "embedded::ready")
        self.expect(frame, b["expect"], "tenant B")
        self.testid(frame, "nav-customers").click()
        listing = self.testid(frame, "screen-customers").inner_text()
        for name in a["names"]:
            check(name not in listing, f"tenant B's customers list shows A's customer {name!r}")
        check(any(name in listing for name in b["names"]), "tenant B's customers list lacks B's customers")
        # A's order, asked for by B's session from inside the page: the app must not have it.
        # htmx adds the session to every request it makes, as a click would.
        leaked = frame.evaluate(
            """(path) => new Promise(resolve => {
                 document.body.addEventListener('htmx:afterRequest',
                   e => resolve({ status: e.detail.xhr.status }), { once: true });
                 htmx.ajax('GET', path, { target: 'body', swap: 'none' });
               })""",
            a["order_path"],
        )
        check(leaked["status"] == 404, f"B's session asked for A's order and got {leaked['status']}")
        self.assert_loopback_and_bearer(requests)
        context.close()
        return {"foreign_order_status": leaked["status"]}

    def screens(self) -> dict:
        tenant = self.spec["tenants"]["a"]
        taken = []
        for lang in ("ar", "en"):
            for theme in ("light", "dark"):
                context, page, requests = self.open([tenant["token"]], lang=lang, theme=theme)
                frame = self.app_frame(page)
                self.wait_event(page, "embedded::ready")
                expected_dir = "rtl" if lang == "ar" else "ltr"
                check(
                    frame.locator("html").get_attribute("dir") == expected_dir,
                    f"{lang}: dir is not {expected_dir}",
                )
                for screen in SCREENS:
                    self.show(frame, screen, tenant)
                    name = f"{screen}-{lang}-{theme}.png"
                    frame.locator("body").screenshot(path=str(self.shots / name))
                    page.screenshot(path=str(self.shots / f"host-{name}"))
                    taken.append(name)
                self.assert_loopback_and_bearer(requests)
                context.close()
        return {"screenshots": len(taken), "folder": str(self.shots)}

    def crm(self) -> dict:
        """A note created and then edited through the CRM screen lands in the tenant's Twenty workspace."""
        tenant = self.spec["tenants"]["a"]
        context, page, requests = self.open([tenant["token"]])
        frame = self.app_frame(page)
        self.wait_event(page, "embedded::ready")
        self.testid(frame, "nav-crm").click()
        self.testid(frame, "screen-crm-notes")
        title = f"متابعة العميل {int(time.time())}"
        self.testid(frame, "crm-new").click()
        self.testid(frame, "screen-crm-form")
        self.testid(frame, "crm-title").fill(title)
        self.testid(frame, "crm-body").fill("اتصل بالعميل بخصوص الطلب")
        self.testid(frame, "crm-save").click()
        self.testid(frame, "screen-crm-notes")
        rows = frame.locator('[data-testid="crm-row-title"]')
        frame.wait_for_function(
            "t => [...document.querySelectorAll('[data-testid=crm-row-title]')].some(e => e.textContent.trim() === t)",
            arg=title,
            timeout=TIMEOUT_MS,
        )
        check(title in rows.all_inner_texts(), f"the new note is not listed: {rows.all_inner_texts()}")
        edited = title + " (تم)"
        frame.locator('[data-testid="crm-row"]', has_text=title).locator('[data-testid="crm-edit"]').click()
        self.testid(frame, "screen-crm-form")
        self.testid(frame, "crm-title").fill(edited)
        self.testid(frame, "crm-save").click()
        self.testid(frame, "screen-crm-notes")
        frame.wait_for_function(
            "t => [...document.querySelectorAll('[data-testid=crm-row-title]')].some(e => e.textContent.trim() === t)",
            arg=edited,
            timeout=TIMEOUT_MS,
        )
        frame.locator("body").screenshot(path=str(self.shots / "crm-note-edited-ar-light.png"))
        self.assert_loopback_and_bearer(requests)
        context.close()
        return {"note": edited}

    def show(self, frame: Frame, screen: str, tenant: dict) -> None:
        """Navigates like a merchant would: the nav for top-level screens, a row's link for detail screens."""
        if screen == "customer":
            self.testid(frame, "nav-customers").click()
            self.testid(frame, "screen-customers")
            frame.locator('[data-testid="customer-row"] a').first.click()
        elif screen == "order":
            self.testid(frame, "nav-orders").click()
            self.testid(frame, "screen-orders")
            frame.locator('[data-testid="order-row"] a').first.click()
        else:
            self.testid(frame, f"nav-{screen}").click()
        # The CRM screen opens on its notes tab.
        self.testid(frame, "screen-crm-notes" if screen == "crm" else f"screen-{screen}")
        frame.wait_for_load_state("networkidle")

    def lcp(self) -> dict:
        """Largest contentful paint of a cold Home, and what it transferred (for scripts/bench)."""
        tenant = self.spec["tenants"]["a"]
        runs = []
        for _ in range(int(self.spec.get("lcp_runs", 5))):
            context, page, _ = self.open([tenant["token"]])
            frame = self.app_frame(page)
            self.wait_event(page, "embedded::ready")
            first = next(iter(tenant["expect"]))
            self.testid(frame, first)
            lcp = frame.evaluate(
                """() => new Promise(resolve => {
                     new PerformanceObserver(list => {
                       const entries = list.getEntries();
                       resolve(entries[entries.length - 1].startTime);
                     }).observe({ type: 'largest-contentful-paint', buffered: true });
                   })"""
            )
            transferred = frame.evaluate(
                """() => performance.getEntriesByType('navigation').concat(performance.getEntriesByType('resource'))
                         .reduce((sum, e) => sum + (e.transferSize || e.encodedBodySize || 0), 0)"""
            )
            runs.append({"lcp_ms": round(lcp, 1), "transferred_bytes": transferred})
            context.close()
        lcps = sorted(r["lcp_ms"] for r in runs)
        return {"runs": runs, "lcp_median_ms": lcps[len(lcps) // 2], "lcp_max_ms": lcps[-1]}


def main() -> int:
    spec = json.loads(Path(sys.argv[1]).read_text())
    scenarios = sys.argv[2:] or ["happy", "refresh", "invalid", "isolation", "crm", "screens"]
    with sync_playwright() as playwright:
        run = Run(spec, playwright)
        try:
            for scenario in scenarios:
                started = time.monotonic()
                try:
                    result = getattr(run, scenario)()
                except Failure as failure:
                    print(json.dumps({"scenario": scenario, "ok": False, "error": str(failure)}), flush=True)
                    return 1
                result.update(scenario=scenario, ok=True, secs=round(time.monotonic() - started, 2))
                print(json.dumps(result, ensure_ascii=False), flush=True)
        finally:
            run.close()
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PW_TEST_SCREENSHOT_NO_FONTS_READY", "1")
    sys.exit(main())
