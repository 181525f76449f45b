"""`trajforge view` and the run report in a real headless Chromium (Debian's package, driven by Playwright; no
browser download), on a real run: filter to failed rows, open one, see its steps, failing check and mask
colouring; reflections beside their parents; tasks; deep links; the report's sections and its links into the
viewer. Each test writes a screenshot of every page it visits under its tmp dir."""

import concurrent.futures
import contextlib
import json
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import pytest
from playwright.sync_api import sync_playwright

from pipeline import rundir, shards
from tests import view_run
from tests.conftest import ROOT, run_cli

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# without the networking flags Chromium keeps trying to reach Google's services, which this closed network refuses
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run"]
REPORT_SECTIONS = ["Stages", "Funnel per source", "Failures by check", "Errors by kind", "LLM requests, retries and rate limits",
                   "Cost and tokens", "Curate: what was removed and why", "Judges", "What the stages made along the way", "Sampling time"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return view_run.build(tmp_path_factory.mktemp("browse"))


@contextlib.contextmanager
def serving(run_dir):
    """`trajforge view RUN_DIR --port 0` as a user starts it; yields the address it prints."""
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "view", str(run_dir), "--port", "0"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        first = pool.submit(proc.stdout.readline).result(timeout=60)
    assert first.startswith("trajforge view: http://127.0.0.1:"), first
    yield first.split()[2]
    proc.terminate()
    assert proc.wait(20) == 0 and "stopped" in proc.stdout.read()
    assert not (run_dir / rundir.VIEWER_FILE).exists()


@pytest.fixture(scope="module")
def viewer(run_dir):
    with serving(run_dir) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `scripts/setup.sh --test` installs Debian's chromium")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, tmp_path):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    tab = context.new_page()
    tab.set_default_timeout(15000)
    shots = iter(range(100))
    tab.shoot = lambda name: tab.screenshot(path=str(tmp_path / f"{next(shots):02d}-{name}.png"), full_page=True)
    yield tab
    context.close()


def rows_of(run_dir, stage="verify") -> list[dict]:
    return [r for p in rundir.stage_files(run_dir, stage) for r in shards.read_shard(p, "trajectory", validate=False)]


def failed(row: dict, check: str) -> bool:
    return any(c["name"] == check and not c["passed"] for c in row["checks"] or [])


def test_filter_to_failed_rows_open_one_and_see_steps_failing_check_and_masks(viewer, run_dir, page):
    page.goto(viewer)
    page.click("header nav >> text=verify")
    page.click('[data-facet="outcome"] a[data-value="failed"]')
    rows = [r for r in rows_of(run_dir) if r["passed"] is False]
    assert "outcome=failed" in page.url and page.inner_text("#total") == str(len(rows))
    page.click('[data-facet="check"] a[data-value="limits"]')
    rows = [r for r in rows if failed(r, "limits")]
    assert "outcome=failed" in page.url and "check=limits" in page.url
    assert page.inner_text("#total") == str(len(rows)) and page.locator("a.row-link").all_inner_texts() == [r["id"] for r in rows]
    page.shoot("failed-rows")

    row = next(r for r in rows if r["source"] == "program" and r["format"] == "cota")
    page.click(f"a.row-link >> text={row['id']}")
    assert page.url == f"{viewer}/stage/verify/row/{row['id']}"
    assert page.inner_text("#outcome") == "failed"
    assert page.locator("li.step").count() == len(row["steps"])
    for step in row["steps"]:
        assert step["thought"] in page.inner_text(f"#step-{step['index']}")
        if step["observation"] and not step["error"]:
            assert step["observation"] in page.inner_text(f"#step-{step['index']} .observation")
    limits = page.locator('#checks tr[data-check="limits"]')
    detail = next(c["detail"] for c in row["checks"] if c["name"] == "limits")
    assert "fail" in limits.get_attribute("class") and "FAILED" in limits.inner_text() and detail in limits.inner_text()
    assert page.locator("li.msg.trained").count() == sum(row["train_mask"]) > 0
    assert page.locator("li.msg.masked").count() == len(row["train_mask"]) - sum(row["train_mask"]) > 0
    colour = lambda selector: page.locator(selector).first.evaluate("e => getComputedStyle(e).backgroundColor")  # noqa: E731
    assert colour("li.msg.trained") != colour("li.msg.masked")
    page.shoot("failed-row")


def test_code_is_highlighted_and_arguments_pretty_printed(viewer, run_dir, page):
    row = next(r for r in rows_of(run_dir) if r["format"] == "codeact")
    page.goto(f"{viewer}/stage/verify/row/{row['id']}")
    code = json.loads(row["steps"][0]["tool_arguments"])["code"]
    block = page.locator("#step-0 .hl")
    assert block.inner_text().strip() == code.strip() and block.locator("span").count() > 3  # tokens coloured
    page.shoot("codeact-row")
    sql = next(r for r in rows_of(run_dir) if r["domain"] == "sql")
    page.goto(f"{viewer}/stage/verify/row/{sql['id']}")
    assert page.locator("#step-0 .hl .k").first.inner_text().upper() == "SELECT"  # a keyword, highlighted


def test_a_reflection_links_to_its_parent_and_shows_both_side_by_side(viewer, run_dir, page):
    page.goto(f"{viewer}/stage/verify?kind=reflection")
    child_id = page.locator("a.row-link").first.inner_text()
    child = next(r for r in rows_of(run_dir) if r["id"] == child_id)
    mistake = child["meta"]["reflection"]["message_index"]
    page.click("a.row-link >> nth=0")
    assert page.locator(f"#message-{mistake}").get_attribute("class").split()[:2] == ["msg", "masked"]  # STeP: not trained on
    wrong_step = next(s for s in child["steps"] if s["message_index"] == mistake)
    assert page.inner_text(f"#step-{wrong_step['index']} .masked-step") == "not trained on"
    page.click("#parent-link")
    parent_id = child["meta"]["reflection"]["parent_id"]
    assert page.url.endswith(f"/row/{parent_id}") and page.locator(f"a[href$='/compare/{child_id}']").count() == 1
    page.click(f"a[href$='/compare/{child_id}']")
    assert parent_id in page.inner_text("#parent h2") and child_id in page.inner_text("#child h2")
    assert page.locator("#child li.step").count() == len(child["steps"]) > page.locator("#parent li.step").count()
    page.shoot("side-by-side")


def test_the_task_behind_a_trajectory_and_every_trajectory_of_it(viewer, run_dir, page):
    row = rows_of(run_dir)[0]
    page.goto(f"{viewer}/stage/verify/row/{row['id']}")
    page.click("#task-link")
    assert page.url.endswith(f"/task/{row['task_id']}") and row["instruction"] in page.inner_text("main")
    same_task = [r["id"] for r in rows_of(run_dir) if r["task_id"] == row["task_id"]]
    listed = page.locator("a[href^='/stage/verify/row/']").all_inner_texts()
    assert listed == same_task and len(same_task) > 1
    page.shoot("task")


def test_text_search_and_deep_links(viewer, run_dir, page):
    page.goto(f"{viewer}/stage/verify")
    page.fill("input[name=q]", "database")
    page.press("input[name=q]", "Enter")
    expected = [r for r in rows_of(run_dir) if "database" in r["instruction"].lower()]
    assert "q=database" in page.url and page.inner_text("#total") == str(len(expected))
    shared = page.url
    page.goto("about:blank")
    page.goto(shared)  # a link pasted into a review opens the same view
    assert page.inner_text("#total") == str(len(expected))
    response = page.goto(f"{viewer}/stage/verify/row/traj-nope")
    assert response.status == 404 and "no row 'traj-nope'" in page.inner_text("main")
    page.shoot("not-found")


def test_the_viewer_is_local_and_read_only(viewer, run_dir):
    def files():
        return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in run_dir.rglob("*") if p.is_file()}

    before = files()
    reflection = next(r for r in rows_of(run_dir) if "reflection" in r["meta"])
    for path in ["/", "/stage/verify?outcome=failed", f"/stage/verify/row/{reflection['id']}", f"/stage/verify/compare/{reflection['id']}",
                 f"/task/{reflection['task_id']}", "/stage/synthesize", "/stage/curate?split=train", "/report", "/highlight.css"]:
        with urllib.request.urlopen(viewer + path, timeout=30) as reply:
            assert reply.status == 200, path
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(urllib.request.Request(f"{viewer}/stage/verify", data=b"x", method="POST"), timeout=10)
    assert refused.value.code == 405
    assert files() == before  # nothing in the run directory was written or touched
    assert urlparse(viewer).hostname == "127.0.0.1"


