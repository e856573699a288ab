"""Regenerate docs/screenshots/: the main portal pages at 390 px and 1280 px.

    python3 scripts/screenshots.py [--out docs/screenshots]

Runs ``dmp demo`` on a throwaway SQLite instance in a temporary directory, serves it on a free
loopback port, logs in with the demo's public credentials in Debian's Chromium (Playwright) and
captures each page at both widths. Needs /usr/bin/chromium, the playwright package and axe-core
(``npm ci`` in tests/node): every page is also checked as the journeys test does, and the script
fails, listing the problems, if axe-core or the 390-px reflow check finds any.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests" / "integration")]

from browser_support import (  # noqa: E402 - after the path set-up
    HEIGHT,
    WIDTHS,
    chromium,
    demo_server,
    missing_tools,
    new_page,
    page_problems,
    totp_now,
)

from dmp.demo.loader import (  # noqa: E402
    DEMO_PATIENT_PASSWORD,
    DEMO_PATIENT_TOTP,
    DEMO_PRO_ACCOUNTS,
    DEMO_REPRESENTATIVE_EMAIL,
    DEMO_REPRESENTATIVE_PASSWORD,
    DEMO_REPRESENTATIVE_TOTP,
    SHOWCASE_NIR,
    demo_professional,
)

MAX_HEIGHT = 2000  # px: long pages are cut, the screenshots stay small


class Camera:
    def __init__(self, out: Path) -> None:
        self.out = out
        self.problems: list[str] = []
        self.files: list[Path] = []

    def shoot(self, page: Any, name: str) -> None:
        page.wait_for_load_state()
        self.problems += [f"{name}: {p}" for p in page_problems(page)]
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": HEIGHT})
            height = min(MAX_HEIGHT, int(page.evaluate("() => document.documentElement.scrollHeight")))
            path = self.out / f"{name}-{width}.png"
            clip = {"x": 0, "y": 0, "width": width, "height": height}
            _small_png(page.screenshot(full_page=True, clip=clip), path)
            self.files.append(path)
        page.set_viewport_size({"width": WIDTHS[-1], "height": HEIGHT})


def _small_png(png: bytes, path: Path) -> None:
    """A 64-colour palette PNG: text and flat colours stay sharp, the file is 3 to 4 times smaller."""
    from PIL import Image  # Pillow comes with fpdf2, a runtime dependency

    with Image.open(io.BytesIO(png)) as img:
        img.convert("RGB").quantize(colors=64, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)


def _login(page: Any, base: str, prefix: str, login: str, password: str, secret: str) -> None:
    page.goto(f"{base}{prefix}/connexion")
    page.locator("#identifiant").fill(login)
    page.locator("#mot_de_passe").fill(password)
    page.get_by_role("button", name="Se connecter").click()
    page.wait_for_url(f"{base}{prefix}/connexion/code")
    page.locator("#code").fill(totp_now(secret))
    page.get_by_role("button", name="Valider").click()
    page.wait_for_load_state()


def _patient_pages(cam: Camera, browser: Any, base: str) -> None:
    page = new_page(browser)
    page.goto(f"{base}/connexion")
    cam.shoot(page, "patient-connexion")
    _login(page, base, "", SHOWCASE_NIR, DEMO_PATIENT_PASSWORD, DEMO_PATIENT_TOTP)
    cam.shoot(page, "patient-accueil")
    page.get_by_role("link", name="Lire « Compte rendu d'examens de biologie médicale").first.click()
    cam.shoot(page, "patient-lecture-document")
    for path, name in (
        ("/historique", "patient-historique"),
        ("/gerer", "patient-gerer"),
        ("/acces", "patient-qui-a-acces"),
        ("/masquage", "patient-masquage"),
        ("/mes-documents/ajouter", "patient-ajouter-document"),
        ("/alertes", "patient-alertes"),
        ("/notifications", "patient-notifications"),
        ("/fermeture", "patient-fermeture"),
    ):
        page.goto(base + path)
        cam.shoot(page, name)
    page.context.close()


def _pro_pages(cam: Camera, browser: Any, base: str) -> None:
    accounts = {a.slug: a for a in DEMO_PRO_ACCOUNTS}
    record = f"{base}/pro/patient?ins={SHOWCASE_NIR}"
    shots = {  # each professional's pages: (address, name)
        "dr-muller": [(f"{base}/pro", "pro-recherche"), (f"{base}/pro/patients", "pro-recherche-traits"),
                      (record, "pro-dossier-synthese"),
                      (f"{base}/pro/patient/publier?ins={SHOWCASE_NIR}", "pro-publier")],
        "dr-roux": [(record, "pro-attestation")],
        "dr-berenger": [(record, "pro-refus-bris-de-glace")],
    }
    for slug, pages in shots.items():
        page = new_page(browser)
        acc, pro = accounts[slug], demo_professional(slug)
        _login(page, base, "/pro", pro.rpps, acc.password, acc.totp_secret)
        for url, name in pages:
            page.goto(url)
            cam.shoot(page, name)
        page.context.close()


def _representative_pages(cam: Camera, browser: Any, base: str) -> None:
    page = new_page(browser)
    _login(page, base, "", DEMO_REPRESENTATIVE_EMAIL, DEMO_REPRESENTATIVE_PASSWORD, DEMO_REPRESENTATIVE_TOTP)
    cam.shoot(page, "representante-accueil")
    page.context.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    args = parser.parse_args()
    missing = missing_tools()
    if missing:
        print("Impossible : " + " ; ".join(missing), file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    cam = Camera(args.out)
    with tempfile.TemporaryDirectory(prefix="dmp-screenshots-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'dmp.sqlite3'}"
        with demo_server(url, Path(tmp) / "var", patients=3) as demo, chromium() as browser:
            _patient_pages(cam, browser, demo.base)
            _pro_pages(cam, browser, demo.base)
            _representative_pages(cam, browser, demo.base)
    print(f"{len(cam.files)} captures dans {args.out}")
    for p in cam.problems:
        print("PROBLÈME", p, file=sys.stderr)
    return 1 if cam.problems else 0


if __name__ == "__main__":
    sys.exit(main())
