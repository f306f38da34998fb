"""Reflow (WCAG 1.4.10) in a real browser: what runs past the right edge of a page or out of
its own box, and where a page's content starts. Plain functions over a Playwright page (the
caller imports Playwright; this module loads without it)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Page

NARROW = {"width": 320, "height": 640}  # WCAG 1.4.10's width (a 1280 px screen at 400 %)
LARGEST_TEXT = "larger"  # the text-size switch's "A++" (html.text-larger)

# Everything visible that ends past the right edge of the page, or whose content runs out of
# its own box (text past a button's edge), and the page's own sideways scroll. Content inside
# a box that scrolls sideways by itself (a data table on a narrow screen) is reached there:
# only that box counts. A select's longest option must fit its box, unless the browser
# wraps long options (appearance: base-select). 1 px is left for rounding.
_OVERFLOW_JS = """() => {
  const width = document.documentElement.clientWidth;
  const problems = [];
  const scroll = document.documentElement.scrollWidth;
  if (scroll > width + 1) problems.push(`the page scrolls sideways: ${scroll} px in ${width}`);
  const describe = (el) => {
    let d = el.tagName.toLowerCase();
    if (el.id) d += '#' + el.id;
    if (el.className && typeof el.className === 'string')
      d += '.' + el.className.trim().split(/\\s+/).join('.');
    const text = (el.innerText || el.value || '').replace(/\\s+/g, ' ').trim().slice(0, 40);
    return text ? `${d} "${text}"` : d;
  };
  const inScroller = (el) => {
    for (let a = el.parentElement; a && a !== document.body; a = a.parentElement) {
      if (['auto', 'scroll'].includes(getComputedStyle(a).overflowX)) return true;
    }
    return false;
  };
  const runsOut = (el) => el.clientWidth > 0 && el.scrollWidth > el.clientWidth + 1
    && getComputedStyle(el).overflowX === 'visible'
    && !['INPUT', 'TEXTAREA'].includes(el.tagName);
  const canvas = document.createElement('canvas').getContext('2d');
  const optionCut = (select) => {
    const style = getComputedStyle(select);
    if (style.appearance === 'base-select') return null;
    canvas.font = style.font;
    const room = select.clientWidth - parseFloat(style.paddingLeft)
      - parseFloat(style.paddingRight) - parseFloat(style.fontSize) / 2;  // the arrow
    const widest = [...select.options].reduce((a, o) =>
      canvas.measureText(o.text).width > canvas.measureText(a.text).width ? o : a);
    return canvas.measureText(widest.text).width > room + 1 ? widest.text : null;
  };
  for (const el of document.body.querySelectorAll('*')) {
    if (!el.checkVisibility({checkVisibilityCSS: true})) continue;
    const box = el.getBoundingClientRect();
    if (box.width <= 1 || box.height <= 1) continue;  // for screen readers only
    if (inScroller(el)) continue;
    if (box.right > width + 1) {
      problems.push(`${describe(el)} ends at ${Math.round(box.right)} px`);
    } else if (el.tagName === 'SELECT') {
      const cut = optionCut(el);
      if (cut) problems.push(`${describe(el)} cuts the option "${cut}"`);
    } else if (runsOut(el) && ![...el.children].some(
        (child) => runsOut(child) || child.getBoundingClientRect().right > box.right + 1)) {
      problems.push(`${describe(el)} runs out of its box: ${el.scrollWidth} px in ` +
                    `${el.clientWidth}`);
    }
  }
  return problems;
}"""

# Where the page's own content starts (its <main>), from the top of the document.
_CONTENT_TOP_JS = "document.querySelector('main').getBoundingClientRect().top + window.scrollY"


def overflow(page: Page) -> list[str]:
    """What runs past the right edge or out of its box on the page as it is now; [] if none."""
    return page.evaluate(_OVERFLOW_JS)


def content_top(page: Page) -> float:
    """Where the page's own content starts, below the top bar and the progress: the top of
    <main>, in CSS px from the top of the page."""
    return page.evaluate(_CONTENT_TOP_JS)


def set_text_size(page: Page, size: str) -> None:
    """The page as it is shown at another text size (the switch sets just this class on
    <html>, from the visit's choice), without loading it again."""
    page.evaluate("size => { document.documentElement.className = `text-${size}`; }", size)


# How many lines the top bar's parts (brand, languages, who, log-out) take: parts whose boxes
# overlap vertically share a line.
_BAR_LINES_JS = """(selector) => {
  const boxes = [...document.querySelectorAll(selector + ' > *')]
    .filter((el) => el.checkVisibility({checkVisibilityCSS: true}))
    .map((el) => el.getBoundingClientRect())
    .filter((box) => box.width > 1 && box.height > 1)
    .sort((a, b) => a.top - b.top);
  let lines = 0, bottom = -Infinity;
  for (const box of boxes) {
    if (box.top >= bottom) { lines += 1; bottom = box.bottom; }
    else bottom = Math.max(bottom, box.bottom);
  }
  return lines;
}"""


def bar_lines(page: Page, selector: str = "header.topbar") -> int:
    """The lines the top bar's parts take (1: all side by side)."""
    return page.evaluate(_BAR_LINES_JS, selector)


def past_the_edge(page: Page) -> list[str]:
    """The page's sideways scroll and what ends past its right edge (not what only runs out of
    its own box, such as a chart's label in its SVG)."""
    return [p for p in overflow(page) if "scrolls sideways" in p or " ends at " in p]


def page_height(page: Page) -> int:
    return page.evaluate("document.documentElement.scrollHeight")