def test_the_report_in_the_viewer_has_its_sections_and_linked_examples(viewer, run_dir, page):
    page.goto(f"{viewer}/report")
    assert page.locator("h2").all_inner_texts() == REPORT_SECTIONS
    assert [t.split("\t")[0] for t in page.locator("#stages + p + table tr").all_inner_texts()[1:]] == ["synthesize", "sample", "verify", "curate"]
    for image in page.locator("img").all():
        assert image.evaluate("e => e.complete && e.naturalWidth > 0")
    page.shoot("report")
    example = page.locator("h2#checks ~ table a[href*='/row/']").first
    check = page.locator("h2#checks ~ table tr").nth(1).locator("td").first.inner_text()
    example.click()
    assert page.locator(f'#checks tr[data-check="{check}"]').get_attribute("class") == "fail"
    page.go_back()
    page.click(f"h2#checks ~ table a >> text={check}")  # the count links to the filtered list
    assert f"check={check}" in page.url and page.inner_text("#total") == str(sum(failed(r, check) for r in rows_of(run_dir)))


def test_the_report_file_links_into_a_running_viewer_and_stands_alone(viewer, run_dir, page):
    run_cli("report", run_dir, check=True)  # written while the viewer runs: its examples link there
    page.goto((run_dir / "report.html").as_uri())
    assert page.locator("h2").all_inner_texts() == REPORT_SECTIONS
    assert all(i.evaluate("e => e.src.startsWith('data:image/png') && e.naturalWidth > 0") for i in page.locator("img").all())
    page.shoot("report-file")
    link = page.locator("h2#errors ~ table a[href*='/row/']").first
    assert link.get_attribute("href").startswith(f"{viewer}/stage/verify/row/")
    link.click()
    assert page.url.startswith(viewer) and page.locator("li.step").count() > 0


