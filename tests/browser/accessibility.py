"""An accessibility smoke check run inside the page, on what it rendered.

Not a full audit (axe-core is not packaged for Debian and the machines are offline), but the
checks that catch most regressions a person would hit first, each from WCAG 2.2:

- the document has a `lang` (3.1.1) and a non-empty title (2.4.2);
- every form control has a label: `<label for>`, a wrapping label, `aria-label` or
  `aria-labelledby` (1.3.1, 4.1.2); every button and link has a name (4.1.2, 2.4.4);
- images have `alt` (1.1.1);
- one `h1`, and no heading skips a level on the way down (1.3.1, 2.4.6);
- no two elements share an id (4.1.1: labels and aria references would point at the wrong one);
- the text contrast of every visible element with text of its own is at least 4.5:1, 3:1
  for large text (1.4.3), against the first opaque background behind it.
"""

from __future__ import annotations

from selenium.webdriver.remote.webdriver import WebDriver

_CHECKS = r"""
const problems = [];
const visible = (e) => !!(e.offsetWidth || e.offsetHeight || e.getClientRects().length);
const describe = (e) => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') +
  (e.className && typeof e.className === 'string' ? '.' + e.className.split(' ')[0] : '');
const nameOf = (e) => (e.getAttribute('aria-label') || '').trim() ||
  (e.getAttribute('aria-labelledby') || '').split(' ').map((id) => {
    const l = document.getElementById(id); return l ? l.textContent.trim() : '';
  }).join('').trim() || (e.textContent || '').trim() || (e.getAttribute('title') || '').trim();

if (!document.documentElement.getAttribute('lang')) problems.push('html has no lang');
if (!document.title.trim()) problems.push('the document has no title');

for (const e of document.querySelectorAll('input, select, textarea')) {
  if (['hidden', 'submit', 'button', 'reset'].includes(e.type)) continue;
  const labelled = (e.id && document.querySelector(`label[for="${CSS.escape(e.id)}"]`)) ||
    e.closest('label') || e.getAttribute('aria-label') || e.getAttribute('aria-labelledby');
  if (!labelled) problems.push(`control without a label: ${describe(e)}`);
}
for (const e of document.querySelectorAll('button, a[href]')) {
  if (visible(e) && !nameOf(e)) problems.push(`no accessible name: ${describe(e)}`);
}
for (const e of document.querySelectorAll('img')) {
  if (!e.hasAttribute('alt')) problems.push(`image without alt: ${describe(e)}`);
}

const headings = [...document.querySelectorAll('h1, h2, h3, h4, h5, h6')];
if (headings.filter((h) => h.tagName === 'H1').length !== 1) problems.push('not exactly one h1');
let level = 0;
for (const h of headings) {
  const next = Number(h.tagName[1]);
  if (next > level + 1) problems.push(`heading skips a level: h${level} then ${describe(h)}`);
  level = next;
}

const seen = new Map();
for (const e of document.querySelectorAll('[id]')) seen.set(e.id, (seen.get(e.id) || 0) + 1);
for (const [id, n] of seen) if (n > 1) problems.push(`id used ${n} times: ${id}`);

const rgba = (text) => {
  const m = text.match(/rgba?\(([^)]+)\)/);
  if (!m) return [0, 0, 0, 0];
  const parts = m[1].split(',').map((p) => parseFloat(p));
  return [parts[0], parts[1], parts[2], parts.length > 3 ? parts[3] : 1];
};
const luminance = ([r, g, b]) => {
  const c = [r, g, b].map((v) => {
    v /= 255;
    return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
  });
  return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
};
const background = (e) => {
  for (let n = e; n; n = n.parentElement) {
    const c = rgba(getComputedStyle(n).backgroundColor);
    if (c[3] >= 0.99) return c;
  }
  return [255, 255, 255, 1];
};
for (const e of document.body.querySelectorAll('*')) {
  const own = [...e.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
  if (!own || !visible(e)) continue;
  const style = getComputedStyle(e);
  if (style.visibility === 'hidden' || e.closest('[aria-hidden="true"]')) continue;
  const fg = rgba(style.color), bg = background(e);
  const [l1, l2] = [luminance(fg), luminance(bg)].sort((a, b) => b - a);
  const ratio = (l1 + 0.05) / (l2 + 0.05);
  const size = parseFloat(style.fontSize), bold = Number(style.fontWeight) >= 700;
  const needed = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
  if (ratio < needed) problems.push(`contrast ${ratio.toFixed(2)} < ${needed}: ${describe(e)}`);
}
return problems;
"""


def accessibility_problems(driver: WebDriver) -> list[str]:
    """What the smoke check found on the page as it is now ([] when nothing)."""
    problems: list[str] = driver.execute_script(_CHECKS)
    return problems
