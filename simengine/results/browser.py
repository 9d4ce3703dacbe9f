"""A headless Chromium driven over the DevTools protocol on a pipe: print a page to PDF, take a
screenshot, read console messages and evaluate expressions. No Python dependency beyond the
standard library and no network port: Chromium's ``--remote-debugging-pipe`` reads commands from
file descriptor 3 and writes replies to 4, one NUL-terminated JSON message each.

The browser is the distribution's (Debian: ``apt-get install chromium``); ``SIMENGINE_CHROMIUM``
names another executable and ``SIMENGINE_CHROMIUM_FLAGS`` adds command-line flags.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
CONSOLE_ERRORS = ("error", "assert")
_TRAMPOLINE = ("import os, sys; os.dup2(int(sys.argv[1]), 3); os.dup2(int(sys.argv[2]), 4); "
               "os.execv(sys.argv[3], sys.argv[3:])")


class BrowserError(RuntimeError):
    """No browser, or the browser failed or timed out (the message says which)."""


def find_browser() -> str | None:
    """Path of a Chromium executable: ``$SIMENGINE_CHROMIUM``, else the first of :data:`CANDIDATES`
    on ``PATH``; None if there is none."""
    named = os.environ.get("SIMENGINE_CHROMIUM")
    if named:
        return shutil.which(named) or (named if Path(named).is_file() else None)
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


def _high_pipe() -> tuple[int, int]:
    """A pipe whose ends are numbered 10 or above, so putting them on 3 and 4 cannot clobber them."""
    ends = []
    for fd in os.pipe():
        ends.append(fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10))
        os.close(fd)
    return ends[0], ends[1]


class Browser:
    """One headless Chromium with one page; use as a context manager.

    Parameters
    ----------
    executable : str, optional
        The browser (default :func:`find_browser`).
    timeout : float
        Seconds to wait for any one reply.
    width, height : int
        The page's viewport in CSS pixels.
    """

    def __init__(self, executable: str | None = None, timeout: float = 60.0, width: int = 1280, height: int = 900):
        self.executable = executable or find_browser()
        if not self.executable:
            raise BrowserError("no Chromium found: install the distribution's package (Debian: apt-get install "
                               "chromium) or set SIMENGINE_CHROMIUM to the browser's executable")
        self.timeout = timeout
        self.size = (width, height)
        self.events: list[dict] = []
        self._id = 0
        self._buffer = b""
        self._proc = None

    # ------------------------------------------------------------------------------ lifecycle
    def __enter__(self) -> Browser:
        self._profile = tempfile.TemporaryDirectory(prefix="simengine-chromium-")
        self._log = tempfile.TemporaryFile()
        to_browser_r, self._to_browser = _high_pipe()
        self._from_browser, from_browser_w = _high_pipe()
        args = [self.executable, "--headless", "--remote-debugging-pipe", "--disable-gpu", "--no-first-run",
                "--no-default-browser-check", "--disable-extensions", "--hide-scrollbars", "--mute-audio",
                f"--user-data-dir={self._profile.name}", f"--window-size={self.size[0]},{self.size[1]}"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            args.append("--no-sandbox")  # Chromium refuses to run as root with its sandbox
        args += shlex.split(os.environ.get("SIMENGINE_CHROMIUM_FLAGS", ""))  # e.g. --no-sandbox in a container

        # a small Python trampoline puts the pipe ends on descriptors 3 and 4, then becomes the browser
        # (a preexec_fn would run between fork and exec in a process that may have numba's threads)
        launch = [sys.executable, "-c", _TRAMPOLINE, str(to_browser_r), str(from_browser_w), *args, "about:blank"]
        try:
            self._proc = subprocess.Popen(launch, pass_fds=(to_browser_r, from_browser_w), stdin=subprocess.DEVNULL,
                                          stdout=self._log, stderr=self._log)
        except OSError as exc:
            self._proc = None
            self.__exit__(None, None, None)
            raise BrowserError(f"{self.executable}: could not start ({exc})") from None
        finally:
            os.close(to_browser_r)
            os.close(from_browser_w)
        try:
            target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
            self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            for domain in ("Page", "Runtime", "Log"):
                self.send(f"{domain}.enable", session=self.session)
            self.send("Emulation.setDeviceMetricsOverride", {"width": self.size[0], "height": self.size[1],
                                                             "deviceScaleFactor": 1, "mobile": False},
                      session=self.session)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        if self._proc is not None:
            try:
                self._write({"id": self._next_id(), "method": "Browser.close"})
            except OSError:
                pass
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None
        self._close_fds()
        self._log.close()
        self._profile.cleanup()

    def _close_fds(self) -> None:
        for fd in (getattr(self, "_to_browser", None), getattr(self, "_from_browser", None)):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._to_browser = self._from_browser = None

    def log_tail(self, chars: int = 2000) -> str:
        """The end of the browser's own stdout and stderr (for error messages)."""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-chars:]

    # ------------------------------------------------------------------------------- protocol
    def _next_id(self) -> int:
        self._id += 1
        return self._id

    def _write(self, message: dict) -> None:
        data = json.dumps(message).encode() + b"\0"
        while data:
            data = data[os.write(self._to_browser, data):]

    def _read(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_browser], [], [], left)[0]:
                raise BrowserError(f"{self.executable}: no reply within {self.timeout:g} s\n{self.log_tail()}")
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise BrowserError(f"{self.executable}: the browser exited\n{self.log_tail()}")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        """Send one DevTools command and return its result (events that arrive meanwhile are kept in
        :attr:`events`)."""
        mid = self._next_id()
        message = {"id": mid, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        self._write(message)
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._read(deadline)
            if reply.get("id") == mid:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error'].get('message', reply['error'])}")
                return reply.get("result", {})
            self.events.append(reply)

    def page(self, method: str, params: dict | None = None) -> dict:
        """A command to the page's session."""
        return self.send(method, params, session=self.session)

    # ------------------------------------------------------------------------------ the page
    def open(self, url: str) -> None:
        """Navigate to ``url`` and wait until its load event (images included) has fired."""
        self.events.clear()
        result = self.page("Page.navigate", {"url": url})
        if result.get("errorText"):
            raise BrowserError(f"{url}: {result['errorText']}")
        deadline = time.monotonic() + self.timeout
        while not any(e.get("method") == "Page.loadEventFired" for e in self.events):
            self.events.append(self._read(deadline))

    def evaluate(self, expression: str):
        """The value of a JavaScript expression in the page (JSON-able values)."""
        result = self.page("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                 "awaitPromise": True})
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression[:80]}: {result['exceptionDetails'].get('text')}")
        return result["result"].get("value")

    def console_errors(self) -> list[str]:
        """Console errors, uncaught exceptions and error log entries (failed loads, blocked
        requests) since the last :meth:`open`."""
        out = []
        for e in self.events:
            method, p = e.get("method"), e.get("params", {})
            if method == "Runtime.consoleAPICalled" and p.get("type") in CONSOLE_ERRORS:
                out.append(" ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", [])))
            elif method == "Runtime.exceptionThrown":
                out.append(p.get("exceptionDetails", {}).get("text", "exception"))
            elif method == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                out.append(f"{p['entry'].get('text')} ({p['entry'].get('url', '')})")
        return out

    def screenshot(self, full_page: bool = True) -> bytes:
        """PNG of the page (the whole page, or the viewport)."""
        params = {"format": "png", "captureBeyondViewport": full_page}
        if full_page:
            width, height = self.evaluate("[document.documentElement.scrollWidth, "
                                          "document.documentElement.scrollHeight]")
            params["clip"] = {"x": 0, "y": 0, "width": width, "height": min(height, 16000), "scale": 1}
        return base64.b64decode(self.page("Page.captureScreenshot", params)["data"])

    def pdf(self) -> bytes:
        """The page printed to PDF (A4, backgrounds, the page's own @page size where it sets one)."""
        result = self.page("Page.printToPDF", {"printBackground": True, "preferCSSPageSize": True,
                                               "paperWidth": 8.27, "paperHeight": 11.69,
                                               "marginTop": 0.4, "marginBottom": 0.4, "marginLeft": 0.4,
                                               "marginRight": 0.4})
        return base64.b64decode(result["data"])


def print_pdf(html: Path, executable: str | None = None, timeout: float = 120.0) -> bytes:
    """The PDF of a local HTML file, printed by headless Chromium."""
    with Browser(executable, timeout=timeout) as browser:
        browser.open(Path(html).resolve().as_uri())
        return browser.pdf()


__all__ = ["Browser", "BrowserError", "find_browser", "print_pdf"]
