"""``pose-predict --runner ray`` (inference/ray_runner.py) on a real local Ray (2 CPUs, 2 actors) against
``--runner local`` on the same inputs and models (YOLOv8n + MoveNet Thunder, onnxruntime CPU): all of coco-mini
(159 images, given to Ray as a Parquet list), a corrupt JPEG, and the first 45 frames of bikes.mp4 (people from frame
30 on). Same keypoints (tolerance policy), same AP through ``pose-eval --results``, the corrupt file in the errors
table, per-frame rows with the local runner's track ids, and a rerun that runs only what is new."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow
pytest.importorskip("ray")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from evaluation.job import main as pose_eval  # noqa: E402
from inference.predict import main as pose_predict  # noqa: E402
from inference.ray_runner import HASHED_ID_BASE, ResultStore, image_id_for, read_source_list  # noqa: E402
from models.tolerance import EXPORT_TOLERANCE_PX, METRIC_ABS  # noqa: E402

MAX_FRAMES = 45
MINI_ANN = Path("annotations") / "person_keypoints_val2017.json"


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray of 2 CPUs for this module (workers import this checkout: ``init_ray``'s PYTHONPATH)."""
    import ray

    from inference.ray_runner import init_ray

    init_ray(None, num_cpus=2, object_store_memory=256 * 1024**2, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def inputs(coco_mini, tmp_path_factory) -> dict:
    """coco-mini's images plus ``broken.jpg`` (a truncated JPEG) in one folder, and a Parquet list of them
    (relative paths)."""
    root = tmp_path_factory.mktemp("ray_inputs")
    images = root / "images"
    images.mkdir()
    names = sorted(p.name for p in (coco_mini / "val2017").glob("*.jpg"))
    for name in names:
        (images / name).symlink_to(coco_mini / "val2017" / name)
    (images / "broken.jpg").write_bytes((coco_mini / "val2017" / names[0]).read_bytes()[:600])
    listing = root / "list.parquet"
    pq.write_table(pa.table({"path": [f"images/{n}" for n in [*names, "broken.jpg"]]}), listing)
    return {"root": root, "images": images, "names": names, "list": listing}


@pytest.fixture(scope="module")
def model_args(yolo_onnx, movenet_card, tmp_path_factory) -> list[str]:
    cache = tmp_path_factory.mktemp("cache")
    return [
        "--detector", str(yolo_onnx), "--pose", str(movenet_card), "--providers", "CPUExecutionProvider",
        "--cache-dir", str(cache), "--offline", "--no-prepare-defaults", "--quiet", "--max-frames", str(MAX_FRAMES),
    ]  # fmt: skip


@pytest.fixture(scope="module")
def runs(local_ray, inputs, bikes_mp4, model_args, tmp_path_factory) -> dict:
    """Both runners over the same sources: exit status 1 for both (the corrupt image), the rest written."""
    out = tmp_path_factory.mktemp("runs")
    local = pose_predict([str(inputs["images"]), str(bikes_mp4), "--out", str(out / "local"), *model_args])
    ray_args = [str(inputs["list"]), str(bikes_mp4), "--runner", "ray", "--out", str(out / "ray"),
                "--concurrency", "2", *model_args]  # fmt: skip
    ray_rc = pose_predict(ray_args)
    return {"local_rc": local, "ray_rc": ray_rc, "local": out / "local", "ray": out / "ray", "ray_args": ray_args}


def _by_source(table) -> dict[str, list[dict]]:
    rows: dict[str, list[dict]] = {}
    for r in table.to_pylist():
        rows.setdefault(Path(r["source"]).name, []).append(r)
    return rows


def _assert_same_person(ray_row: dict, local: dict, where: str) -> None:
    """The tolerance policy's fp32 bound (EXPORT_TOLERANCE_PX crop pixels) in image pixels for this person's crop
    (the 1.25-padded square box on a 256 px input), plus the encodings' 0.01 px rounding."""
    x1, y1, x2, y2 = local["bbox"]
    px = EXPORT_TOLERANCE_PX * max(x2 - x1, y2 - y1) * 1.25 / 256 + 0.01
    kr, kl = np.asarray(ray_row["keypoints"]), np.asarray(local["keypoints"])
    assert kr.shape == kl.shape == (17, 3), where
    np.testing.assert_allclose(kr[:, :2], kl[:, :2], rtol=0, atol=px, err_msg=where)
    np.testing.assert_allclose(kr[:, 2], kl[:, 2], rtol=0, atol=1e-4, err_msg=where)
    np.testing.assert_allclose(ray_row["bbox"], local["bbox"], rtol=0, atol=px, err_msg=where)
    assert ray_row["score"] == pytest.approx(local["score"], abs=1e-4), where


def test_both_runners_finish_every_good_source_and_report_the_corrupt_one(runs, inputs, bikes_mp4):
    assert runs["local_rc"] == 1 and runs["ray_rc"] == 1  # some source failed: the corrupt image
    errors = pq.read_table(runs["ray"] / "errors.parquet").to_pylist()
    assert [Path(e["source"]).name for e in errors] == ["broken.jpg"]
    assert errors[0]["kind"] == "image" and errors[0]["error"]
    status = ResultStore(runs["ray"], "x").status().to_pylist()
    assert len(status) == len(inputs["names"]) + 2
    done = {Path(s["source"]).name for s in status if s["error"] is None}
    assert done == set(inputs["names"]) | {bikes_mp4.name}
    assert {p.stem for p in runs["local"].glob("*.json")} == {Path(n).stem for n in inputs["names"]}


def test_the_ray_runner_keypoints_equal_the_local_runner(runs, inputs):
    poses = _by_source(ResultStore(runs["ray"], "x").poses())
    compared = 0
    for name in inputs["names"]:
        local = json.loads((runs["local"] / f"{Path(name).stem}.json").read_text())["persons"]
        ray_rows = poses.get(name, [])
        assert len(ray_rows) == len(local), name
        for rank, (r, p) in enumerate(zip(ray_rows, local)):
            assert r["person"] == rank and r["kind"] == "image" and r["image_id"] == int(Path(name).stem)
            assert r["frame"] is None and r["track_id"] is None
            _assert_same_person(r, p, f"{name} person {rank}")
            compared += 1
    assert compared > 100  # coco-mini has people in most images


def test_the_video_gives_per_frame_rows_with_the_local_runner_track_ids(runs, bikes_mp4):
    rows = _by_source(ResultStore(runs["ray"], "x").poses())[bikes_mp4.name]
    lines = [json.loads(x) for x in (runs["local"] / "bikes.ndjson").read_text().splitlines()]
    frames = [x for x in lines if x["type"] == "frame"]
    assert len(frames) == MAX_FRAMES
    expected = [(f["frame"], f["time_s"], p) for f in frames for p in f["persons"]]
    assert len(rows) == len(expected) > 0
    for r, (frame, time_s, p) in zip(rows, expected):
        where = f"frame {frame}"
        assert (r["kind"], r["frame"], r["time_s"], r["image_id"]) == ("video", frame, time_s, None), where
        assert r["track_id"] == p["track_id"], where
        _assert_same_person(r, p, where)
    assert {r["frame"] for r in rows} >= set(range(30, MAX_FRAMES))  # people in every frame from 30 on
    assert len({r["track_id"] for r in rows}) >= 2


def test_pose_eval_gives_the_ray_coco_json_the_local_runner_ap(runs, inputs, coco_mini, tmp_path):
    ray_json = runs["ray"] / "coco_results.json"
    ray_records = json.loads(ray_json.read_text())
    local_records = [
        {"image_id": int(Path(n).stem), "category_id": 1, "score": p["score"],
         "keypoints": [v for kp in p["keypoints"] for v in kp]}
        for n in inputs["names"]
        for p in json.loads((runs["local"] / f"{Path(n).stem}.json").read_text())["persons"]
    ]  # fmt: skip
    assert len(ray_records) == len(local_records)
    local_json = tmp_path / "local.json"
    local_json.write_text(json.dumps(local_records))
    ann = str(coco_mini / MINI_ANN)
    stats = {}
    for name, path in (("ray", ray_json), ("local", local_json)):
        assert pose_eval(["--ann", ann, "--results", str(path), "--out-dir", str(tmp_path / name)]) == 0
        stats[name] = json.loads((tmp_path / name / "metrics.json").read_text())["stats"]
    assert 0.2 < stats["ray"]["AP"] < 0.9  # a real score (MoveNet + YOLOv8n boxes on coco-mini)
    for key in ("AP", "AP50", "AR"):
        assert stats["ray"][key] == pytest.approx(stats["local"][key], abs=METRIC_ABS), key
    ids = json.loads((runs["ray"] / "image_ids.json").read_text())
    assert {Path(s).name: i for s, i in ids.items() if Path(s).name != "broken.jpg"} == {
        n: int(Path(n).stem) for n in inputs["names"]
    }


def test_a_rerun_runs_only_what_is_not_in_the_output(runs, inputs, coco_mini, tmp_path):
    """On a copy of the Ray output (the other tests read the original), with the list plus one new image."""
    out = tmp_path / "ray"
    shutil.copytree(runs["ray"], out)
    store = ResultStore(out, "x")
    before_status = store.status().to_pylist()
    before_poses = store.poses()
    # a new image (a non-numeric name: a hashed id) in a new list; the rest is done (the corrupt one too)
    (inputs["root"] / "extra").mkdir(exist_ok=True)
    extra = inputs["root"] / "extra" / "extra_person.jpg"
    shutil.copy(coco_mini / "val2017" / inputs["names"][0], extra)
    listing = inputs["root"] / "list_plus_one.parquet"
    entries = pq.read_table(inputs["list"]).to_pylist() + [{"path": "extra/extra_person.jpg"}]
    pq.write_table(pa.Table.from_pylist(entries), listing)
    args = list(runs["ray_args"])
    args[0], args[args.index("--out") + 1] = str(listing), str(out)
    assert pose_predict(args) == 1  # the corrupt image is still failed (not retried)
    status = store.status().to_pylist()
    new_runs = {s["run_id"] for s in status} - {s["run_id"] for s in before_status}
    assert len(new_runs) == 1
    ran = [Path(s["source"]).name for s in status if s["run_id"] in new_runs]
    assert ran == ["extra_person.jpg"]
    poses = store.poses()
    extra_rows = [r for r in poses.to_pylist() if Path(r["source"]).name == "extra_person.jpg"]
    first = [r for r in poses.to_pylist() if Path(r["source"]).name == inputs["names"][0]]
    assert len(extra_rows) == len(first) > 0
    assert extra_rows[0]["image_id"] == image_id_for(str(extra.resolve())) >= HASHED_ID_BASE
    assert poses.num_rows == before_poses.num_rows + len(extra_rows)
    assert len(json.loads((out / "coco_results.json").read_text())) == (
        len(json.loads((runs["ray"] / "coco_results.json").read_text())) + len(extra_rows)
    )
    # --retry-errors runs the failed source again, and only it
    assert pose_predict([*args, "--retry-errors"]) == 1
    latest = store.status().to_pylist()
    newest = max(s["run_id"] for s in latest)
    assert [Path(s["source"]).name for s in latest if s["run_id"] == newest] == ["broken.jpg"]


def test_image_ids_are_the_coco_number_or_a_stable_hash():
    assert image_id_for("/data/val2017/000000000139.jpg") == 139
    hashed = image_id_for("/data/photos/beach.jpg")
    assert hashed == image_id_for("/data/photos/beach.jpg") != image_id_for("/data/photos/beach2.jpg")
    assert HASHED_ID_BASE <= hashed < 2**53


def test_source_lists_in_json_and_parquet(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps(["x/1.jpg", {"source": "/abs/2.mp4"}, {"path": "3.png"}]))
    assert read_source_list(tmp_path / "a.json") == [str(tmp_path / "x/1.jpg"), "/abs/2.mp4", str(tmp_path / "3.png")]
    pq.write_table(pa.table({"name": ["1.jpg"], "n": [1]}), tmp_path / "b.parquet")
    assert read_source_list(tmp_path / "b.parquet") == [str(tmp_path / "1.jpg")]
    (tmp_path / "c.json").write_text(json.dumps({"not": "a list"}))
    with pytest.raises(ValueError, match="JSON list"):
        read_source_list(tmp_path / "c.json")


def test_urls_and_render_are_usage_errors_for_the_ray_runner(tmp_path, capsys):
    image = tmp_path / "a.jpg"
    image.write_bytes(b"not read: the options are checked first")
    assert pose_predict([str(image), "rtsp://camera/1", "--runner", "ray", "--out", str(tmp_path / "o")]) == 2
    assert "--runner ray reads files" in capsys.readouterr().err
    assert pose_predict([str(image), "--runner", "ray", "--render", "--out", str(tmp_path / "o")]) == 2
    assert "--render is for --runner local" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
