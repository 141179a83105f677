"""The rendered book: build a site from a tiny synthetic curriculum and open it in headless Chromium.

Every link must resolve to a file that loads, and every notebook page must show its figures
(images decoded by the browser: naturalWidth > 0). Chromium comes from Debian's ``chromium``
package; without it the browser test is skipped locally but must run in CI (``CI=true``).
"""
from __future__ import annotations

import base64
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import build_site as bs  # noqa: E402

CHROMIUM = next((p for p in (os.environ.get("CHROMIUM"), shutil.which("chromium"), "/usr/bin/chromium",
                             shutil.which("chromium-browser")) if p and Path(p).exists()), None)
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None and not IN_CI,
    reason="headless Chromium not found (install Debian's `chromium` package); CI=true makes this an error",
)


def png(width: int, height: int, rgb=(200, 60, 40)) -> bytes:
    """A minimal valid RGB PNG, so the test needs no plotting library."""
    raw = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def image_output(width: int, height: int):
    return new_output("display_data", data={"image/png": base64.b64encode(png(width, height)).decode(),
                                             "text/plain": "<Figure>"})


FIRST_CELL = """[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/x/y/blob/main/notebooks/{stem}.ipynb)

# {title}

**Learning objectives**
- trace a model with `nnsight`
- patch **one** activation

**Prerequisites:** {prereq}

**Time estimate:** {time}
"""


def make_curriculum(root: Path) -> dict[str, Path]:
    """Two masters, both executed (one with two figures), results for one of them."""
    dirs = {k: root / k for k in ("notebooks", "executed", "results", "site")}
    for k in ("notebooks", "executed", "results"):
        dirs[k].mkdir(parents=True)
    (root / "data" / "toy").mkdir(parents=True)
    (root / "data" / "toy" / "README.md").write_text("# toy data\n")
    specs = [("00_alpha", "Alpha: tracing", "Python, PyTorch basics", "45 min", [(40, 30), (64, 48)]),
             ("01_beta", "Beta: shortcuts", "[00_alpha](00_alpha.ipynb)", "1.5 h", [(32, 32)])]
    for stem, title, prereq, time, figs in specs:
        master = new_notebook(cells=[
            new_markdown_cell(FIRST_CELL.format(stem=stem, title=title, prereq=prereq, time=time)),
            new_code_cell("import toolkit as tk"),
            new_markdown_cell("## A section\n\nSee [this section](#A-section), [the data card](../data/toy/README.md), "
                              "[the data folder](../data/toy) and [the other notebook](00_alpha.ipynb)."),
            new_code_cell("plot()"),
        ])
        nbformat.write(master, dirs["notebooks"] / f"{stem}.ipynb")
        executed = nbformat.from_dict(json.loads(nbformat.writes(master)))
        executed.cells[3].outputs = [image_output(w, h) for w, h in figs]
        executed.cells[3].execution_count = 1
        nbformat.write(executed, dirs["executed"] / f"{stem}.ipynb")
    (dirs["results"] / "00_alpha.json").write_text(json.dumps({
        "notebook": "00_alpha",
        "metrics": {"patched_flip_rate": 0.875, "n_prompts": 8, "by_layer": {"l3": 0.5}},
        "provenance": {"mode": "fast", "device": "cpu", "seed": 0, "commit": "abc123"},
    }))
    return dirs


# ---- the page builder, without a browser -----------------------------------------------------

def test_parse_header_reads_the_course_map_fields():
    head = bs.parse_header(FIRST_CELL.format(stem="s", title="T: x", prereq="a, b", time="~1 h"))
    assert head == {"title": "T: x", "objectives": ["trace a model with `nnsight`", "patch **one** activation"],
                    "prerequisites": "a, b", "time": "~1 h"}


def test_parse_header_joins_wrapped_lines_and_stops_at_a_paragraph():
    head = bs.parse_header("# 03 · SAEs\n\n**Learning objectives**\n\n- train an SAE on\n  the residual stream\n\n- read it\n\n"
                           "**Prerequisites:** notebooks 00 and 02;\nPyTorch.\n\n**Time estimate:** 1 h\n\nThe model is...")
    assert head["objectives"] == ["train an SAE on the residual stream", "read it"]
    assert head["prerequisites"] == "notebooks 00 and 02; PyTorch." and head["time"] == "1 h"
    assert bs.short_title(head["title"], "03") == "SAEs"


