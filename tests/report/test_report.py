from __future__ import annotations

import base64
import re
import shutil
import subprocess
import sys

import pytest

from greenprune.recipe import run_recipe
from greenprune.report import build_report, collect, pareto_front

from ._toy_import import toy

RECIPE = toy.RECIPE

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]
# appended to a copy of the report: once everything loaded, write each image's natural size into the DOM
PROBE = """<script>
window.addEventListener('load', () => {
  const sizes = [...document.images].map(i => i.complete ? i.naturalWidth + 'x' + i.naturalHeight : 'pending');
  document.body.setAttribute('data-probe', sizes.join(','));
});
</script>"""


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("chromium is not installed and could not be (make ensure-chromium: apt-get install -y chromium)")


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    toy.setup()
    folder = tmp_path_factory.mktemp("toyrun")
    path = folder / "toy.yaml"
    path.write_text(RECIPE)
    return run_recipe(path, root=folder / "runs")


def test_rows_ratios_and_plots_come_from_records(toy_run):
    rows = collect([toy_run])
    assert [r.label for r in rows] == ["baseline", "alpine(even)+l1-30%"]
    base, cand = rows
    assert base.ratios["flops_per_sample"] == 1.0
    assert cand.ratios["flops_per_sample"] == pytest.approx(
        cand.record.cost.flops_per_sample / cand.baseline.cost.flops_per_sample)
    assert cand.primary_metric() == "accuracy"
    assert set(cand.profile) == {"seq_len", "sparsity", "params"}


def test_pareto_front_keeps_only_undominated_points():
    points = [(1.0, 1.0), (0.5, 0.9), (0.6, 0.8), (0.3, 0.5), (0.7, 1.0)]
    assert pareto_front(points) == [3, 1, 4]
    assert pareto_front([(1.0, 12.0), (0.5, 10.0)], higher_quality_better=False) == [1]
    assert pareto_front([(1.0, 10.0), (0.5, 12.0)], higher_quality_better=False) == [1, 0]


