"""The committed digits-lowT report opened from disk in a real headless browser (Debian's ``chromium``):
plots rendered, sorting and filtering done by the page's own script, no script error."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

SITE = Path(__file__).resolve().parent.parent / "results" / "digits-lowT" / "site"
BROWSER = next(
    (shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None
)
pytestmark = pytest.mark.skipif(
    BROWSER is None,
    reason="no chromium on PATH: the report's browser test needs one (apt-get install chromium)",
)


def rendered(url: str, profile: Path) -> tuple[str, str]:
    """The page's DOM after its scripts ran, and the browser's log (console messages included)."""
    result = subprocess.run(
        [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}",
         "--virtual-time-budget=10000", "--enable-logging=stderr", "--v=0", "--dump-dom", url],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    return result.stdout, result.stderr


def body(dom: str) -> str:
    return re.search(r"<body[^>]*>", dom).group(0)


def test_committed_site_renders_sorts_and_filters_offline(tmp_path):
    dom, log = rendered(f"{(SITE / 'index.html').as_uri()}?sort=top1&filter=bptt", tmp_path)
    assert 'data-plots="3"' in body(dom) and "data-errors" not in body(dom)
    assert "Uncaught" not in log and "Failed to load resource" not in log
    for axis in ("T", "sops", "energy"):  # each Pareto plot drawn by Plotly, one trace per method at least
        plot = dom.split(f'id="pareto-all-{axis}"')[1].split('<script type="application/json"')[0]
        assert 'class="main-svg"' in plot and plot.count('class="trace scatter') >= 10
    table = dom.split('id="leaderboard-all"')[1].split("</table>")[0]
    assert 'data-sorted="top1 asc"' in dom.split('id="leaderboard-all"')[1][:300]
    rows = re.findall(r"<tr( hidden=\"\")?[^>]*>(.*?)</tr>", table)[1:]  # the header row first
    shown = [cells for hidden, cells in rows if not hidden]
    assert len(shown) == 8 and all(re.search(r"<td>bptt(-convnet)?</td>", cells) for cells in shown)
    top1 = [float(re.findall(r'data-v="([^"]*)"', cells)[2]) for cells in shown]
    assert top1 == sorted(top1) and len(set(top1)) > 1
    assert len(rows) > len(shown)  # the other methods' rows are hidden, not removed


def test_a_run_page_draws_its_curves(tmp_path):
    page = sorted((SITE / "runs").glob("bptt_T4_s0_*.html"))[0]
    dom, log = rendered(page.as_uri(), tmp_path)
    assert 'data-plots="1"' in body(dom) and "data-errors" not in body(dom) and "Uncaught" not in log
    assert 'class="main-svg"' in dom.split('id="curves"')[1]