def test_a_folder_without_shards_or_a_taken_port_is_refused_in_one_line(viewer, run_dir, tmp_path):
    empty = run_cli("view", tmp_path)
    assert empty.returncode == 2 and empty.stderr.strip() == f"error: {tmp_path}: no stage shards to view (not a run directory, or nothing has run yet)"
    port = urlparse(viewer).port
    taken = run_cli("view", run_dir, "--port", port)
    assert taken.returncode == 2 and taken.stderr.startswith(f"error: cannot listen on 127.0.0.1:{port}: ") and taken.stderr.count("\n") == 1
    assert json.loads((run_dir / rundir.VIEWER_FILE).read_text())["url"] == viewer  # the running viewer's note is left alone


def test_model_output_is_shown_as_text_and_reasoning_is_folded(run_dir, browser, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns(rundir.VIEWER_FILE))
    path = copy / "verified" / shards.shard_name(0)
    rows = shards.read_shard(path, "trajectory")
    attack = "<script>window.pwned = 1</script><img src=x onerror='window.pwned = 2'>"
    row = rows[0]
    assistant = next(i for i, m in enumerate(row["messages"]) if m["role"] == "assistant")
    row["messages"][assistant] = {**row["messages"][assistant], "reasoning_content": "First I think. " + attack}
    row["final_answer"] = attack
    shards.write_shard(path, rows, "trajectory", shards.stage_hash_of(path))
    with serving(copy) as url:
        tab = browser.new_page()
        tab.goto(f"{url}/stage/verify/row/{row['id']}")
        assert tab.evaluate("window.pwned") is None
        assert attack in tab.inner_text(".answer") and tab.locator("main script, main img").count() == 0
        folded = tab.locator(f"#message-{assistant} details.reasoning")
        assert folded.get_attribute("open") is None and not tab.locator(f"#message-{assistant} details.reasoning pre").is_visible()
        folded.locator("summary").click()
        assert tab.inner_text(f"#message-{assistant} details.reasoning pre") == "First I think. " + attack
        tab.screenshot(path=str(tmp_path / "reasoning.png"), full_page=True)
        tab.close()
