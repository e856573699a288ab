"""A fresh ``dmp demo`` served by a real uvicorn, a real Chromium, axe-core and the reflow check.

Shared by tests/integration/test_journeys.py and scripts/screenshots.py. axe-core comes from
tests/node/node_modules (``npm ci`` in tests/node); the browser context bypasses the page's CSP only
so that Playwright can inject axe.min.js: the server still sends its strict policy.
"""

from __future__ import annotations

import json
import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pyotp
from click.testing import CliRunner

from dmp.bootstrap import build_runtime
from dmp.cli import main as cli
from dmp.settings import Settings

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
AXE = Path(__file__).resolve().parents[1] / "node" / "node_modules" / "axe-core" / "axe.min.js"
WIDTHS = (390, 1280)
HEIGHT = 900


def missing_tools() -> list[str]:
    """What is absent among chromium, playwright and axe-core (empty: all present)."""
    missing = []
    if not CHROMIUM.exists():
        missing.append(f"{CHROMIUM} absent (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("paquet Python playwright absent (pip install -e '.[test]')")
    if not AXE.exists():
        missing.append("axe-core absent (npm ci dans tests/node)")
    return missing


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---- a loopback SMTP server (aiosmtpd): the codes sent by e-mail -----------------------------


@dataclass
class Mailbox:
    """aiosmtpd handler keeping every message received."""

    messages: list[Any] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        return "250 2.0.0 Message accepted"

    def last_code(self, recipient: str) -> str:
        """The 6-digit code of the last message sent to ``recipient``."""
        for msg in reversed(self.messages):
            if recipient in str(msg["To"]):
                found = re.search(r"\b(\d{6})\b", msg.get_body(("plain",)).get_content())
                if found:
                    return found.group(1)
        raise AssertionError(f"aucun code reçu pour {recipient}")


@contextmanager
def smtp_server() -> Iterator[tuple[int, Mailbox]]:
    from aiosmtpd.controller import Controller

    port, box = free_port(), Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=port, server_hostname="smtp.test")
    controller.start()
    try:
        yield port, box
    finally:
        controller.stop()


# ---- the demo instance ---------------------------------------------------------------------------


@dataclass
class DemoServer:
    base: str
    env: dict[str, str]
    settings: Settings
    runtime: Any

    def cli(self, *args: str) -> str:
        """A ``dmp`` command against this instance (the desk's tools); its output."""
        result = CliRunner().invoke(cli, list(args), env=self.env)
        if result.exit_code != 0:
            raise AssertionError(f"dmp {' '.join(args)} : {result.output}")
        return result.output


@contextmanager
def demo_server(database_url: str, var_dir: Path, *, patients: int = 3) -> Iterator[DemoServer]:
    """``dmp demo`` on a fresh instance, then the application on a free loopback port."""
    import uvicorn

    from dmp.api.app import create_app

    port = free_port()
    base = f"http://127.0.0.1:{port}"  # loopback over HTTP: the one case where cookies are not Secure
    env = {"DMP_DATABASE_URL": database_url, "DMP_VAR_DIR": str(var_dir), "DMP_BASE_URL": base}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        result = CliRunner().invoke(cli, ["demo", "--patients", str(patients)], env=env)
        if result.exit_code != 0:
            raise AssertionError(f"dmp demo : {result.output}")
        settings = Settings.from_env()
        runtime = build_runtime(settings, pool_size=4)
        app = create_app(runtime)
        srv = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
        )
        thread = threading.Thread(target=srv.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while not srv.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("uvicorn n'a pas démarré")
            time.sleep(0.05)
        try:
            yield DemoServer(base, env, settings, runtime)
        finally:
            srv.should_exit = True
            thread.join(10)
            runtime.engine.dispose()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextmanager
def chromium() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def new_page(browser: Any) -> Any:
    """A fresh context (own cookies): CSP bypassed only so that axe.min.js can be injected."""
    context = browser.new_context(
        bypass_csp=True, locale="fr-FR", viewport={"width": WIDTHS[-1], "height": HEIGHT}
    )
    return context.new_page()


# ---- checks on every page: axe-core, reflow at 390 px --------------------------------------------

_AXE_RUN = """async () => {
  const r = await axe.run(document, {resultTypes: ["violations"]});
  return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                 nodes: v.nodes.slice(0, 5).map(n => n.target.join(" "))}));
}"""
_WIDTH = "() => [document.documentElement.scrollWidth, window.innerWidth]"


def page_problems(page: Any) -> list[str]:
    """axe-core violations (any impact) at both widths, and horizontal overflow at 390 px."""
    problems = []
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": HEIGHT})
        if not page.evaluate("() => typeof window.axe !== 'undefined'"):
            page.add_script_tag(content=AXE.read_text(encoding="utf-8"))
        for v in page.evaluate(_AXE_RUN):
            where = json.dumps(v["nodes"], ensure_ascii=False)
            problems.append(f"{width} px, axe {v['impact']} {v['id']} ({v['help']}) : {where}")
        scroll, inner = page.evaluate(_WIDTH)
        if width == WIDTHS[0] and scroll > inner:
            problems.append(f"{width} px : page plus large que l'écran ({scroll} px > {inner} px)")
    page.set_viewport_size({"width": WIDTHS[-1], "height": HEIGHT})
    return problems


def totp_now(secret: str) -> str:
    return pyotp.TOTP(secret).now()
