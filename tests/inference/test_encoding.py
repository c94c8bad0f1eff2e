"""The one JSON encoding (inference/encoding.py): order and rounding of people, track IDs, and the service's answer
built from the same dict (``service.routes.pose_answer``; ``PoseResponse`` validates it unchanged), so
``pose-predict``'s files and ``POST /pose`` never drift."""

import numpy as np

from inference.encoding import image_answer, person_dicts
from inference.pipeline import PoseResult


def _result(n: int = 2) -> PoseResult:
    kpts = np.zeros((n, 17, 3), np.float32)
    kpts[..., 0], kpts[..., 1], kpts[..., 2] = 10.123456, 20.987654, 0.8765432
    return PoseResult(
        image=np.zeros((48, 64, 3), np.uint8),
        bboxes=np.array([[1.234, 2.345, 30.456, 40.567], [5, 6, 7, 8]], np.float32)[:n],
        bbox_scores=np.array([0.5, 0.9], np.float32)[:n],
        centers=np.zeros((n, 2), np.float32),
        scales=np.ones((n, 2), np.float32),
        keypoints=kpts,
        scores=np.array([0.3, 0.7], np.float32)[:n],
        detector="yolo",
        timings_ms={"detect": 1.23456, "total": 9.87654},
        dropped=1,
    )


def test_people_by_descending_score_rounded():
    persons = person_dicts(_result())
    assert [p["score"] for p in persons] == [0.7, 0.3]
    assert persons[1]["bbox"] == [1.23, 2.35, 30.46, 40.57] and persons[1]["bbox_score"] == 0.5
    assert persons[0]["keypoints"][0] == [10.12, 20.99, 0.87654] and len(persons[0]["keypoints"]) == 17
    assert all("track_id" not in p for p in persons)


def test_vectorised_rounding_equals_pythons_round_on_float32_values():
    """The encoding rounds whole arrays with numpy; on float32 inputs (what the pipeline gives) that equals Python's
    round() value for value: pixels of 1e5 random values up to 1e5 px and the classic half cases."""
    rng = np.random.default_rng(0)
    n = 2000
    kpts = np.concatenate([rng.uniform(-1e3, 1e5, (n, 17, 2)), rng.uniform(0, 1, (n, 17, 1))], -1).astype(np.float32)
    kpts[0, :6, :2] = np.array([[0.005, 2.675], [-0.125, 1.005], [0.015, 0.025], [1e5, -0.0], [0.5, 0.125],
                                [123.455, 99.995]], np.float32)  # fmt: skip
    kpts[0, :4, 2] = np.array([0.123455, 0.5, 0.000005, 1.0], np.float32)
    result = _result(1)
    result.keypoints, result.bboxes = kpts, kpts[:, 0, :2].repeat(2, 1)
    result.scores = result.bbox_scores = kpts[:, 1, 2].copy()
    persons = person_dicts(result)
    order = np.argsort(-result.scores.astype(np.float64), kind="stable")
    for person, i in zip(persons, order):
        expected = [[round(float(x), 2), round(float(y), 2), round(float(s), 5)] for x, y, s in kpts[i]]
        assert person["keypoints"] == expected
        assert person["bbox"] == [round(float(v), 2) for v in result.bboxes[i]]
        assert person["score"] == person["bbox_score"] == round(float(result.scores[i]), 5)


def test_no_people():
    result = _result(1)
    result.keypoints, result.bboxes = np.zeros((0, 17, 3), np.float32), np.zeros((0, 4), np.float32)
    result.scores = result.bbox_scores = np.zeros(0, np.float32)
    assert person_dicts(result) == [] and person_dicts(result, track_ids=np.zeros(0, np.int64)) == []


def test_track_ids_follow_their_person():
    persons = person_dicts(_result(), track_ids=np.array([4, 9]))
    assert [(p["track_id"], p["score"]) for p in persons] == [(9, 0.7), (4, 0.3)]
    assert list(persons[0]) == ["track_id", "bbox", "bbox_score", "keypoints", "score"]


def test_the_service_answer_is_this_encoding():
    from service.schemas import PoseResponse

    result = _result()
    names = [f"k{i}" for i in range(17)]
    answer = image_answer(result, "movenet", names)
    assert PoseResponse.model_validate(answer).model_dump() == answer
    assert answer["models"] == {"detector": "yolo", "pose": "movenet"} and answer["dropped_persons"] == 1
    assert (answer["width"], answer["height"]) == (64, 48) and answer["timings_ms"] == {"detect": 1.23, "total": 9.88}


def test_video_lines():
    from types import SimpleNamespace

    from inference.encoding import frame_line, summary_line, video_header
    from inference.stream import FrameResult

    frame = FrameResult(7, 0.28000001, _result(), np.array([4, 9]), detected=True, scene_cut=False)
    line = frame_line(frame)
    assert (line["type"], line["frame"], line["time_s"]) == ("frame", 7, 0.28)
    assert [p["track_id"] for p in line["persons"]] == [9, 4]
    untracked = frame_line(FrameResult(8, 0.32, _result(1), None, detected=False, scene_cut=False))
    assert "track_id" not in untracked["persons"][0]

    card = SimpleNamespace(keypoint_names=["a", "b"])
    pipeline = SimpleNamespace(detector=SimpleNamespace(name="yolo"), pose=SimpleNamespace(name="mn", card=card))
    info = SimpleNamespace(width=640, height=272, fps=25.0, frames=None)
    assert video_header(info, pipeline) == {
        "type": "video", "width": 640, "height": 272, "fps": 25.0, "frames": None,
        "models": {"detector": "yolo", "pose": "mn"}, "keypoint_names": ["a", "b"],
    }  # fmt: skip
    stream = SimpleNamespace(summary=lambda: {"frames": 2, "tracks": 1})
    assert summary_line(stream, wall_s=1.5) == {"type": "summary", "frames": 2, "tracks": 1, "wall_s": 1.5}
