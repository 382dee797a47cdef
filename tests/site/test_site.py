"""The built website, tested the way a reader uses it: in a real browser.

Playwright drives Debian's Chromium over the book in `_build/html`, served on 127.0.0.1.
Run it after `make book` (`make test` does); it saves a screenshot of every page under
`_build/screenshots`. With ``TLCOURSE_SITE_HTML=_build/student/_build/html`` (as
`make student` sets it) the same tests run over the student edition, where no page may
show a solution.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import shutil
import threading
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
HTML = Path(os.environ.get("TLCOURSE_SITE_HTML", ROOT / "_build" / "html")).resolve()
SHOTS = HTML.parent / "screenshots"
STUDENT_TITLE = "(student edition)"

# The flags that let Chromium run headless as root on a machine without a network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# Requests that leave 127.0.0.1 are answered with a network error (the book must work
# offline, and a test must not depend on the internet). No page may make one: MathJax, for
# one, is served from the book itself (sphinx-mathjax-offline). A host listed here, with
# its reason, would be tolerated.
ALLOWED_OUTSIDE_HOSTS: dict[str, str] = {}


def _toc_pages() -> list[str]:
    """Every page of the table of contents, as a docname (`chapters/01_...`)."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    pages = [toc["root"]]
    for part in toc["parts"]:
        pages += [entry["file"] for entry in part["chapters"]]
    return pages


TOC_PAGES = _toc_pages()
CHAPTERS = [page for page in TOC_PAGES if page.startswith("chapters/")]


@pytest.fixture(scope="module")
def server():
    if not (HTML / "index.html").exists():
        pytest.fail(f"{HTML} has no built book: run `make book` first.")
    handler = functools.partial(_QuietHandler, directory=str(HTML))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # the test reports failures; the access log is noise
        pass


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(executable).exists():
        pytest.fail("Chromium is missing: `make test` installs it (apt-get install chromium).")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class PageVisit:
    """Open one page and record what a reader's browser would report."""

    def __init__(self, browser, base_url: str):
        self.base = urlsplit(base_url).netloc
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.page = self.context.new_page()
        self.js_errors: list[str] = []
        self.outside: set[str] = set()
        self.page.on("pageerror", lambda exc: self.js_errors.append(f"uncaught: {exc}"))
        self.page.on("console", self._on_console)
        self.context.route("**/*", self._route)

    def _route(self, route):
        host = urlsplit(route.request.url).netloc
        if host == self.base:
            route.continue_()
        else:
            self.outside.add(host)
            route.abort("internetdisconnected")

    def _on_console(self, message):
        if message.type != "error":
            return
        source = message.location.get("url", "") if message.location else ""
        if urlsplit(source).netloc in self.outside:
            return  # the refused outside request itself, checked against the allow-list
        self.js_errors.append(f"console: {message.text} ({source})")

    def close(self):
        self.context.close()


@pytest.fixture
def visit(server, browser):
    """A fresh browser context on the served book, closed after the test."""
    page_visit = PageVisit(browser, server)
    yield page_visit
    page_visit.close()


def _sidebar_hrefs(page) -> list[str]:
    return page.eval_on_selector_all(
        "nav.bd-links a.reference.internal", "links => links.map(a => a.href)"
    )


@pytest.mark.parametrize("docname", TOC_PAGES)
def test_page_loads_cleanly_with_figures_and_full_sidebar(server, visit, docname):
    page = visit.page
    response = page.goto(f"{server}/{docname}.html", wait_until="load")
    assert response is not None and response.status == 200, docname
    page.wait_for_load_state("networkidle")

    # Every image has loaded: eager-load any lazy ones, then wait for each to decode.
    broken = page.evaluate(
        """async () => {
            const images = Array.from(document.images);
            images.forEach(img => { img.loading = "eager"; });
            await Promise.all(images.map(img => img.decode().catch(() => null)));
            return images.filter(img => !(img.complete && img.naturalWidth > 0))
                         .map(img => img.currentSrc || img.src);
        }"""
    )
    assert not broken, f"{docname}: images that did not load: {broken}"

    # No cell output shows a Python traceback, except the cells tagged
    # `raises-exception`: deliberate errors that the chapter shows the reader.
    outputs = page.eval_on_selector_all(
        ".cell_output, .output",
        """nodes => nodes.map(n => ({
            text: n.innerText,
            deliberate: !!n.closest('.cell.tag_raises-exception'),
        }))""",
    )
    tracebacks = [
        o["text"][:300]
        for o in outputs
        if "Traceback (most recent call last)" in o["text"] and not o["deliberate"]
    ]
    assert not tracebacks, f"{docname}: outputs with a traceback: {tracebacks}"

    # Formulas are typeset (by the book's own copy of MathJax), not left as TeX.
    if page.locator(".math").count():
        page.wait_for_selector("mjx-container", timeout=30_000)

    # The sidebar lists every chapter of the book.
    hrefs = [urlsplit(href).path for href in _sidebar_hrefs(page)]
    missing = [ch for ch in CHAPTERS if not any(h.endswith(f"/{ch}.html") for h in hrefs)]
    assert not missing, f"{docname}: sidebar lacks {missing}"

    assert not visit.js_errors, f"{docname}: JavaScript errors: {visit.js_errors}"
    unexpected = visit.outside - set(ALLOWED_OUTSIDE_HOSTS)
    assert not unexpected, f"{docname}: requests outside the book: {sorted(unexpected)}"

    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SHOTS / f"{docname.replace('/', '__')}.png", full_page=True)


