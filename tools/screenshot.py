"""The README's screenshot: the page streaming the sample video, taken when a frame shows several faces.

    python -m tools.screenshot [--faces 3] [--happy N] [--out docs/screenshot.png]

Starts ``main.py`` on the sample video on a free loopback port, opens the page in the system's Chromium
(Playwright), waits until the live panel lists at least ``--faces`` faces, of which at least ``--happy`` are
labelled happy (the sample clip's laughing audience, about 7-9 s into it), and saves a screenshot.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from benchmarks.serving import served

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=int, default=3)
    parser.add_argument("--happy", type=int, default=0, help="wait for at least this many faces labelled happy")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshot.png")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    video = next((ROOT / "videos").glob("*.mp4"))
    with served(["--source", str(video)]) as (_, base):
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=shutil.which("chromium"), args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1100, "height": 620})
            page.goto(base + "/")
            deadline = time.monotonic() + 120
            cards = page.locator("#live-faces .face")
            while cards.count() < args.faces or cards.filter(has_text=": happy").count() < args.happy:
                if time.monotonic() > deadline:
                    raise SystemExit(f"no frame with {args.faces} faces ({args.happy} happy) in 120 s")
                time.sleep(0.1)
            time.sleep(0.3)  # the stream's image catches up with the live panel
            page.screenshot(path=str(args.out))
            browser.close()
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
