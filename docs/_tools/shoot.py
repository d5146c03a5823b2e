"""Screenshots of the dashboard for the docs: ``docs/images/dashboard-<page>.png``.

It runs the chaos demo (``keel demo --chaos --seed 8``) and the browser tests'
scenario (a failed run, alerts, snapshots and versions) into a temporary
``KEEL_HOME``, starts ``keel dashboard`` on a free loopback port, and photographs
each page at 1280x800 with Debian's Chromium through Playwright. With Pillow
installed the PNGs are reduced to a 256-colour palette, which keeps them small.

    .venv/bin/python docs/_tools/shoot.py [--out docs/images]
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO / "tests" / "e2e"), str(REPO / "tests" / "support")]  # test helpers

VIEWPORT = {"width": 1280, "height": 800}
SCROLL_TO_TIMELINE = """() => {
  const list = document.querySelector('[data-testid="timeline"]');
  const heading = list.closest("section").querySelector("h2");
  window.scrollTo(0, heading.getBoundingClientRect().top + window.scrollY - 12);
}"""


def _shrink(path: Path) -> None:
    """A 256-colour palette: a UI screenshot stays legible at a third of the size."""
    try:
        from PIL import Image
    except ImportError:
        return
    with Image.open(path) as image:
        reduced = image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    reduced.save(path, optimize=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images")
    args = parser.parse_args()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory(prefix="keel-shoot-") as tmp:
        home = Path(tmp) / "home"
        os.environ["KEEL_HOME"] = str(home)
        os.environ.pop("KEEL_STORE", None)

        from _browser import chromium_path, dashboard_server, run_keel
        from _scenario import seed_scenario
        from playwright.sync_api import sync_playwright

        import agentkeel

        demo_output = run_keel("demo", "--chaos", "--seed", "8", home=home)
        found = re.search(r"^run\s+(run-[0-9a-f]+)", demo_output, re.MULTILINE)
        if found is None:
            print("the demo did not print its run ID", file=sys.stderr)
            return 1
        demo_run_id = found.group(1)
        scenario = seed_scenario(hostile=False)
        agentkeel.shutdown()

        executable = chromium_path()
        if executable is None:
            print("no Chromium: apt-get install chromium", file=sys.stderr)
            return 1
        diff_query = f"agent={scenario.agent_id}&task={scenario.task_id}&v1=v0001&v2=v0002"
        pages = {
            "runs": "/runs",
            "run": f"/runs/{demo_run_id}",
            "run-timeline": f"/runs/{demo_run_id}",
            "failures": "/failures",
            "breakers": "/breakers",
            "alerts": "/alerts",
            "escalations": "/escalations",
            "health": "/health",
            "charts": "/charts",
            "snapshots": f"/snapshots?{diff_query}",
        }
        with (
            dashboard_server(Path(tmp), home=home) as server,
            sync_playwright() as playwright,
        ):
            browser = playwright.chromium.launch(executable_path=executable, headless=True)
            page = browser.new_page(viewport=VIEWPORT)  # type: ignore[arg-type]
            for name, path in pages.items():
                # "load", not "networkidle": a live page keeps polling.
                response = page.goto(server.url + path, wait_until="load")
                status = response.status if response else 0
                if status >= 400:
                    print(f"{path} answered {status}; not photographed", file=sys.stderr)
                    continue
                if name == "run-timeline":  # the timeline's heading at the top
                    page.evaluate(SCROLL_TO_TIMELINE)
                page.wait_for_timeout(300)  # let the scroll settle before the shot
                target = out / f"dashboard-{name}.png"
                page.screenshot(path=str(target))
                _shrink(target)
                print(f"{target.relative_to(REPO)}  {target.stat().st_size // 1024} KB")
            browser.close()
        print(f"scenario runs: {scenario.recovered_run_id}, {scenario.failed_run_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
