#!/usr/bin/env python3
"""Browser check of the book's kernel-free widgets, offline.

Serves the built book (``_build/html``) on 127.0.0.1 with ``http.server`` in a
thread, opens each given page in Debian's headless Chromium through Python
``playwright`` (no ``playwright install``: ``--chromium`` points at the system
binary), blocks every request that is not to that local server (and prints
what was blocked), then for each page:

* waits for a ``fcn-class-slider`` widget (``fcnlib.viz_widgets.class_slider_panel``)
  to be rendered from the embedded widget state,
* checks the slider is visibly laid out (the widget CSS is there) and that the
  one visible panel's title equals the slider's readout,
* presses ArrowRight (ArrowLeft at the last position) on the slider handle and checks that the readout moved
  and that the visible panel now names the new class (the ``jslink`` works).

Exit status 0 and a summary on success; 1 and a one-line ``FAIL: ...`` reason
otherwise (2 for bad arguments).

Examples::

    python tools/check_widgets.py --html _build/html --page chapters/07_evaluation.html
    python tools/check_widgets.py --html _build/html --page a.html --page b.html \\
        --screenshot /tmp/shot.png --fail-on-external
"""

from __future__ import annotations

import argparse
import functools
import http.server
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

DEFAULT_CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
BOX = ".fcn-class-slider"
# ipywidgets 8 sliders are noUiSlider widgets; the handle has role=slider and keyboard support
HANDLE = ".noUi-handle"
READOUT = ".widget-readout"

# JS: the titles of the panels (.fcn-panel) inside the box that are visible now
VISIBLE_TITLES_JS = """(box) => Array.from(box.querySelectorAll('.fcn-panel'))
    .filter(el => el.offsetParent !== null && el.getClientRects().length > 0)
    .map(el => el.getAttribute('data-title'))"""


# JS: how many VBox models in the page's embedded widget state carry the BOX class
EXPECTED_BOXES_JS = """() => {
  let n = 0;
  for (const s of document.querySelectorAll('script[type="application/vnd.jupyter.widget-state+json"]')) {
    const st = JSON.parse(s.textContent).state || {};
    for (const m of Object.values(st)) {
      if (((m.state || {})._dom_classes || []).includes('%s')) n++;
    }
  }
  return n;
}""" % BOX.lstrip(".")


class CheckFailed(Exception):
    """A check failed; the message is the one-line reason."""


@dataclass
class PageLog:
    """What the browser did while a page was open."""

    blocked: list[str] = field(default_factory=list)
    local_errors: list[str] = field(default_factory=list)
    js_errors: list[str] = field(default_factory=list)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