def test_site_has_map_metrics_thumbnails_and_is_offline(tmp_path):
    d = make_curriculum(tmp_path)
    index = bs.build_site(d["notebooks"], d["executed"], d["results"], d["site"])
    text = index.read_text()
    assert text.index("Alpha: tracing") < text.index("Beta: shortcuts")  # course order
    assert "45 min" in text and "1.5 h" in text and "Python, PyTorch basics" in text
    assert 'href="notebooks/00_alpha.html"' in text  # a prerequisite .ipynb link points at the rendered page
    assert "patched_flip_rate" in text and "0.875" in text and "by_layer.l3" in text
    assert "No results file yet" in text  # 01_beta has none, and says so
    (d["results"] / "01_beta.json").write_text(json.dumps({"metrics": {f"m{i:02d}": i for i in range(30)}}))
    text = bs.build_site(d["notebooks"], d["executed"], d["results"], d["site"]).read_text()
    assert "m23" in text and "m24" not in text and "and 6 more in" in text
    assert sorted(p.name for p in (d["site"] / "figures").iterdir()) == ["00_alpha-1.png", "00_alpha-2.png", "01_beta-1.png"]
    for page in [index, *(d["site"] / "notebooks").glob("*.html")]:
        html = page.read_text()
        for needle in ('src="http', "src='http", 'href="http://cdn', "cdnjs", "unpkg.com", "jsdelivr"):
            assert needle not in html, f"{page.name} references the network: {needle}"
    alpha = (d["site"] / "notebooks" / "00_alpha.html").read_text()
    assert alpha.count('src="data:image/png;base64,') == 2  # figures embedded, not linked
    assert "[Open In Colab]" in alpha  # the badge became text
    assert 'href="../files/data/toy/README.md"' in alpha  # repo files linked from a notebook are copied
    assert (d["site"] / "files" / "data" / "toy" / "README.md").is_file()
    assert 'href="../notebooks/00_alpha.html"' in alpha  # notebook-to-notebook links point at pages


def test_figures_lost_to_a_non_inline_backend_are_reported(tmp_path, capsys):
    d = make_curriculum(tmp_path)
    master = nbformat.read(d["notebooks"] / "01_beta.ipynb", as_version=4)
    master.cells[3].source = "import matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.show()"
    nbformat.write(master, d["notebooks"] / "01_beta.ipynb")
    executed = nbformat.read(d["executed"] / "01_beta.ipynb", as_version=4)
    executed.cells[3].outputs = []  # what MPLBACKEND=Agg leaves behind
    nbformat.write(executed, d["executed"] / "01_beta.ipynb")
    bs.build_site(d["notebooks"], d["executed"], d["results"], d["site"])
    err = capsys.readouterr().err
    assert "01_beta.ipynb has no figures although 01_beta plots" in err and "00_alpha" not in err


# ---- in the browser --------------------------------------------------------------------------

PROBE = """<script>
window.addEventListener("load", function () {
  var r = {images: [], links: [], ids: []};
  Array.prototype.forEach.call(document.images, function (i) {
    r.images.push({src: i.getAttribute("src").slice(0, 40), w: i.naturalWidth, h: i.naturalHeight, done: i.complete});
  });
  Array.prototype.forEach.call(document.querySelectorAll("a[href]"), function (a) { r.links.push(a.getAttribute("href")); });
  Array.prototype.forEach.call(document.querySelectorAll("[id]"), function (e) { r.ids.push(e.id); });
  r.title = document.title;
  var pre = document.createElement("pre"); pre.id = "__probe__"; pre.textContent = JSON.stringify(r);
  document.body.appendChild(pre);
});
</script>"""


class _ProbeReader(HTMLParser):
    def __init__(self):
        super().__init__()
        self.inside, self.text = False, ""

    def handle_starttag(self, tag, attrs):
        self.inside = self.inside or (tag == "pre" and ("id", "__probe__") in attrs)

    def handle_endtag(self, tag):
        if tag == "pre":
            self.inside = False

    def handle_data(self, data):
        if self.inside:
            self.text += data


def chromium_probe(page: Path) -> dict:
    """Load ``page`` in headless Chromium and report its images (decoded sizes), links and ids.

    The probe script goes into a temporary copy beside the page, so relative paths resolve the same.
    """
    if CHROMIUM is None:
        pytest.fail("CI=true but no chromium binary: install Debian's `chromium` package (see .ci/run)")
    probe = page.with_name(f".probe-{page.name}")
    html = page.read_text(encoding="utf-8")
    probe.write_text(html.replace("</body>", PROBE + "</body>") if "</body>" in html else html + PROBE, encoding="utf-8")
    with tempfile.TemporaryDirectory() as profile:
        cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--no-first-run", "--disable-quic", f"--user-data-dir={profile}",
               "--virtual-time-budget=5000", "--dump-dom", probe.as_uri()]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
    probe.unlink()
    reader = _ProbeReader()
    reader.feed(done.stdout)
    assert reader.text, f"Chromium did not run the probe on {page} (rc {done.returncode}): {done.stderr[-800:]}"
    return json.loads(reader.text)


