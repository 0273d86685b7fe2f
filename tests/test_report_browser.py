"""`rl-reason report` in a real browser: headless Chromium opens the page from file:// and must
paint every plot, pixel for pixel.

Chromium is Debian's `chromium` (tests/system_deps.sh installs it, like SLURM for the SLURM test).
It is driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``: NUL-terminated
JSON on file descriptors 3 and 4), so no port is opened. Nothing leaves the machine: the page is a
file:// URL with data: images (every request it makes is checked), background services are off
by flag, and ``--host-resolver-rules`` fails every host name lookup. Without that last flag
Chromium 156 still asks DNS for clients2.google.com and accounts.google.com (seen with strace).

A plot counts as rendered when Chromium decoded it (``img.decode()``), laid it out at the PNG's
own size, and the screenshot at its place equals the PNG as Pillow decodes it. Decoding alone is
not enough: Chromium paints a truncated or mid-stream-corrupted PNG partially and reports no
error, which only the pixel comparison catches (the second test proves the checker sees it).
"""

from __future__ import annotations

import base64
import fcntl
import io
import json
import os
import re
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    import numpy as np


BINARIES = ("chromium", "chromium-browser")
# Off the network and fit for running as root in a container (tiny /dev/shm included).
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-dev-shm-usage",
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
]
WIDTH = 1300
PIXEL_TOLERANCE = 2  # per channel, for colour rounding; a broken plot differs by ~255 over many pixels

pytestmark = pytest.mark.slow  # a tiny GRPO run plus a browser: 10-30 s on 2 cores


def find_chromium() -> tuple[str | None, str | None]:
    """(the chromium binary, None), or (None, why): tests/system_deps.sh installs it."""
    found = next(filter(None, map(shutil.which, BINARIES)), None)
    if found:
        return found, None
    return None, "chromium is not installed: run tests/system_deps.sh (the README's test command does)"


def _above_4(fd: int) -> int:
    """The fd moved to a number that dup2 onto 3 and 4 in the child cannot clobber."""
    high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return high


class Chromium:
    """A headless Chromium and a DevTools-protocol client on its pipe."""

    def __init__(self, binary: str, profile: Path):
        self.log = profile.parent / "chromium.log"
        to_chrome, self._in = map(_above_4, os.pipe())
        self._out, from_chrome = map(_above_4, os.pipe())
        # Chromium reads commands on fd 3 and writes replies on fd 4. A small exec shim puts the
        # pipes there: no preexec_fn (this process has torch's threads), and dash's redirections
        # only reach fd 9.
        shim = (f"import os, sys; os.dup2({to_chrome}, 3); os.dup2({from_chrome}, 4); "
                "os.execvp(sys.argv[1], sys.argv[1:])")
        args = [*FLAGS, f"--user-data-dir={profile}", f"--window-size={WIDTH},1000", "--remote-debugging-pipe",
                "about:blank"]
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", shim, binary, *args],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, pass_fds=(to_chrome, from_chrome),
            )  # fmt: skip
        os.close(to_chrome)
        os.close(from_chrome)
        self._buf = b""
        self._id = 0
        self.events: list[dict] = []

    def close(self):
        try:
            self.call("Browser.close", timeout=10)
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._in)
        os.close(self._out)

    def _message(self, deadline: float) -> dict:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._out], [], [], left)[0]:
                raise TimeoutError(f"no reply from Chromium; its log: {self.log.read_text()[-1500:]}")
            chunk = os.read(self._out, 1 << 20)
            if not chunk:
                raise RuntimeError(f"Chromium closed the pipe (exit {self.proc.poll()}); "
                                   f"its log: {self.log.read_text()[-1500:]}")
            self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def call(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 30) -> dict:
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params or {}, **({"sessionId": session} if session else {})}
        data = json.dumps(msg).encode() + b"\0"
        while data:
            data = data[os.write(self._in, data) :]
        deadline = time.monotonic() + timeout
        while True:
            reply = self._message(deadline)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]
            self.events.append(reply)

    def open(self, url: str, session: str, timeout: float = 30):
        """Navigate and wait until that document has fired its load event."""
        nav = self.call("Page.navigate", {"url": url}, session)
        if nav.get("errorText"):
            raise RuntimeError(f"could not open {url}: {nav['errorText']}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:  # may run in the old about:blank document, or be cut off when it is replaced
                if self.evaluate(LOADED_JS, session) == url:
                    return
            except RuntimeError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"{url} did not load in {timeout} s")

    def evaluate(self, expression: str, session: str):
        result = self.call("Runtime.evaluate", {"expression": expression, "awaitPromise": True, "returnByValue": True},
                           session)
        if "exceptionDetails" in result:
            raise RuntimeError(f"page script failed: {result['exceptionDetails']}")
        return result["result"]["value"]


