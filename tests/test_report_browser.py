"""report.html in headless Chromium, opened from disk: every <img> loads (naturalWidth > 0)
and a screenshot is taken. Only Chromium's own command line: a copy of the page with a small
script that writes each image's naturalWidth into the DOM (--dump-dom), and --screenshot.
In CI a missing chromium fails the test; elsewhere it skips with why."""
import html
import json
import os
import re
import shutil
import subprocess

import pytest

from pipelines.report import build, sources
from tests.test_report import COUNTERS, Page, assert_png, known_rows, write_output

BROWSERS = ('chromium', 'chromium-browser')
PROBE = """<script>
window.addEventListener('load', function () {
  var found = Array.prototype.map.call(document.images, function (img) {
    return {src: img.getAttribute('src'), complete: img.complete, width: img.naturalWidth};
  });
  var out = document.createElement('pre');
  out.id = 'image-probe';
  out.textContent = JSON.stringify(found);
  document.body.appendChild(out);
});
</script>"""


def chromium() -> str:
  for name in BROWSERS:
    path = shutil.which(name)
    if path:
      return path
  reason = 'no chromium on PATH (Debian: apt-get install chromium)'
  if os.environ.get('CI'):
    pytest.fail(reason)
  pytest.skip(reason)


def run_chromium(browser, tmp_path, *args):
  profile = tmp_path / 'profile'
  profile.mkdir(exist_ok=True)
  result = subprocess.run(
      [browser, '--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
       '--no-first-run', '--hide-scrollbars', '--allow-file-access-from-files',
       '--user-data-dir=%s' % profile] + list(args),
      capture_output=True, text=True, timeout=180)
  assert result.returncode == 0, result.stderr[-2000:]
  return result.stdout


@pytest.fixture(scope='module')
def report(tmp_path_factory):
  root = tmp_path_factory.mktemp('browser')
  write_output(root / 'output', known_rows(str(root)), COUNTERS)
  return build.build(sources.open_output_dir(str(root / 'output')), str(root / 'report'),
                     'output')


def test_every_image_loads_from_disk(report, tmp_path):
  browser = chromium()
  page = Page(report)
  assert len(page.images) > 10
  # The copy sits elsewhere; <base> resolves its relative srcs in the report's folder.
  probe = tmp_path / 'probe.html'
  base = '<base href="file://%s/">' % os.path.dirname(report)
  probe.write_text(page.source.replace('<head>', '<head>' + base, 1).replace(
      '</body>', PROBE + '</body>', 1), encoding='utf-8')
  dom = run_chromium(browser, tmp_path, '--virtual-time-budget=15000', '--dump-dom',
                     probe.as_uri())
  match = re.search(r'<pre id="image-probe">(.*?)</pre>', dom, re.S)
  assert match, dom[-2000:]
  found = json.loads(html.unescape(match.group(1)))
  assert [f['src'] for f in found] == page.images
  assert [f['src'] for f in found if not (f['complete'] and f['width'] > 0)] == []


def test_screenshot_of_the_page(report, tmp_path):
  browser = chromium()
  shot = tmp_path / 'report.png'
  run_chromium(browser, tmp_path, '--window-size=1280,2400', '--virtual-time-budget=15000',
               '--screenshot=%s' % shot, 'file://%s' % report)
  assert_png(str(shot), min_bytes=20000)
