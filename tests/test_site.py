"""The book's website (python3 book.py site), its links, and the Colab path into every chapter.

The site is built once for this module from the committed chapters (nothing is executed). One test
opens a chapter page in a real headless Chromium; it skips, saying what is missing, where there is
no browser (CI installs one: see .ci/run).
"""
import functools
import http.server
import re
import shutil
import sys
import threading
import types
from html.parser import HTMLParser
from pathlib import Path

import pytest

import notebooks

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = notebooks.chapter_paths()


class Page(HTMLParser):
    """What a built page contains: formulas, images, the library listings shown with show()."""

    def __init__(self, text):
        super().__init__()
        self.math, self.images, self.listings, self.links = 0, [], 0, []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        if "math" in classes:
            self.math += 1
        if tag == "img":
            self.images.append(a.get("src", ""))
        if "lstm-rl-source" in classes or "highlight-python" in classes:   # show()'s HTML, or its Markdown rendered
            self.listings += 1
        if tag == "a" and a.get("href"):
            self.links.append(a["href"])


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    pytest.importorskip("sphinx", reason="the website's tools are in requirements-site.txt (python3 book.py test installs them)")
    out, warnings = notebooks.build_site(tmp_path_factory.mktemp("site"))
    return out, warnings


def _is_listing(output) -> bool:
    """An output of lstm_rl_lib.show(): highlighted HTML (or, in outputs made before show() had it, Markdown)."""
    data = output.get("data", {})
    return "lstm-rl-source" in data.get("text/html", "") or data.get("text/markdown", "").startswith("`lstm_rl_lib/")


def _expected(nb):
    pngs = sum("image/png" in o.get("data", {}) for c in nb.cells for o in c.get("outputs", []))
    listings = sum(_is_listing(o) for c in nb.cells for o in c.get("outputs", []))
    diagrams = sum(len(re.findall(r'<img src="data:image/svg\+xml;base64,', c.source)) for c in nb.cells
                   if c.cell_type == "markdown")
    return pngs, listings, diagrams


def test_the_site_builds_without_warnings(site):
    out, warnings = site
    assert (out / "index.html").exists()
    assert warnings == [], "\n".join(warnings)


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_each_chapter_page_has_its_math_figures_and_listings(site, path):
    out, _ = site
    page_file = out / "chapters" / f"{path.stem}.html"
    page = Page(page_file.read_text())
    pngs, listings, diagrams = _expected(notebooks.read(path))
    assert page.math > 0, f"{page_file.name}: no formula"
    assert pngs > 0 and listings > 0
    assert len(page.images) >= pngs + diagrams, f"{page_file.name}: {len(page.images)} images, the chapter has {pngs + diagrams}"
    for src in page.images:
        if not src.startswith(("http", "data:")):
            assert (page_file.parent / src).resolve().exists(), f"{page_file.name}: image {src} is missing"
    assert page.listings == listings, f"{page_file.name}: {page.listings} code listings, the chapter shows {listings}"
    assert "```" not in page_file.read_text(), "a listing shows raw Markdown fences"


def test_the_landing_page_maps_the_book(site):
    out, _ = site
    text = (out / "index.html").read_text()
    page = Page(text)
    for path in CHAPTERS:
        assert f"chapters/{path.stem}.html" in page.links
        assert notebooks.binder_url(path).replace("&", "&amp;") in text
        assert (notebooks.colab_url(path) in page.links) == notebooks.colab_ready(path)
    for heading in ("Who this book is for", "How to read and run it", "Notation", "How the book decides that a claim holds"):
        assert heading in text
    assert page.math > 5       # the notation table
    assert (out / "_static" / "mathjax" / "MathJax.js").exists()
    assert "cdn" not in (out / "chapters" / "01_lstm_numpy.html").read_text().lower().split("mathjax.js")[0][-300:]


def test_one_repository_address_everywhere():
    repo = notebooks.repository()
    assert repo["repository"].startswith("https://github.com/")
    readme = (ROOT / "README.md").read_text()
    for link in re.findall(r"https://mybinder\.org/v2/gh/[^\s)]+", readme):
        assert link.startswith(repo["binder"]), link
    for link in re.findall(r"https://colab\.research\.google\.com/github/[^\s)]+", readme):
        assert link.startswith(f"https://colab.research.google.com/github/{repo['owner_name']}/"), link
    for path in COLAB_CHAPTERS:
        source = _colab_cell(path).source
        assert f"git+{repo['repository']}" in source, f"{path.name}: its Colab cell installs from elsewhere"
        assert (ROOT / "chapters" / path.name).exists() and f"labpath=chapters%2F{path.name}" in notebooks.binder_url(path)


def _colab_cell(path):
    nb = notebooks.read(path)
    first = next(c for c in nb.cells if c.cell_type == "code")
    assert notebooks.is_colab_setup(first), f"{path.name}: the first code cell is not the Colab setup"
    return first