LOADED_JS = ("new Promise((done) => document.readyState === 'complete' ? done(location.href)"
             " : addEventListener('load', () => done(location.href)))")
IMAGES_JS = """
Promise.all([...document.images].map(async (img) => {
  let error = null;
  try { await img.decode(); } catch (e) { error = String(e); }
  const r = img.getBoundingClientRect();
  return {alt: img.alt, complete: img.complete, naturalWidth: img.naturalWidth, naturalHeight: img.naturalHeight,
          error, x: r.left + scrollX, y: r.top + scrollY, width: r.width, height: r.height};
}))
"""


def render(browser: Chromium, html: Path) -> tuple[list[dict], np.ndarray, list[str], str]:
    """Open ``html`` in a new tab: its <img>s as Chromium sees them once loaded, a screenshot of the
    whole page (RGB array), every URL the page requested, and its <h1> text."""
    import numpy as np
    from PIL import Image

    target = browser.call("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = browser.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    try:
        browser.call("Network.enable", session=session)
        browser.open(html.resolve().as_uri(), session)
        # The whole page in the viewport, so the screenshot and the layout are one state.
        height = browser.evaluate("document.documentElement.scrollHeight", session)
        metrics = {"width": WIDTH, "height": height, "deviceScaleFactor": 1, "mobile": False}
        browser.call("Emulation.setDeviceMetricsOverride", metrics, session)
        images = browser.evaluate(IMAGES_JS, session)
        heading = browser.evaluate("document.querySelector('h1')?.textContent ?? ''", session)
        shot = browser.call("Page.captureScreenshot", {"format": "png"}, session)["data"]
    finally:
        browser.call("Target.closeTarget", {"targetId": target})
    requests = [e["params"]["request"]["url"] for e in browser.events
                if e.get("method") == "Network.requestWillBeSent" and e.get("sessionId") == session]
    screenshot = np.asarray(Image.open(io.BytesIO(base64.b64decode(shot))).convert("RGB")).astype(int)
    return images, screenshot, requests, heading


def embedded_pngs(page: str) -> list[bytes]:
    return [base64.b64decode(b) for b in re.findall(r'<img[^>]* src="data:image/png;base64,([^"]+)"', page)]


def decode_png(data: bytes) -> np.ndarray:
    """The PNG as Pillow decodes it, over a white page (RGB array)."""
    import numpy as np
    from PIL import Image

    image = Image.open(io.BytesIO(data)).convert("RGBA")
    white = Image.new("RGBA", image.size, (255, 255, 255, 255))
    return np.asarray(Image.alpha_composite(white, image).convert("RGB")).astype(int)


def plot_problems(images: list[dict], shot, expected: list) -> dict[str, str]:
    """alt text -> what is wrong, for every <img> that Chromium did not paint as the expected pixels."""
    problems = {}
    assert len(images) == len(expected), (len(images), len(expected))
    for img, want in zip(images, expected):
        h, w = want.shape[:2]
        if img["error"] or not img["complete"] or not img["naturalWidth"]:
            problems[img["alt"]] = f"not decoded: {img['error']} (naturalWidth {img['naturalWidth']})"
        elif (img["naturalWidth"], img["naturalHeight"]) != (w, h):
            problems[img["alt"]] = f"decoded as {img['naturalWidth']}x{img['naturalHeight']}, the PNG is {w}x{h}"
        elif (img["width"], img["height"]) != (w, h):
            problems[img["alt"]] = f"laid out at {img['width']}x{img['height']}, not its natural {w}x{h}"
        else:  # images are snapped to whole pixels; allow either neighbour of a fractional position
            best = None
            for y in {int(img["y"]) + d for d in (-1, 0, 1)}:
                for x in {int(img["x"]) + d for d in (-1, 0, 1)}:
                    crop = shot[max(y, 0) : y + h, max(x, 0) : x + w]
                    if crop.shape == want.shape:
                        bad = int((abs(crop - want).max(axis=2) > PIXEL_TOLERANCE).sum())
                        best = bad if best is None else min(best, bad)
            if best is None:
                problems[img["alt"]] = f"outside the screenshot ({img['x']}, {img['y']})"
            elif best:
                problems[img["alt"]] = f"{best} of {w * h} pixels on screen differ from the PNG"
    return problems


@pytest.fixture(scope="module")
def chromium(tmp_path_factory):
    started = time.monotonic()
    binary, reason = find_chromium()
    if reason:
        pytest.skip(reason)
    took = time.monotonic() - started
    if took > 1:
        print(f"installed chromium with apt in {took:.0f} s")
    tmp = tmp_path_factory.mktemp("chromium")
    browser = Chromium(binary, tmp / "profile")
    yield browser
    browser.close()


@pytest.fixture(scope="module")
def report(tmp_path_factory, tiny_model_dir, write_recipe):
    """``rl-reason report RUN_DIR`` on a real 2-step GRPO run of the tiny model."""
    from typer.testing import CliRunner

    from rl_reason.cli import app
    from rl_reason.train.run import load_train_recipe, train

    tmp = tmp_path_factory.mktemp("report_browser")
    run = train(load_train_recipe(write_recipe(tmp / "recipe.yaml", tiny_model_dir, tmp / "run", max_steps=2)))
    result = CliRunner().invoke(app, ["report", str(run.output_dir)])
    assert result.exit_code == 0, result.output
    path = Path(run.output_dir) / "report.html"
    assert f"report: {path}" in result.output
    return path


def test_chromium_paints_every_plot_of_the_report(chromium, report):
    from rl_reason.report import PLOTS

    pngs = embedded_pngs(report.read_text())
    assert len(pngs) >= 4
    images, shot, requests, heading = render(chromium, report)

    assert [img["alt"] for img in images] and {img["alt"] for img in images} <= {title for title, _ in PLOTS}
    for title in ("Reward", "Pass and format rate", "Completion length (tokens)", "No learning signal"):
        assert title in [img["alt"] for img in images]
    assert plot_problems(images, shot, [decode_png(p) for p in pngs]) == {}
    assert str(report.parent) in heading
    # Off the network: the page itself and its data: images, nothing else.
    assert requests and all(url.startswith(("file:", "data:")) for url in requests), requests
    # Not blank: the plots' coloured lines are on screen, not only black text on white.
    colourful = (shot.max(axis=2) - shot.min(axis=2)) > 60
    assert colourful.sum() > 500


def test_the_checker_sees_a_broken_plot(chromium, report, tmp_path):
    """A copy of the report with three plots broken three ways; the checker must name exactly those.
    The expected pixels are the intact PNGs, so the verdict is the browser's, not Pillow's."""
    page = report.read_text()
    pngs = embedded_pngs(page)
    assert len(pngs) >= 4
    broken = list(pngs)
    broken[0] = b"\0" * 8 + pngs[0][8:]  # no PNG signature: Chromium cannot decode it at all
    broken[1] = pngs[1][: len(pngs[1]) // 2]  # truncated: Chromium paints the top part, reports no error
    mid = len(pngs[2]) // 2
    broken[2] = pngs[2][:mid] + bytes(b ^ 0xFF for b in pngs[2][mid : mid + 64]) + pngs[2][mid + 64 :]  # garbled data
    for good, bad in zip(pngs[:3], broken[:3]):
        page = page.replace(base64.b64encode(good).decode(), base64.b64encode(bad).decode(), 1)
    copy = tmp_path / "broken.html"
    copy.write_text(page)

    images, shot, _, _ = render(chromium, copy)
    problems = plot_problems(images, shot, [decode_png(p) for p in pngs])
    alts = [img["alt"] for img in images]
    assert set(problems) == set(alts[:3]), problems
    assert problems[alts[0]].startswith("not decoded")
    assert "pixels on screen differ" in problems[alts[1]], problems
    assert "differ" in problems[alts[2]] or "not decoded" in problems[alts[2]], problems
