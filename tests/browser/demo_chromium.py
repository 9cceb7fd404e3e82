"""Headless Chromium clicks through `prt-gate demo` (issue 8).

Starts the demo and chromedriver on free loopback ports, then, in Debian's
headless Chromium: opens the demo URL, is sent to the dev SSO's login page,
clicks the Client user, lands on /client.html, checks the identity the
upstream received, clicks two API buttons (one allowed, one refused by the
policy) and checks what the page reports. With --screenshot FILE it saves a
PNG of the Client view.

WebDriver is spoken directly over HTTP (W3C protocol), so nothing beyond the
standard library, chromium and chromium-driver is needed.

Usage: python3 tests/browser/demo_chromium.py --bin target/debug/prt-gate [--screenshot docs/demo-client.png]
"""

import argparse
import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

ELEMENT = "element-6066-11e4-a52e-4f735466cecf"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class WebDriver:
    def __init__(self, base):
        self.base = base
        caps = {
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": {
                        "binary": shutil.which("chromium") or "/usr/bin/chromium",
                        "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                                 "--window-size=1100,1000", "--no-first-run", "--disable-extensions"],
                    },
                }
            }
        }
        self.session = self.call("POST", "/session", caps)["sessionId"]

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return json.loads(r.read() or b"{}").get("value")
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"{method} {path}: {e.code} {e.read()[:500]!r}") from None

    def s(self, path):
        return f"/session/{self.session}{path}"

    def go(self, url):
        self.call("POST", self.s("/url"), {"url": url})

    def url(self):
        return self.call("GET", self.s("/url"))

    def find(self, css, timeout=20):
        deadline = time.time() + timeout
        while True:
            try:
                return self.call("POST", self.s("/element"), {"using": "css selector", "value": css})[ELEMENT]
            except RuntimeError:
                if time.time() > deadline:
                    raise RuntimeError(f"no element {css!r} on {self.url()}") from None
                time.sleep(0.2)

    def click(self, css):
        self.call("POST", self.s(f"/element/{self.find(css)}/click"), {})

    def text(self, css):
        return self.call("GET", self.s(f"/element/{self.find(css)}/text"))

    def wait_text(self, css, predicate, timeout=20):
        deadline = time.time() + timeout
        while True:
            t = self.text(css)
            if predicate(t):
                return t
            if time.time() > deadline:
                raise RuntimeError(f"{css!r} never satisfied the check; last text: {t!r}")
            time.sleep(0.2)

    def screenshot(self, path):
        png = base64.b64decode(self.call("GET", self.s("/screenshot")))
        with open(path, "wb") as f:
            f.write(png)

    def quit(self):
        try:
            self.call("DELETE", self.s(""))
        except Exception:
            pass


def wait_port(port, proc, what, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited ({proc.returncode})")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on {port}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--screenshot")
    args = ap.parse_args()

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PRT_GATE_", "AWS_"))}
    demo = subprocess.Popen([args.bin, "demo", "--listen", f"127.0.0.1:{port}"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, env=env, text=True)
    procs = [demo]
    wd = None
    try:
        for line in demo.stdout:
            if line.startswith("Press Ctrl-C"):
                break
        else:
            raise RuntimeError("demo exited before it was ready")
        url = f"http://127.0.0.1:{port}"
        driver_port = free_port()
        driver = subprocess.Popen([shutil.which("chromedriver") or "/usr/bin/chromedriver", f"--port={driver_port}"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(driver)
        wait_port(driver_port, driver, "chromedriver")
        wd = WebDriver(f"http://127.0.0.1:{driver_port}")

        # Anonymous: the gate sends the browser to the SSO's login page.
        wd.go(url + "/")
        wd.find("#users")
        assert "/o/authorize/" in wd.url(), wd.url()
        # Click the Client user: SSO → gate callback → landing page.
        wd.click('a[id="user-client@example.com"]')
        wd.wait_text("#role", lambda t: t == "Client")
        assert wd.url() == url + "/client.html", wd.url()
        assert wd.text("#h-x-auth-email") == "client@example.com"
        assert wd.text("#h-x-tenant-id") == "primetrade"
        assert wd.text("#assertion").startswith("X-Prt-Assertion: verified"), wd.text("#assertion")

        # An allowed and a refused API call, as the page reports them.
        wd.click('button[data-path="/api/client/shipments/"]')
        ok = wd.wait_text('tr:nth-child(2) .out', lambda t: t and t != "…")
        assert ok.startswith("200 allowed"), ok
        wd.click('button[data-path="/api/balances/"]')
        no = wd.wait_text('tr:nth-child(4) .out', lambda t: t and t != "…")
        assert no.startswith("403 refused") and "Admin or Office" in no, no
        wd.click('button[data-path="/api/auth/me/"]')
        wd.wait_text('tr:nth-child(1) .out', lambda t: t.startswith("200"))
        if args.screenshot:
            wd.screenshot(args.screenshot)
            print(f"screenshot: {args.screenshot}")

        # Sign out by clicking: back to the SSO's page on the next visit.
        wd.click("#logout")
        wd.click("#confirm-logout")
        # The click only starts the logout's form post: wait until its redirects end on the
        # SSO's sign-in page (navigating away earlier could cancel the post unsent).
        wd.find("#users")
        assert "/o/authorize/" in wd.url(), wd.url()
        wd.go(url + "/client.html")
        wd.find("#users")
        assert "/o/authorize/" in wd.url(), wd.url()
        print("chromium demo check: ok (login by click, identity shown, 200 and 403 reported, logout)")
        return 0
    finally:
        if wd:
            wd.quit()
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


if __name__ == "__main__":
    sys.exit(main())