def crawl(index: Path) -> dict[Path, dict]:
    """Open the index and every page it links to (transitively) inside the site; check each link."""
    site = index.parent.resolve()
    seen: dict[Path, dict] = {}
    todo = [index.resolve()]
    while todo:
        page = todo.pop()
        if page in seen:
            continue
        report = seen[page] = chromium_probe(page)
        for href in report["links"]:
            parts = urlsplit(href)
            if parts.scheme in {"http", "https", "mailto"}:
                continue  # the site works offline; outward links (Colab, GitHub) are not followed
            target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
            assert target.is_file(), f"{page.name}: link {href!r} points at a missing file"
            if parts.fragment and target == page:
                assert parts.fragment in report["ids"], f"{page.name}: anchor {href!r} has no target"
            if target.suffix == ".html" and site in target.parents:
                todo.append(target)
    return seen


@needs_chromium
def test_every_link_resolves_and_every_page_shows_its_figures(tmp_path):
    d = make_curriculum(tmp_path)
    index = bs.build_site(d["notebooks"], d["executed"], d["results"], d["site"])
    pages = crawl(index)
    names = sorted(p.name for p in pages)
    assert names == ["00_alpha.html", "01_beta.html", "index.html"], names
    expected_figures = {"00_alpha.html": [(40, 30), (64, 48)], "01_beta.html": [(32, 32)]}
    for page, report in pages.items():
        images = report["images"]
        assert images, f"{page.name} shows no images"
        undecoded = [i for i in images if i["w"] == 0]
        assert not undecoded, f"{page.name}: images that did not decode: {undecoded}"
        if page.name in expected_figures:
            assert [(i["w"], i["h"]) for i in images] == expected_figures[page.name]
    assert len(pages[index.resolve()]["images"]) == 3  # thumbnails


@needs_chromium
def test_the_probe_can_fail_on_a_broken_image_and_a_dead_link(tmp_path):
    d = make_curriculum(tmp_path)
    index = bs.build_site(d["notebooks"], d["executed"], d["results"], d["site"])
    (d["site"] / "figures" / "00_alpha-1.png").write_bytes(b"not a png")
    report = chromium_probe(index)
    assert [i["w"] for i in report["images"]].count(0) == 1
    (d["site"] / "notebooks" / "01_beta.html").unlink()
    with pytest.raises(AssertionError, match="01_beta.html"):
        crawl(index)


REAL_SITE = ROOT / "build" / "site" / "index.html"


@needs_chromium
@pytest.mark.skipif(not REAL_SITE.exists(), reason="build/site not built yet (run `make curriculum`)")
def test_the_built_curriculum_site():
    pages = crawl(REAL_SITE)
    executed = sorted((ROOT / "build" / "executed").glob("[0-9]*.ipynb"))
    for nb_path in executed:
        page = (REAL_SITE.parent / "notebooks" / f"{nb_path.stem}.html").resolve()
        assert page in pages, f"{page.name} is not linked from the index"
        n_figures = len(bs.figures(nbformat.read(nb_path, as_version=4)))
        master = ROOT / "notebooks" / nb_path.name
        if master.exists() and bs.plots(nbformat.read(master, as_version=4)):
            assert n_figures > 0, (f"{nb_path.name} plots but its executed copy has no figures: execute with the "
                                   "inline matplotlib backend (MPLBACKEND=Agg suppresses them)")
        decoded = [i for i in pages[page]["images"] if i["w"] > 0]
        assert len(decoded) >= n_figures, f"{page.name}: {len(decoded)} decoded images, notebook has {n_figures} figures"


def test_the_card_shows_which_claims_held(tmp_path):
    claims = [{"name": "a beats b", "held": True, "against": "chance", "numbers": {"a": 0.7}, "asserted": True},
              {"name": "c beats d", "held": False, "against": "base <x>", "numbers": {}, "asserted": True},
              {"name": "peaks early", "held": False, "against": "alpha 0", "numbers": {}, "asserted": False}]
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"notebook": "nb", "metrics": {"m": 1}, "claims": claims}))
    html_ = bs._claims_table(bs.load_claims(path))
    assert "Claims: 1 of 2 held" in html_ and "1 more reported, not asserted" in html_
    assert html_.count("badge held") == 1 and html_.count("badge failed") == 1 and "did not hold (reported)" in html_
    assert "base &lt;x&gt;" in html_  # escaped
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"notebook": "nb", "metrics": {"m": 1}}))
    assert bs.load_claims(old) == [] and bs._claims_table([]) == ""