def test_report_rebuild_and_merge_from_records_only(toy_run, tmp_path):
    copy = tmp_path / toy_run.name
    shutil.copytree(toy_run, copy, ignore=shutil.ignore_patterns("model", "report"))  # records only
    merged = build_report([toy_run, copy], tmp_path / "merged")
    assert len(merged.rows) == 4
    md = merged.markdown.read_text()
    table = [line for line in md.splitlines() if line.startswith("| toyrun |")]
    assert [line.split("|")[2].strip() for line in table] == ["baseline", "alpine(even)+l1-30%"] * 2
    assert toy_run.name in md and "- toyrun / alpine(even)+l1-30%: accuracy=" in md
    # the CLI verb does the same
    out = tmp_path / "cli"
    args = ["report", str(toy_run), str(copy), "--out", str(out)]
    proc = subprocess.run([sys.executable, "-m", "greenprune.cli", *args], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert (out / "report.html").is_file() and "report:" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "greenprune.cli", "report", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "not a greenprune run folder" in " ".join(proc.stderr.split())


def test_html_is_self_contained_with_four_real_plots(toy_run):
    """Browser-free: runs everywhere, with or without Chromium."""
    import io

    from PIL import Image

    html = (toy_run / "report" / "report.html").read_text()
    images = re.findall(r"<img [^>]*src='([^']+)'", html)
    assert len(images) == 4 and all(src.startswith("data:image/png;base64,") for src in images)
    assert not re.search(r"(src|href)=['\"](http|file|/)", html)  # nothing outside the file
    for src in images:
        data = base64.b64decode(src.split(",", 1)[1])
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        image = Image.open(io.BytesIO(data)).convert("RGB")
        assert image.width > 100 and image.height > 100
        colours = image.getcolors(maxcolors=1 << 20)
        assert colours is not None and len(colours) > 20  # a drawn plot, not a blank canvas


def test_html_renders_every_plot_in_chromium(toy_run, tmp_path):
    browser = chromium()
    html_path = toy_run / "report" / "report.html"
    html = html_path.read_text()
    probe = tmp_path / "probe.html"
    probe.write_text(html.replace("</body>", PROBE + "</body>"))
    common = [browser, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,4000"]
    shot = tmp_path / "shot.png"
    subprocess.run([*common, f"--screenshot={shot}", html_path.as_uri()], capture_output=True, timeout=180)
    assert shot.is_file() and shot.stat().st_size > 10_000
    dom = subprocess.run([*common, "--virtual-time-budget=5000", "--dump-dom", probe.as_uri()],
                         capture_output=True, text=True, timeout=180).stdout
    match = re.search(r'data-probe="([^"]*)"', dom)
    assert match, dom[-2000:]
    sizes = match.group(1).split(",")
    assert len(sizes) == 4
    for size in sizes:
        width, height = (int(v) for v in size.split("x"))
        assert width > 100 and height > 100, sizes


def test_screenshot_shows_the_plots(toy_run, tmp_path):
    """The screenshot is not blank: the rendered page has many distinct colours (the plots), not just text."""
    from PIL import Image

    browser = chromium()
    shot = tmp_path / "shot.png"
    subprocess.run([browser, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,3000",
                    f"--screenshot={shot}", (toy_run / "report" / "report.html").as_uri()],
                   capture_output=True, timeout=180)
    colours = Image.open(shot).convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 200


def test_quality_cell_gives_pass_rates_with_their_wilson_interval():
    from greenprune.measure.records import ResultRecord
    from greenprune.report.collect import Row
    from greenprune.report.html import _fmt_metric
    from greenprune.tasks.metrics import wilson_interval

    record = ResultRecord(model="m", metrics={"perplexity": 7.5, "generate.pass@1": 13 / 24, "generate.problems": 24})
    row = Row(run="r", unit="u", pipeline="p", point={}, label="baseline", model="m", task="perplexity",
              record=record, baseline=record)
    low, high = wilson_interval(13, 24)
    assert _fmt_metric(row) == f"perplexity=7.5; generate.pass@1=0.5417 (13/24) [{low:.2f}, {high:.2f}]"
    assert (low, high) == pytest.approx((0.351, 0.721), abs=1e-3)  # the interval a 24-problem subset really has


def test_quality_cell_pairs_a_stacks_problems_with_the_baselines():
    from greenprune.measure.records import ResultRecord
    from greenprune.report.collect import Row
    from greenprune.report.html import _fmt_metric
    from greenprune.tasks.metrics import mcnemar_exact

    base_rec = ResultRecord(model="m", metrics={"perplexity": 7.5, "generate.pass@1": 0.5, "generate.problems": 6})
    cand_rec = ResultRecord(model="m", metrics={"perplexity": 8.0, "generate.pass@1": 2 / 6, "generate.problems": 6})
    base = {"p0": True, "p1": True, "p2": True, "p3": False, "p4": False, "p5": False}
    cand = {"p0": True, "p1": False, "p2": False, "p3": True, "p4": False, "p5": False}
    row = Row(run="r", unit="u", pipeline="p", point={}, label="vocab", model="m", task="perplexity",
              record=cand_rec, baseline=base_rec, verdict="faster", outcomes={"generate": cand},
              baseline_outcomes={"generate": base})
    cell = _fmt_metric(row)
    assert f"paired −2/+1 (McNemar p={mcnemar_exact(2, 1):.2g})" in cell and "(2/6)" in cell
    row.baseline_outcomes = {"generate": {k: v for k, v in base.items() if k != "p5"}}  # other problems: no pairing
    assert "paired" not in _fmt_metric(row)


def _classification_row(task: str, labels: list[int], base_preds: list[int], cand_preds: list[int]):
    """A stack's report row with its and the baseline's per-example predictions on the same labelled examples."""
    from greenprune.measure.records import ResultRecord
    from greenprune.report.collect import Row
    from greenprune.tasks.metrics import classification_metrics

    base_rec = ResultRecord(model="m", metrics=classification_metrics(base_preds, labels))
    cand_rec = ResultRecord(model="m", metrics=classification_metrics(cand_preds, labels))
    ids = [f"e{i}" for i in range(len(labels))]
    base = list(zip(ids, labels, base_preds, strict=True))
    cand = list(zip(ids, labels, cand_preds, strict=True))
    return Row(run="r", unit="u", pipeline="p", point={}, label="alpine", model="m", task=task, record=cand_rec,
               baseline=base_rec, verdict="faster", examples={task: cand}, baseline_examples={task: base})


def test_quality_cell_gives_f1_its_bootstrap_interval_and_the_paired_difference():
    from greenprune.report.html import _fmt_metric
    from greenprune.tasks.metrics import bootstrap_metric_interval, paired_bootstrap

    labels = [1, 0] * 20
    base_preds = [1, 0] * 18 + [0, 1] * 2  # 36/40 right
    cand_preds = [1, 0] * 15 + [0, 1] * 5  # 30/40 right
    row = _classification_row("clone", labels, base_preds, cand_preds)
    low, high = bootstrap_metric_interval(labels, cand_preds, "f1")
    d = paired_bootstrap(labels, base_preds, cand_preds, "f1")
    cell = _fmt_metric(row)
    assert cell.startswith(f"f1={row.quality['f1']:.4g} (n=40) [{low:.2f}, {high:.2f}] Δ {d['difference']:+.3f}")
    assert d["difference"] < 0 and d["ci_low"] < d["difference"] < d["ci_high"]
    row.baseline_examples = {"clone": row.baseline_examples["clone"][:-1]}  # other examples: an interval, no pairing
    assert "Δ" not in _fmt_metric(row) and "(n=40)" in _fmt_metric(row)


def test_quality_cell_gives_accuracy_its_wilson_interval_and_mcnemar_from_per_example_records():
    from greenprune.report.html import _fmt_metric
    from greenprune.tasks.metrics import mcnemar_exact, wilson_interval

    labels = [1, 0] * 10
    base_preds = [1, 0] * 8 + [0, 0, 1, 0]  # 19/20 right (e16 wrong)
    cand_preds = [1, 1] * 2 + [1, 0] * 6 + [1, 1, 1, 0]  # 17/20 right: e1, e3, e17 wrong; e16 right
    row = _classification_row("defect", labels, base_preds, cand_preds)
    right = sum(y == p for y, p in zip(labels, cand_preds, strict=True))
    low, high = wilson_interval(right, 20)
    cell = _fmt_metric(row)
    assert cell.startswith(f"accuracy={row.quality['accuracy']:.4g} ({right}/20) [{low:.2f}, {high:.2f}]")
    assert right == 17 and cell.endswith(f"paired −3/+1 (McNemar p={mcnemar_exact(3, 1):.2g})")
    row.baseline_examples = {"defect": row.baseline_examples["defect"][:-1]}  # other examples: no pairing
    assert "paired" not in _fmt_metric(row) and "(17/20)" in _fmt_metric(row)
    row.examples = {"defect": [("same-id", y, p) for _, y, p in row.examples["defect"]]}  # ids may repeat
    assert "(17/20)" in _fmt_metric(row)


def test_code_to_text_per_example_scores_are_not_mistaken_for_predictions():
    from types import SimpleNamespace

    from greenprune.measure.records import ResultRecord
    from greenprune.report.collect import _examples_by_label

    summarize = ResultRecord(model="m", method="evaluate", task="summarize", config={"label": "baseline"},
                             details={"per_example": [{"id": "f1", "bleu4_smoothed": 12.5, "hypothesis": "x"}]})
    clone = ResultRecord(model="m", method="evaluate", task="clone", config={"label": "baseline"},
                         details={"per_example": [{"id": "p1", "label": 1, "pred": 0}]})
    found = _examples_by_label([SimpleNamespace(record=summarize), SimpleNamespace(record=clone)])
    assert found == {"baseline": {"clone": [("p1", 1, 0)]}}