COLAB_CHAPTERS = [p for p in CHAPTERS if notebooks.colab_ready(p)]


@pytest.mark.parametrize("path", COLAB_CHAPTERS, ids=[p.stem for p in COLAB_CHAPTERS])
def test_the_colab_cell_installs_the_library_on_colab_and_nothing_elsewhere(path, monkeypatch):
    import subprocess

    calls = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: calls.append((cmd, kw)))
    source = _colab_cell(path).source
    exec(compile(source, f"{path.name}:colab-setup", "exec"), {})
    assert calls == [], "outside Colab the cell must do nothing"
    monkeypatch.setitem(sys.modules, "google", types.ModuleType("google"))
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    exec(compile(source, f"{path.name}:colab-setup", "exec"), {})
    assert len(calls) == 1
    cmd, kw = calls[0]
    assert cmd[:4] == [sys.executable, "-m", "pip", "install"] and kw.get("check") is True
    assert any(arg.startswith("lstm_rl_lib @ git+https://github.com/") for arg in cmd)


# ----------------------------------------------------------------------------------------------
# A real browser
# ----------------------------------------------------------------------------------------------
def _browser():
    missing = [what for what, ok in (("chromium", shutil.which("chromium") or shutil.which("chromium-browser")),
                                     ("chromedriver", shutil.which("chromedriver"))) if not ok]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package (requirements-site.txt)")
    if missing:
        pytest.skip(f"no headless browser here: {', '.join(missing)} missing (Debian: apt-get install chromium "
                    f"chromium-driver; .ci/run does that on CI)")
    return shutil.which("chromium") or shutil.which("chromium-browser"), shutil.which("chromedriver")


def test_a_chapter_page_renders_in_a_real_browser(site):
    binary, driver_path = _browser()
    import time

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    out, _ = site
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(out))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)      # loopback only
    threading.Thread(target=server.serve_forever, daemon=True).start()
    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1300,1600"):
        options.add_argument(arg)
    options.binary_location = binary
    browser = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        page = out / "chapters" / "01_lstm_numpy.html"
        formulas = Page(page.read_text()).math            # as Sphinx wrote them
        browser.get(f"http://127.0.0.1:{server.server_port}/chapters/{page.name}")
        rendered, deadline = 0, time.time() + 60
        while time.time() < deadline:                     # MathJax leaves one typeset frame per formula
            rendered = browser.execute_script(
                "return window.MathJax && MathJax.Hub && MathJax.Hub.queue.pending === 0 ? "
                "document.querySelectorAll('span.MathJax[id$=\"-Frame\"]').length : 0")
            if formulas and rendered >= formulas:
                break
            time.sleep(0.5)
        errors = browser.execute_script("return document.querySelectorAll('.MathJax_Error, merror').length")
        images = browser.execute_script(
            "return Array.from(document.images).map(i => [i.getAttribute('src'), i.complete && i.naturalWidth > 0])")
        listing = browser.execute_script(
            "const p = document.querySelector('.lstm-rl-source pre span[style*=color]'); return p ? getComputedStyle(p).color : null")
    finally:
        browser.quit()
        server.shutdown()
    assert formulas > 20 and rendered >= formulas, f"MathJax typeset {rendered} of {formulas} formulas"
    assert errors == 0, f"{errors} formulas failed to typeset"
    assert images and all(ok for _, ok in images), f"images that did not load: {[s for s, ok in images if not ok]}"
    assert listing and listing != "rgb(0, 0, 0)", "the code listings are not highlighted"


def test_the_committed_diagrams_are_what_the_drawing_script_draws():
    import base64
    import importlib.util

    spec = importlib.util.spec_from_file_location("draw", ROOT / "chapters" / "diagrams" / "draw.py")
    draw = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(draw)
    shown = {}
    for path in CHAPTERS:
        for cell in notebooks.read(path).cells:
            if cell.cell_type == "markdown":
                for m in re.finditer(r'<img src="data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)" alt="[^"]*" title="([a-z_]+)"',
                                     cell.source):
                    shown[m.group(2)] = base64.b64decode(m.group(1)).decode()
    assert set(shown) == set(draw.DIAGRAMS), f"diagrams shown {sorted(shown)}, drawn {sorted(draw.DIAGRAMS)}"
    for name, make in draw.DIAGRAMS.items():
        svg = make()
        hint = "run python3 chapters/diagrams/draw.py"
        assert (ROOT / "chapters" / "diagrams" / f"{name}.svg").read_text() == svg, f"{name}.svg is out of date: {hint}"
        assert shown[name] == svg, f"the chapter shows an old drawing of {name}: {hint}"
        assert svg.startswith("<svg ") and "<title>" in svg and "http" not in svg.replace("http://www.w3.org/2000/svg", "")
