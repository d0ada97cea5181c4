"""Every survey preset in every language on a phone: measured in Debian's Chromium at 320, 360 and 390 px
(and 1280 px, a desktop).

For each width one browser context visits each preset × language (script off, so every follow-up and the
contact field are on the page; the longest label of each scale chosen, so it is bold) and measures: the
page never scrolls sideways, no two controls a finger can hit overlap, every control's text stays inside
its control, and no word is broken across lines (each word's Range has its rects on one line).
Screenshots of 320 and 390 px land in test-artifacts/."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from feedback import organisation, surveys
from feedback.models import LANGUAGES
from feedback.surveys import survey_templates
from feedback.web.scale_layout import FIT_MAX, FIT_MIN, FIT_STEP, scale_fit
from tests.conftest import ARTIFACTS, Org, Server, default_plugins, make_org, save_screenshot

WIDTHS = (320, 360, 390, 1280)
SHOT_WIDTHS = (320, 390)

# Returns what is wrong with the page at this width: a list of strings, empty when it fits.
MEASURE = """
() => {
  // A chosen option's label turns bold (wider): choose the longest label of each scale first.
  for (const scale of document.querySelectorAll(".scale")) {
    const labels = [...scale.querySelectorAll(".lbl")];
    const longest = labels.reduce((a, b) => (b.textContent.length > a.textContent.length ? b : a));
    longest.closest(".opt").querySelector("input").checked = true;
  }
  const problems = [];
  const width = window.innerWidth;
  const doc = document.documentElement;
  if (doc.scrollWidth > width) problems.push(`page scrolls sideways: ${doc.scrollWidth} > ${width}`);
  const visible = (el) => {
    const r = el.getBoundingClientRect();
    return r.width > 0 && r.height > 0 && !el.closest('[aria-hidden="true"]');
  };
  const name = (el) => (el.innerText || el.value || el.getAttribute("name") || el.tagName).trim().slice(0, 40);
  // What a finger hits: a rating option is its whole label (the radio fills it), a tick box its row.
  const targets = [...document.querySelectorAll('a[href], button, textarea, input[type=text], label.opt, label.check')]
    .filter(visible);
  const boxes = targets.map((el) => el.getBoundingClientRect());
  const tolerance = 0.5;
  for (let i = 0; i < targets.length; i++) {
    const a = boxes[i];
    if (a.left < -tolerance || a.right > width + tolerance) problems.push(`outside the screen: ${name(targets[i])}`);
    for (let j = i + 1; j < targets.length; j++) {
      const b = boxes[j];
      const overlap = Math.min(a.right, b.right) - Math.max(a.left, b.left) > tolerance
        && Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top) > tolerance;
      if (overlap) problems.push(`overlap: "${name(targets[i])}" and "${name(targets[j])}"`);
    }
    // The control's own text stays inside it (text spilling out would cover its neighbour).
    const range = document.createRange();
    range.selectNodeContents(targets[i]);
    for (const r of range.getClientRects()) {
      if (r.width === 0) continue;
      if (r.left < a.left - tolerance || r.right > a.right + tolerance)
        problems.push(`text outside its control: ${name(targets[i])}`);
    }
  }
  // No word broken across lines: every run of letters (Han and kana excepted: those break between
  // characters by design) lies on one line.
  const word = /[\\p{L}\\p{M}\\p{N}]+/gu;
  const cjk = /[\\p{Script=Han}\\p{Script=Hiragana}\\p{Script=Katakana}]/u;
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const parent = node.parentElement;
    if (!parent || !visible(parent) || parent.closest("script, style")) continue;
    for (const match of node.data.matchAll(word)) {
      if (cjk.test(match[0]) || match[0].length < 2) continue;
      const range = document.createRange();
      range.setStart(node, match.index);
      range.setEnd(node, match.index + match[0].length);
      const tops = new Set([...range.getClientRects()].filter((r) => r.width > 0).map((r) => Math.round(r.top)));
      if (tops.size > 1) problems.push(`word broken across lines: "${match[0]}"`);
    }
  }
  return problems;
}
"""


@pytest.fixture(scope="module")
def presets(tmp_path_factory: pytest.TempPathFactory) -> tuple[Org, dict[str, str]]:
    """Every preset the plugins register, published, each with a counter whose service has a long name."""
    org = make_org(tmp_path_factory.mktemp("phones") / "feedback.db")
    conn = sqlite3.connect(org.db, isolation_level=None)
    conn.execute("BEGIN")
    organisation.add_service(
        conn,
        "LONG",
        "Thủ tục hải quan đối với hàng hóa gia công, sản xuất xuất khẩu",
        agency="A",
        names={
            "vi": "Thủ tục hải quan đối với hàng hóa gia công, sản xuất xuất khẩu",
            "ru": "Помещение товаров под таможенную процедуру таможенного транзита",
            "zh": "特种设备生产单位许可",
            "en": "Customs procedure for processing and export-production goods",
        },
    )
    tokens = {}
    for slug in survey_templates(default_plugins()):
        if slug not in ("csat", "haochaping", "vash_kontrol"):  # make_org published these
            surveys.publish_template(conn, slug, default_plugins())
        tokens[slug] = organisation.add_touchpoint(
            conn, "A1", f"Phone {slug}", slug, counter="12", service="LONG", token=f"tp-phone-{slug}"
        )
    conn.execute("COMMIT")
    conn.close()
    return org, tokens


@pytest.fixture(scope="module")
def phone_server(presets: tuple[Org, dict[str, str]]):
    srv = Server(presets[0].db).start()
    yield srv
    srv.stop()


def page_problems(page: Page) -> list[str]:
    return page.evaluate(MEASURE)


def test_every_preset_fits_a_phone_in_every_language(
    browser: Browser, phone_server: Server, presets: tuple[Org, dict[str, str]]
) -> None:
    """Each page is loaded once and measured at every width: with scripts off, its layout is CSS alone,
    which the browser lays out again for each viewport width as it would have at load."""
    _, tokens = presets
    assert {"csat", "haochaping", "vash_kontrol", "vn_one_stop", "a11_v2", "govuk"} <= set(tokens)
    context = browser.new_context(viewport={"width": WIDTHS[0], "height": 720}, java_script_enabled=False)
    page = context.new_page()
    found = {}
    try:
        for slug, token in tokens.items():
            for lang in LANGUAGES:
                response = page.goto(f"{phone_server.url}/s/{token}?lang={lang}")
                assert response is not None and response.status == 200
                for width in WIDTHS:
                    page.set_viewport_size({"width": width, "height": 720})
                    problems = page_problems(page)
                    if problems:
                        found[f"{slug}/{lang} at {width} px"] = problems
                    if width in SHOT_WIDTHS:
                        ARTIFACTS.mkdir(exist_ok=True)
                        save_screenshot(page, ARTIFACTS / f"phone-{width}-{slug}-{lang}.png")
                page.set_viewport_size({"width": WIDTHS[0], "height": 720})
    finally:
        context.close()
    assert not found, "\n".join(f"{page}: {'; '.join(sorted(set(problems)))}" for page, problems in found.items())


def test_the_measure_sees_a_broken_page(browser: Browser) -> None:
    """The checks fail where they should: sideways scroll, overlapping controls, a word split by hyphens."""
    context = browser.new_context(viewport={"width": 320, "height": 720})
    page = context.new_page()
    try:
        page.set_content(
            '<html lang="en"><body style="margin:0;font-size:16px">'
            '<div style="width:400px">wide</div>'
            '<a href="#" style="position:absolute;top:100px;left:0;width:80px">one</a>'
            '<a href="#" style="position:absolute;top:100px;left:40px;width:80px">two</a>'
            '<p style="width:60px;hyphens:manual;font-size:16px">Dissatisfi&shy;ed</p>'
            "</body></html>"
        )
        problems = " | ".join(page_problems(page))
    finally:
        context.close()
    assert "scrolls sideways" in problems
    assert 'overlap: "one" and "two"' in problems
    assert "word broken across lines" in problems


def test_every_width_the_estimate_names_has_its_container_query() -> None:
    css = (Path(__file__).resolve().parent.parent / "feedback/web/static/survey.css").read_text()
    queries = {int(a) for a, b in re.findall(r"@container \(width<(\d+)rem\)\{\.fit-(\d+)>\.opt", css) if a == b}
    assert queries == set(range(FIT_MIN, FIT_MAX + 1, FIT_STEP))
    assert ".fit-list>.opt{" in css
    # Short labels fit anywhere; «Удовлетворительно» under five stars never fits side by side.
    assert scale_fit("faces", 3, ["Không", "Hài lòng", "Rất tốt"]) == ""
    assert scale_fit("stars", 5, ["Очень плохо", "Плохо", "Удовлетворительно", "Хорошо", "Отлично"]) == "fit-list"
    assert scale_fit("faces", 5, ["1", "2", "3", "Dissatisfied", "5"]).startswith("fit-")
