"""The evaluation command: a real ONNX bundle through the robot's runtime and the no-learning
baseline on the same fixed-seed episodes of the embedded simulator."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from onnx_policies import write_goal_seeking_bundle

from recore_nav.episodes import (EpisodeRecord, bootstrap_interval, paired_success_difference,
                                 paired_success_differences, summarize, wilson_interval)
from training import evaluate
from training.evaluation.baselines import GoalSeekingBaseline, ShortestPathExpert
from training.evaluation.episodes import EvaluationSpec
from training.evaluation.report import record_in_bundle


def test_wilson_interval_matches_known_values():
    low, high = wilson_interval(5, 10)
    assert low == pytest.approx(0.2366, abs=1e-4) and high == pytest.approx(0.7634, abs=1e-4)
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and high == pytest.approx(0.2775, abs=1e-4)
    assert wilson_interval(20, 20)[1] == 1.0


def test_bootstrap_interval_brackets_the_mean_and_narrows_with_data():
    rng = np.random.default_rng(0)
    small, large = rng.normal(3.0, 1.0, 10), rng.normal(3.0, 1.0, 400)
    for values in (small, large):
        low, high = bootstrap_interval(values)
        assert low < values.mean() < high
    assert np.diff(bootstrap_interval(large)) < np.diff(bootstrap_interval(small))
    episodes = [EpisodeRecord(seed=i, success=i % 2 == 0, spl=0.5 * (i % 2 == 0), collisions=i, length=10 * i,
                        episode_return=1.0) for i in range(6)]
    summary = summarize(episodes)
    assert summary["episodes"] == 6
    assert summary["success_rate"]["value"] == 0.5 and summary["collisions"]["value"] == 2.5


def test_paired_success_difference_pairs_by_episode_seed_whatever_the_order():
    def records(successes: dict[int, bool]) -> list[EpisodeRecord]:
        return [EpisodeRecord(seed=k, success=v, spl=0.0, collisions=0, length=1, episode_return=0.0)
                for k, v in successes.items()]
    a = records({3: True, 1: True, 2: False, 7: True})     # seed 7 has no partner
    b = records({1: False, 2: False, 3: True, 9: False})
    assert paired_success_differences(a, b) == [1.0, 0.0, 0.0]     # seeds 1, 2, 3
    difference = paired_success_difference(a, b)
    assert difference["episodes"] == 3 and difference["value"] == pytest.approx(1 / 3)
    assert difference["ci95"][0] <= 1 / 3 <= difference["ci95"][1]
    assert paired_success_difference(a, records({11: True})) is None


def test_baseline_turns_toward_the_goal_and_escapes_after_a_bump():
    policy = GoalSeekingBaseline()
    left = policy.act({"goal": np.array([3.0, 0.0, 1.0], np.float32)}, {"collision": False})
    assert left[0] == 0.0 and left[1] > 0.5            # goal to the left: turn left in place
    ahead = policy.act({"goal": np.array([3.0, 1.0, 0.0], np.float32)}, {"collision": False})
    assert ahead[0] > 0.9 and abs(ahead[1]) < 1e-6     # facing it: drive
    bumped = policy.act({"goal": np.array([3.0, 1.0, 0.0], np.float32)}, {"collision": True})
    assert bumped[0] < 0.0                             # a bump: back off first


def test_evaluate_writes_summary_for_bundle_and_baseline_on_the_same_episodes(tmp_path):
    bundle = write_goal_seeking_bundle(tmp_path / "goal_seeking")
    out = tmp_path / "eval"
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "metrics.jsonl").write_text("".join(
        json.dumps({"step": s, "kind": "eval", "split": "train", "success_rate": r}) + "\n"
        for s, r in ((100, 0.1), (200, 0.4))))
    code = evaluate.main([str(bundle), "--env", "embedded", "--split", "train", "--episodes", "3",
                          "--baseline", "--expert", "--max-steps", "80", "--workers", "1", "--videos", "1",
                          "--run-dir", str(run_dir), "--out", str(out)])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["episodes"] == 3 and summary["split"] == "train"
    rows = summary["results"]
    assert set(rows) == {"goal_seeking_test", GoalSeekingBaseline.name, ShortestPathExpert.name}
    # The privileged expert is the ceiling: on these short episodes it is never beaten.
    assert rows[ShortestPathExpert.name]["spl"]["value"] >= rows[GoalSeekingBaseline.name]["spl"]["value"]
    for metrics in rows.values():
        for key in ("success_rate", "spl", "collisions", "episode_length", "return"):
            low, high = metrics[key]["ci95"]
            assert low - 1e-9 <= metrics[key]["value"] <= high + 1e-9
    seeds = {name: [e["seed"] for e in episodes] for name, episodes in summary["per_episode"].items()}
    assert seeds["goal_seeking_test"] == seeds[GoalSeekingBaseline.name] == [summary["seed_base"] + i for i in range(3)]
    for episodes in summary["per_episode"].values():
        assert all(1 <= e["length"] <= 80 for e in episodes)
    # The bundle minus each reference, paired on those same episodes, in the JSON and the table.
    for reference in (GoalSeekingBaseline.name, ShortestPathExpert.name):
        success = {name: [e["success"] for e in summary["per_episode"][name]]
                   for name in ("goal_seeking_test", reference)}
        difference = summary["success_difference"][reference]
        assert difference["episodes"] == 3
        assert difference["value"] == pytest.approx(np.mean(np.subtract(*success.values(), dtype=float)))
    table = (out / "summary.md").read_text()
    assert "| goal_seeking_test |" in table and f"| {GoalSeekingBaseline.name} |" in table
    assert f"- goal_seeking_test - {GoalSeekingBaseline.name}: " in table
    assert (out / "success_vs_steps.png").stat().st_size > 1000
    assert summary["videos"] and all(Path(v).stat().st_size > 1000 for v in summary["videos"])


def test_the_same_seeds_give_the_same_episodes_whatever_the_number_of_workers(tmp_path):
    """Each episode is its seed's, not its worker's: one process or two, the same records in seed
    order (two workers take seeds as their episodes end, so episode lengths interleave them)."""
    bundle = write_goal_seeking_bundle(tmp_path / "goal_seeking")
    spec = EvaluationSpec(episodes=3, max_steps=60, workers=1, videos=0)
    one = evaluate.evaluate_policy(bundle, spec).episodes
    two = evaluate.evaluate_policy(bundle, EvaluationSpec(episodes=3, max_steps=60, workers=2, videos=0)).episodes
    again = evaluate.evaluate_policy(bundle, spec).episodes
    assert [e.seed for e in one] == [spec.seed_base + i for i in range(3)]
    assert one == two == again
    assert len({(e.length, e.spl, e.episode_return) for e in one}) > 1   # different episodes, not one repeated


def test_bad_bundle_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert evaluate.main([str(tmp_path / "empty"), "--episodes", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and err.count("\n") == 1


def _run(successes: list[bool], splits=("train", "ood")) -> dict:
    """A trained run as compare.evaluate_run returns it: the same successes on every split."""
    episodes = [EpisodeRecord(seed=100 + i, success=ok, spl=0.8 * ok, collisions=0, length=50, episode_return=0.0)
                for i, ok in enumerate(successes)]
    return {"training": {"steps": 1200, "updates": 90}, "episodes": {s: episodes for s in splits}}


def test_comparison_pools_seeds_and_pairs_differences_by_episode():
    from training import compare
    dreamer = {0: _run([True, False, False, False]), 1: _run([True, True, False, False])}
    recore = {0: _run([True, True, True, False]), 1: _run([True, True, False, False])}
    row = compare.row_results(recore, ("train", "ood"))
    assert row["seeds"] == [0, 1]
    assert row["splits"]["ood"]["success_rate"]["value"] == pytest.approx(5 / 8)   # pooled over seeds
    assert row["splits"]["ood"]["per_seed_success"] == [0.75, 0.5]
    difference = compare.paired_success_difference(recore, "ood", dreamer, "ood")
    assert difference["per_seed"] == [0.5, 0.0]
    assert difference["value"] == pytest.approx(0.25)
    assert difference["ci95"][0] <= 0.25 <= difference["ci95"][1]
    # A row against itself on another split with the same episodes: exactly no shift.
    shift = compare.paired_success_difference(recore, "ood", recore, "train")
    assert shift["value"] == 0.0 and shift["ci95"] == [0.0, 0.0]
    # Runs with no training seed in common are not compared.
    assert compare.paired_success_difference({5: recore[0]}, "ood", dreamer, "ood") is None
    assert compare.differences_between({"dreamer": dreamer, "recore": {5: recore[0]}}, ("train", "ood"),
                                       ["dreamer"])["recore"]["against"] == {}


def test_comparison_table_lists_rows_references_and_differences():
    from training import compare
    splits = ("train", "ood")
    runs = {"dreamer": {0: _run([True, False]), 1: _run([False, False])},
            "recore_depth": {0: _run([True, True]), 1: _run([True, False])}}
    table = {row: compare.row_results(row_runs, splits) for row, row_runs in runs.items()}
    metric = {"value": 0.5, "ci95": [0.4, 0.6]}
    table[GoalSeekingBaseline.name] = {"training": {"steps": 0, "updates": 0}, "seeds": [],
                                       "splits": {s: {"success_rate": metric, "spl": metric} for s in splits}}
    differences = compare.differences_between(runs, splits, ["dreamer", "not_a_row"])
    markdown = compare.table_markdown(table, differences, splits, "rows")
    assert "| recore_depth | 0, 1 | 1200 / 90 | 75.0 [" in markdown and "] (100, 50) |" in markdown
    assert f"| {GoalSeekingBaseline.name} | - | no training | 50.0 [40.0, 60.0] | 0.50 [0.40, 0.60] |" in markdown
    assert "| recore_depth | +50.0 [" in markdown and "(+50.0, +50.0)" in markdown   # against dreamer
    assert "| dreamer | +0.0 [+0.0, +0.0] (+0.0, +0.0) |" in markdown                 # ood - train
    with pytest.raises(SystemExit):
        compare.parse_args(["--rows", "no_such_row"])
    args = compare.parse_args(["--rows", "dreamer", "recore_seg", "--seeds", "0", "1", "2",
                               "--row-seeds", "recore_seg=0,1"])
    assert args.seeds == [0, 1, 2] and args.row_seeds == {"recore_seg": [0, 1]}
    for bad in ("recore_seg=a", "recore_depth=0"):   # not a seed; not a row
        with pytest.raises(SystemExit):
            compare.parse_args(["--rows", "dreamer", "recore_seg", "--row-seeds", bad])


def _record(bundle: str, key: str) -> None:
    record_in_bundle(Path(bundle), key, {"source": "evaluate", "episodes": 3, "seed_base": 7, "max_steps": 80,
                                         "success_rate": {"value": 0.5, "ci95": [0.1, 0.9]}})


def test_evaluations_recorded_at_once_all_reach_the_bundle(tmp_path):
    """Three splits evaluated in parallel, each with --record: every result lands in policy.json
    (the shipped model's first try lost two of three to a read-modify-write race)."""
    import multiprocessing

    from recore_nav.bundle import read_bundle_spec

    bundle = write_goal_seeking_bundle(tmp_path / "goal_seeking")
    keys = [f"embedded/split{i}" for i in range(6)]
    with multiprocessing.get_context("spawn").Pool(6) as pool:
        pool.starmap(_record, [(str(bundle), key) for key in keys])
    evaluation = read_bundle_spec(bundle).evaluation
    assert set(keys) <= set(evaluation), sorted(evaluation)
