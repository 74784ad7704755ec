"""Screenshot the Evidently dashboard in headless Chromium: ``python monitoring/screenshot.py``.

Starts ``evidently ui`` on a free loopback port over the workspace of ``params.yaml``
(``monitor.workspace``), opens the project's dashboard in headless Chromium (Debian's
``chromium`` package: ``apt-get install chromium``) and writes ``docs/dashboard.png``.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aim.config import load_params  # noqa: E402
from aim.serving.server import free_loopback_port  # noqa: E402

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


def _project_id(url: str, name: str) -> str:
    projects = httpx.get(f"{url}/api/projects", timeout=10).json()
    for project in projects:
        if project.get("name") == name:
            return project["id"]
    raise SystemExit(f"no project named {name!r} in the workspace: run `aim monitor` first")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default=str(ROOT / "params.yaml"))
    parser.add_argument("--out", default=str(ROOT / "docs" / "dashboard.png"))
    parser.add_argument("--size", default="1500,1400", help="window width,height in pixels")
    args = parser.parse_args()
    params = load_params(args.params)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("headless Chromium is needed: apt-get install chromium")
    workspace = params.path(params.monitor.workspace)
    port = free_loopback_port()
    evidently = str(Path(sys.executable).with_name("evidently"))
    ui = subprocess.Popen(
        [evidently, "ui", "--workspace", str(workspace), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                if httpx.get(f"{url}/api/projects", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.5)
        page = f"{url}/projects/{_project_id(url, params.monitor.project)}"
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as profile:
            subprocess.run(
                [
                    chromium,
                    *CHROMIUM_FLAGS,
                    f"--user-data-dir={profile}",
                    f"--window-size={args.size}",
                    "--virtual-time-budget=15000",
                    f"--screenshot={args.out}",
                    page,
                ],
                check=True,
                capture_output=True,
                timeout=120,
            )
        print(f"wrote {args.out} ({page})")
    finally:
        ui.terminate()
        ui.wait(timeout=30)


if __name__ == "__main__":
    main()