def serve(root: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    """Serve ``root`` on 127.0.0.1 (free port) in a daemon thread; return (server, base URL)."""
    handler = functools.partial(_QuietHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}/"


def _router(base: str, log: PageLog):
    """A route handler: let requests to the local server through, abort and record all others."""

    def route(r) -> None:  # one parameter: playwright would pass the request as a 2nd
        u = r.request.url
        if u.startswith(base) or urlsplit(u).scheme in ("data", "blob", "about"):
            r.continue_()
        else:
            log.blocked.append(u)
            r.abort("blockedbyclient")

    return route


def _short(url: str, n: int = 120) -> str:
    return url if len(url) <= n else url[: n - 3] + "..."


def _check_slider(page, box, where: str) -> str:
    """Move one ``fcn-class-slider`` box's slider; return a summary or raise CheckFailed."""
    box.scroll_into_view_if_needed()
    handle = box.locator(HANDLE).first
    readout = box.locator(READOUT).first
    if handle.count() == 0 or readout.count() == 0:
        raise CheckFailed(f"{where}: no slider handle/readout rendered inside {BOX}")

    # the widget CSS is loaded: the slider track is laid out and the handle has a size
    track = box.locator(".noUi-target").first.bounding_box()
    hbox = handle.bounding_box()
    if not track or track["width"] < 50 or not hbox or hbox["width"] < 4 or hbox["height"] < 4:
        raise CheckFailed(f"{where}: slider is not laid out visibly (widget CSS missing?): track={track}")

    before = readout.inner_text().strip()
    titles = box.evaluate(VISIBLE_TITLES_JS)
    if titles != [before]:
        raise CheckFailed(f"{where}: before moving, visible panel(s) {titles} != slider readout {before!r}")
    n_positions = int(float(handle.get_attribute("aria-valuemax") or 0)) + 1

    # move one step right, or left when the slider starts at its last position
    at_end = handle.get_attribute("aria-valuenow") == handle.get_attribute("aria-valuemax")
    key = "ArrowLeft" if at_end else "ArrowRight"
    handle.focus()
    handle.press(key)
    try:
        page.wait_for_function(
            "([box, old]) => { const r = box.querySelector('.widget-readout');"
            " return r && r.innerText.trim() !== old; }",
            arg=[box.element_handle(), before],
            timeout=5000,
        )
    except Exception:
        raise CheckFailed(f"{where}: slider readout stayed {before!r} after {key}") from None
    after = readout.inner_text().strip()
    try:
        page.wait_for_function(
            f"([box, want]) => {{ const t = ({VISIBLE_TITLES_JS})(box);"
            " return t.length === 1 && t[0] === want; }",
            arg=[box.element_handle(), after],
            timeout=5000,
        )
    except Exception:
        titles2 = box.evaluate(VISIBLE_TITLES_JS)
        raise CheckFailed(
            f"{where}: slider moved {before!r} -> {after!r} but visible panel is {titles2} (jslink broken?)"
        ) from None
    return f"{where}: {before!r} -> {after!r}, panel followed ({n_positions} positions)"


def check_page(
    context, base: str, page_path: str, shot: Path | None, timeout_ms: int, log: PageLog, allow_no_widget: bool = False
) -> str:
    """Check one page; return a one-line summary or raise CheckFailed."""
    page = context.new_page()
    page.on("pageerror", lambda exc: log.js_errors.append(str(exc).splitlines()[0]))

    def on_response(resp) -> None:
        if resp.status >= 400 and resp.url.startswith(base) and not resp.url.endswith("/favicon.ico"):
            log.local_errors.append(f"{resp.status} {resp.url[len(base) - 1:]}")

    page.on("response", on_response)
    url = base + page_path.lstrip("/")
    try:
        resp = page.goto(url, wait_until="load", timeout=timeout_ms)
        if resp is None or resp.status != 200:
            raise CheckFailed(f"{page_path}: HTTP {resp.status if resp else 'no response'}")
        # every fcn-class-slider box in the embedded widget state must get rendered
        expected = page.evaluate(EXPECTED_BOXES_JS)
        if expected == 0:
            if allow_no_widget:
                page.wait_for_timeout(1000)  # let late requests (fonts, MathJax) show up
                return f"{page_path}: no {BOX} widget in its state; page loaded"
            states = page.locator('script[type="application/vnd.jupyter.widget-state+json"]').count()
            raise CheckFailed(
                f"{page_path}: no {BOX} widget in the page's embedded widget state "
                f"({states} widget-state script(s); was the notebook executed with widget state stored?)"
            )
        try:
            page.wait_for_function(
                f"(n) => document.querySelectorAll('{BOX} {HANDLE}').length >= n", arg=expected, timeout=timeout_ms
            )
        except Exception:
            got = page.locator(f"{BOX} {HANDLE}").count()
            why = "; ".join(log.local_errors[:2] + log.js_errors[:2]) or "none seen"
            embed = page.locator('script[src*="embed"]').count()
            raise CheckFailed(
                f"{page_path}: only {got} of the {expected} {BOX} sliders in the widget state rendered "
                f"(embed scripts: {embed}, local 4xx / JS errors: {why})"
            ) from None
        n_boxes = page.locator(BOX).count()
        results = [_check_slider(page, page.locator(BOX).nth(i), f"{page_path} slider {i + 1}/{n_boxes}")
                   for i in range(n_boxes)]
        if shot is not None:
            shot.parent.mkdir(parents=True, exist_ok=True)
            page.locator(BOX).first.scroll_into_view_if_needed()
            page.screenshot(path=str(shot), full_page=False)
        return "; ".join(results)
    finally:
        page.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--html", type=Path, default=Path("_build/html"), help="built book root (default: _build/html)")
    ap.add_argument(
        "--page",
        action="append",
        dest="pages",
        metavar="PATH",
        help="page to check, relative to --html; repeat for several (default: chapters/07_evaluation.html)",
    )
    ap.add_argument("--all-widget-pages", action="store_true",
                    help="also check every page under --html that embeds widget state")
    ap.add_argument("--allow-no-widget", action="store_true",
                    help="pages without a fcn-class-slider only need to load (still reports blocked requests)")
    ap.add_argument("--screenshot", type=Path, help="save a screenshot (PNG) after moving the slider; "
                    "with several pages, the page's name is appended")
    ap.add_argument("--chromium", default=DEFAULT_CHROMIUM, help=f"browser binary (default: {DEFAULT_CHROMIUM})")
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for a page and its widgets")
    ap.add_argument("--fail-on-external", action="store_true", help="fail if the page tried any non-local request")
    ap.add_argument("--allow-local-errors", action="store_true",
                    help="do not fail on local 4xx/5xx responses (missing vendored files)")
    args = ap.parse_args(argv)
    root = args.html.resolve()
    pages = list(args.pages or ([] if args.all_widget_pages else ["chapters/07_evaluation.html"]))
    if args.all_widget_pages and root.is_dir():
        for f in sorted(root.rglob("*.html")):
            rel = f.relative_to(root).as_posix()
            if rel.startswith("_") or rel in pages:
                continue
            if "application/vnd.jupyter.widget-state+json" in f.read_text(encoding="utf-8", errors="replace"):
                pages.append(rel)

    def fail(msg: str) -> int:
        print(f"FAIL: {msg}", flush=True)
        return 1

    if not pages:
        return fail("no page to check (no --page given and no page under --html embeds widget state)")

    if not root.is_dir():
        return fail(f"{args.html} is not a directory (build the book first)")
    for p in pages:
        if not (root / p).is_file():
            return fail(f"{p} not found under {args.html}")
    if not Path(args.chromium).exists():
        return fail(f"browser {args.chromium} not found (apt-get install -y chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return fail("python playwright is not installed (pip install playwright)")

    httpd, base = serve(root)
    timeout_ms = int(args.timeout * 1000)
    all_blocked: dict[str, list[str]] = {}
    summaries: list[str] = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
            try:
                for page_path in pages:
                    log = PageLog()
                    context = browser.new_context(viewport={"width": 1200, "height": 900}, service_workers="block")

                    context.route("**/*", _router(base, log))
                    shot = args.screenshot
                    if shot is not None and len(pages) > 1:
                        shot = shot.with_name(f"{shot.stem}-{Path(page_path).stem}{shot.suffix or '.png'}")
                    try:
                        summary = check_page(context, base, page_path, shot, timeout_ms, log, args.allow_no_widget)
                    finally:
                        context.close()
                        all_blocked[page_path] = log.blocked
                        for u in log.blocked:
                            print(f"blocked non-local request on {page_path}: {_short(u)}")
                    if log.local_errors and not args.allow_local_errors:
                        raise CheckFailed(f"{page_path}: local request(s) failed: {', '.join(log.local_errors[:5])}")
                    if log.blocked and args.fail_on_external:
                        raise CheckFailed(f"{page_path}: {len(log.blocked)} non-local request(s), first {_short(log.blocked[0])}")
                    if log.js_errors:
                        print(f"note: JS errors on {page_path}: {'; '.join(log.js_errors[:3])}")
                    print(f"ok   {summary}", flush=True)
                    summaries.append(summary)
            finally:
                browser.close()
    except CheckFailed as exc:
        return fail(str(exc))
    except Exception as exc:  # playwright/browser trouble: still one line
        return fail(f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}")
    finally:
        httpd.shutdown()

    n_blocked = sum(len(v) for v in all_blocked.values())
    print(f"PASS: {len(pages)} page(s) checked offline; {n_blocked} non-local request(s) blocked"
          + (f"; screenshot {args.screenshot}" if args.screenshot else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
