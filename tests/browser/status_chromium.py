"""Headless Chromium reads the admin listener's /status page (issue 18).

Starts `prt-gate demo` (dev SSO, demo upstream, the gate on the shipped
policy.toml), logs in an Office and a Client user the way a browser does
(login → SSO → callback, cookies kept by hand), sends a known request mix
through the gate with the standard library, then opens
http://ADMIN/status in Debian's headless Chromium and checks the exact counts
the route table shows per rule, the last refusals (role, method, path, rule;
no user, no query string) and the policy digest against the file's SHA-256.
With --screenshot FILE it saves a PNG of the page.

Usage: python3 tests/browser/status_chromium.py --bin target/debug/prt-gate [--screenshot docs/status.png]
"""

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from demo_chromium import WebDriver, free_port, wait_port  # noqa: E402


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


OPENER = urllib.request.build_opener(NoRedirect)


def get(url, cookie=None, accept="application/json"):
    req = urllib.request.Request(url, headers={"Accept": accept, **({"Cookie": cookie} if cookie else {})})
    try:
        with OPENER.open(req, timeout=10) as r:
            r.read()
            return r.status, r.headers
    except urllib.error.HTTPError as e:
        e.read()
        return e.code, e.headers


def login(gate, email):
    hint = urllib.parse.quote(email)
    status, h = get(f"{gate}/auth/login/?next=/&login_hint={hint}")
    assert status == 302, status
    # The callback is accepted only from the browser that started the login: carry the
    # login-binding cookie the gate just set.
    binding = "; ".join(c.split(";")[0] for c in h.get_all("Set-Cookie") or [] if "Max-Age=0" not in c)
    status, h = get(h["Location"])
    assert status == 302, f"SSO authorize: {status}"
    callback = h["Location"]
    assert callback.startswith(gate + "/auth/callback/"), callback
    status, h = get(callback, cookie=binding)
    cookies = [c.split(";")[0] for c in h.get_all("Set-Cookie") or [] if c.startswith("prt_session=")]
    assert status == 302 and cookies, f"callback: {status}"
    return cookies[0]


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
        admin = config = None
        for line in demo.stdout:
            if "access log" in line:
                config = os.path.join(os.path.dirname(line.split("access log")[1].strip()), "policy.toml")
            if "admin        http://" in line:
                admin = line.split("http://")[1].split("/")[0]
            if line.startswith("Press Ctrl-C"):
                break
        else:
            raise RuntimeError("demo exited before it was ready")
        assert admin, "no admin address in the demo banner"
        gate = f"http://127.0.0.1:{port}"

        office = login(gate, "office@example.com")
        client = login(gate, "client@example.com")
        mix = [
            ("/api/health/", None, 3, 200),
            ("/api/balances/", None, 1, 401),
            ("/api/balances/", office, 4, 200),
            ("/api/balances/?token=sekrit-query-value", client, 2, 403),
            ("/api/not-in-the-policy/", client, 1, 403),
        ]
        for path, cookie, n, want in mix:
            for _ in range(n):
                status, _ = get(gate + path, cookie)
                assert status == want, f"{path}: {status} != {want}"

        driver_port = free_port()
        driver = subprocess.Popen([shutil.which("chromedriver") or "/usr/bin/chromedriver", f"--port={driver_port}"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(driver)
        wait_port(driver_port, driver, "chromedriver")
        wd = WebDriver(f"http://127.0.0.1:{driver_port}")
        wd.go(f"http://{admin}/status")

        # Columns: # rule who hits allowed login refused refused-by-role errors.
        def row(rule):
            cells = wd.text(f'#routes tr[data-rule="{rule}"]').split(" ")
            return " ".join(cells[cells.index(rule.split(" ")[-1]) + 1:])

        checks = {
            "GET /api/health/": "public 3 3 0 0 0",
            "GET /api/balances/": "Admin, Office +reports:view 7 4 1 2 Client 2 0",
            "no_rule": "built-in 1 0 0 1 none 1 0",
        }
        for rule, want in checks.items():
            got = row(rule)
            assert got == want, f"{rule}: {got!r} != {want!r}"
        refusals = wd.text("#refusals")
        assert "Client GET /api/balances/ /api/balances/ deny" in refusals, refusals
        assert "none GET /api/not-in-the-policy/ no_rule deny" in refusals, refusals
        page = wd.call("GET", wd.s("/source"))
        assert "sekrit-query-value" not in page and "@example.com" not in page
        # The digest is the SHA-256 of the file the demo's gate loaded.
        digest = wd.text("#digest")
        want = hashlib.sha256(open(config, "rb").read()).hexdigest()
        assert digest == want, f"{digest} != sha256({config}) {want}"
        if args.screenshot:
            wd.call("POST", wd.s("/window/rect"), {"width": 1200, "height": 1500})
            wd.screenshot(args.screenshot)
            print(f"screenshot: {args.screenshot}")
        print("chromium status check: ok (exact per-rule counts, last refusals without user or query, digest)")
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