def test_chapters_show_their_figures(server, visit):
    """A chapter page has rendered figures, not only text: the glued plots are there."""
    counts = {}
    for docname in CHAPTERS:
        visit.page.goto(f"{server}/{docname}.html", wait_until="load")
        counts[docname] = visit.page.evaluate(
            "Array.from(document.images).filter(i => i.naturalWidth > 100).length"
        )
    assert all(n >= 1 for n in counts.values()), counts


def test_search_finds_fine_tuning(server, visit):
    page = visit.page
    page.goto(f"{server}/search.html?q=fine-tuning", wait_until="load")
    results = page.locator("#search-results ul.search li")
    results.first.wait_for(timeout=20_000)
    hrefs = results.locator("a").evaluate_all("links => links.map(a => a.href)")
    assert any(re.search(r"chapters/04_fine_tuning\.html", h) for h in hrefs), hrefs
    assert not visit.js_errors, visit.js_errors
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SHOTS / "search.png", full_page=True)


def test_glossary_terms_link_back_from_the_chapters(server, visit):
    """First uses in the chapters link to the glossary, and the glossary has the 中文 terms."""
    page = visit.page
    page.goto(f"{server}/appendix/glossary.html", wait_until="load")
    terms = page.eval_on_selector_all("dl.glossary dt", "dts => dts.map(d => d.innerText)")
    for chinese in (
        "迁移学习",
        "源域",
        "目标域",
        "微调",
        "特征提取",
        "预训练",
        "领域自适应",
        "生成对抗网络",
    ):
        assert any(chinese in term for term in terms), (chinese, terms)
    page.goto(f"{server}/{CHAPTERS[0]}.html", wait_until="load")
    links = page.eval_on_selector_all(
        "a.reference.internal", "links => links.map(a => a.getAttribute('href'))"
    )
    assert any("glossary.html#term-" in (h or "") for h in links), links


@pytest.mark.parametrize("docname", CHAPTERS)
def test_solutions_show_in_the_teacher_edition_only(server, visit, docname):
    """Teacher edition: one solution dropdown per exercise. Student edition: none, and one
    stub cell per exercise, its code shown and its deliberate error not."""
    page = visit.page
    page.goto(f"{server}/{docname}.html", wait_until="load")
    student = STUDENT_TITLE in page.title()
    exercises = page.locator("div.exercise").count()
    solutions = page.locator("div.solution").count()
    stubs = page.locator(".cell.tag_exercise-stub")
    assert exercises >= 3, (docname, exercises)
    if student:
        assert solutions == 0 and stubs.count() == exercises, (docname, solutions)
        assert "NotImplementedError" in stubs.first.inner_text(), docname
        assert page.locator(".cell.tag_exercise-stub .cell_output").count() == 0, docname
    else:
        assert solutions == exercises and stubs.count() == 0, (docname, solutions)


@pytest.mark.parametrize("docname", CHAPTERS)
def test_chapter_offers_downloads_and_launch_buttons(server, visit, docname):
    """The header of a chapter downloads it (.md and executed .ipynb) or opens it elsewhere."""
    page = visit.page
    page.goto(f"{server}/{docname}.html", wait_until="load")
    hrefs = page.eval_on_selector_all("a", "links => links.map(a => a.href)")
    # Colab and Binder open this edition's notebook on the notebooks branch, a notebook the
    # build wrote (with the cell that installs the package at the built commit first).
    edition = "student" if STUDENT_TITLE in page.title() else "teacher"
    path = f"{edition}/{docname}.ipynb"
    for host, where in (("colab.research.google.com", f"/blob/notebooks/{path}"),
                        ("mybinder.org", f"/notebooks?urlpath=tree/{path}")):  # fmt: skip
        links = [h for h in hrefs if urlsplit(h).netloc == host]
        assert links and all(h.endswith(where) for h in links), (docname, host, links)
    notebook = json.loads((HTML.parent / "notebooks" / path).read_text(encoding="utf8"))
    assert notebook["cells"][0]["metadata"]["tags"] == ["hosted-install"], path
    for suffix in (".md", ".ipynb"):
        source = next(h for h in hrefs if h.endswith(f"_sources/{docname}{suffix}"))
        response = page.request.get(source)
        assert response.ok, (source, response.status)
        if suffix == ".ipynb":  # the executed notebook: outputs included
            cells = response.json()["cells"]
            assert any(cell.get("outputs") for cell in cells), source


def test_api_reference_documents_every_public_name_with_its_chapter():
    """The API page (generated by autodoc) has an entry for every name both framework halves
    and the experiment loops export, and each entry's "Taught in" links to a chapter."""
    import tlcourse.experiments
    import tlcourse.keras as tk
    import tlcourse.torch as tt

    html = (HTML / "appendix" / "api.html").read_text()
    for module in (tt, tk, tlcourse.experiments):
        names = [n for n in module.__all__ if callable(getattr(module, n))]
        missing = [n for n in names if f'id="{module.__name__}.{n}"' not in html]
        assert not missing, (module.__name__, missing)
    entries = re.split(r'<dl class="py (?:function|class)">', html)[1:]
    taught = [e for e in entries if "Taught in" in e.split("</dd>")[0]]
    assert taught, "no entry says which chapter teaches it"
    for entry in taught:
        body = entry.split("Taught in", 1)[1][:400]
        assert 'href="../chapters/' in body, body
