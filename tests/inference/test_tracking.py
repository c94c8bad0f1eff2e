"""Pose tracking: stable IDs (crossing, occlusion, leaving), the global assignment, the IoU fallback, boxes from
keypoints, scene cuts (synthetic frames and the real bikes.mp4)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inference.tracking import (
    DEFAULT_BBOX_EXPANSION,
    PoseTracker,
    SceneCutDetector,
    bbox_from_keypoints,
    bboxes_from_keypoints,
)
from models.geometry import box_iou_matrix
from models.keypoints import COCO17_SIGMAS, oks_matrix

#: A standing person facing the camera, COCO-17 order: (x, y) per unit of eye-to-ankle height, from the eyes' midpoint.
PERSON = np.array(
    [
        [0.0, 0.03],
        [-0.03, 0.0],
        [0.03, 0.0],
        [-0.07, 0.02],
        [0.07, 0.02],
        [-0.12, 0.15],
        [0.12, 0.15],
        [-0.15, 0.33],
        [0.15, 0.33],
        [-0.16, 0.5],
        [0.16, 0.5],
        [-0.08, 0.52],
        [0.08, 0.52],
        [-0.08, 0.76],
        [0.08, 0.76],
        [-0.08, 1.0],
        [0.08, 1.0],
    ]
)


def pose(x: float, y: float, height: float, score: float = 0.9, rng=None, noise: float = 0.0) -> np.ndarray:
    """[17, 3] keypoints of a person of ``height`` px whose eyes' midpoint is at (x, y)."""
    xy = PERSON * height + [x, y]
    if rng is not None:
        xy = xy + rng.normal(0.0, noise, xy.shape)
    return np.concatenate([xy, np.full((17, 1), score)], axis=1)


def frame(poses: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(boxes [N, 4], keypoints [N, 17, 3]) of a frame: each box from its keypoints, as a detector's would be."""
    kp = np.stack(poses) if poses else np.zeros((0, 17, 3))
    boxes, valid = bboxes_from_keypoints(kp, 0.3, (10_000, 10_000))
    assert valid.all()
    return boxes, kp


# ------------------------------------------------------------------------------------------------ PoseTracker


def test_ids_start_at_one_and_follow_people_whatever_the_detection_order():
    rng = np.random.default_rng(0)
    tracker = PoseTracker()
    starts = [(100.0, 50.0, 300.0), (400.0, 60.0, 280.0), (700.0, 40.0, 320.0)]
    for f in range(20):
        poses = [pose(x + 3 * f, y, h, rng=rng, noise=1.5) for x, y, h in starts]
        order = rng.permutation(3) if f else np.arange(3)  # new tracks take IDs in detection order
        boxes, kp = frame([poses[i] for i in order])
        ids = tracker.update(boxes, kp, scores=np.full(3, 0.8))
        assert ids.dtype == np.int64
        assert ids.tolist() == (order + 1).tolist()  # person i is track i + 1 on every frame
    assert [t.track_id for t in tracker.tracks] == [1, 2, 3]
    assert all(t.hits == 20 and t.age == 20 and t.missed == 0 and t.score == 0.8 for t in tracker.tracks)


@pytest.mark.parametrize("method", ["oks", "iou"])
def test_two_people_crossing_keep_their_ids(method):
    """A near, tall person walks right through a farther, smaller one walking left: 0 ID switches."""
    rng = np.random.default_rng(1)
    tracker = PoseTracker(method=method)
    seen = {0: set(), 1: set()}
    for f in range(50):
        a = pose(100 + 12 * f, 80, 320, rng=rng, noise=1.5)
        b = pose(700 - 12 * f, 130, 220, rng=rng, noise=1.5)
        flip = bool(f % 2)
        boxes, kp = frame([b, a] if flip else [a, b])
        ids = tracker.update(boxes, kp)
        ia, ib = (ids[1], ids[0]) if flip else (ids[0], ids[1])
        seen[0].add(int(ia))
        seen[1].add(int(ib))
    assert seen == {0: {1}, 1: {2}}


def test_global_assignment_where_greedy_matching_in_detection_order_would_fail():
    """MMPose 0.x matches detections one by one to their best track; here the first detection's best track is the
    second detection's only match. The global assignment gives both their tracks."""
    tracker = PoseTracker(method="iou")
    no_kp = np.zeros((2, 17, 3))
    assert tracker.update([[0, 0, 100, 100], [60, 0, 160, 100]], no_kp).tolist() == [1, 2]
    dets = np.array([[35, 0, 135, 100], [70, 0, 170, 100]], float)
    sim = tracker.similarity(dets, no_kp)
    assert sim[1, 0] > sim[0, 0] >= 0.3 > sim[0, 1]  # det 0 prefers track 2, det 1 has only track 2
    assert tracker.update(dets, no_kp).tolist() == [1, 2]


def test_a_person_hidden_for_up_to_max_missed_frames_keeps_the_id_and_is_reported_lost():
    tracker = PoseTracker(max_missed=5)
    a, b = pose(100, 50, 300), pose(500, 50, 300)
    assert tracker.update(*frame([a, b])).tolist() == [1, 2]
    for missed in range(1, 6):  # b behind something for 5 frames
        assert tracker.update(*frame([a])).tolist() == [1]
        assert tracker.lost_ids.tolist() == [2] and tracker.ended_ids.size == 0
        assert {t.track_id: t.missed for t in tracker.tracks} == {1: 0, 2: missed}
    assert tracker.update(*frame([b, a])).tolist() == [2, 1]
    assert tracker.lost_ids.size == 0


def test_a_track_unmatched_more_than_max_missed_times_ends_and_its_id_is_never_reused():
    tracker = PoseTracker(max_missed=3)
    a = pose(100, 50, 300)
    assert tracker.update(*frame([a])).tolist() == [1]
    for _ in range(3):
        assert tracker.update(*frame([])).size == 0
        assert tracker.lost_ids.tolist() == [1]
    tracker.update(*frame([]))  # the 4th miss: more than max_missed
    assert tracker.ended_ids.tolist() == [1] and tracker.lost_ids.size == 0 and tracker.tracks == []
    assert tracker.update(*frame([a])).tolist() == [2]


def test_max_missed_zero_ends_a_track_at_its_first_miss():
    tracker = PoseTracker(max_missed=0)
    tracker.update(*frame([pose(100, 50, 300)]))
    tracker.update(*frame([]))
    assert tracker.ended_ids.tolist() == [1]


def test_reset_gives_everyone_new_ids():
    tracker = PoseTracker()
    people = [pose(100, 50, 300), pose(500, 50, 300)]
    assert tracker.update(*frame(people)).tolist() == [1, 2]
    tracker.reset()
    assert tracker.ended_ids.tolist() == [1, 2] and tracker.tracks == []
    assert tracker.update(*frame(people)).tolist() == [3, 4]
    assert tracker.next_id == 5


def test_a_detection_far_from_every_track_starts_a_new_track():
    tracker = PoseTracker()
    tracker.update(*frame([pose(100, 50, 300)]))
    assert tracker.update(*frame([pose(100, 50, 300), pose(900, 50, 300)])).tolist() == [1, 2]
    # the same person jumping across the image is not the same track
    assert tracker.update(*frame([pose(2000, 50, 300)])).tolist() == [3]


def test_oks_similarity_uses_confident_keypoints_and_the_box_areas():
    tracker = PoseTracker(kpt_score_thr=0.5)
    a = pose(100, 50, 300)
    boxes, kp = frame([a])
    tracker.update(boxes, kp)
    moved = pose(110, 55, 300)
    moved[:8, 2] = 0.1  # the head and arms unsure: they do not count
    b2, k2 = frame([moved])
    got = tracker.similarity(b2, k2)
    area = lambda b: (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])  # noqa: E731
    oks, n = oks_matrix(kp, k2, area(boxes), area(b2), COCO17_SIGMAS, 0.5)
    assert n[0, 0] == 9 and got[0, 0] == pytest.approx(oks[0, 0])
    d2 = 10.0**2 + 5.0**2  # every keypoint moved by (10, 5) px
    manual = np.mean(np.exp(-d2 / ((2 * COCO17_SIGMAS[8:]) ** 2) / ((area(boxes)[0] + area(b2)[0]) / 2) / 2))
    assert got[0, 0] == pytest.approx(manual)


def test_too_few_confident_keypoints_fall_back_to_box_iou():
    tracker = PoseTracker(min_keypoints=3)
    unsure = pose(100, 50, 300, score=0.1)
    boxes = np.array([[40.0, 20.0, 160.0, 380.0]])
    tracker.update(boxes, unsure[None])
    shifted = boxes + [30, 0, 30, 0]
    got = tracker.similarity(shifted, unsure[None])
    assert got[0, 0] == pytest.approx(box_iou_matrix(boxes, shifted)[0, 0])  # 90 / 150 = 0.6
    assert tracker.update(shifted, unsure[None]).tolist() == [1]
    # two confident keypoints are still too few: the IoU decides
    two = unsure.copy()
    two[:2, 2] = 0.9
    assert tracker.similarity(shifted, two[None])[0, 0] == pytest.approx(1.0)


def test_iou_method_ignores_keypoints():
    tracker = PoseTracker(method="iou", min_similarity=0.5)
    tracker.update([[0, 0, 100, 100]], np.zeros((1, 5, 3)))  # any K for IoU
    assert tracker.update([[40, 0, 140, 100]], np.zeros((1, 5, 3))).tolist() == [2]  # IoU 60/140 < 0.5
    assert tracker.update([[45, 0, 145, 100]], np.zeros((1, 5, 3))).tolist() == [2]


def test_inputs_are_checked():
    tracker = PoseTracker()
    with pytest.raises(ValueError, match="bboxes"):
        tracker.update(np.zeros((2, 3)), np.zeros((2, 17, 3)))
    with pytest.raises(ValueError, match="keypoints"):
        tracker.update(np.zeros((2, 4)), np.zeros((1, 17, 3)))
    with pytest.raises(ValueError, match="K = 17"):
        tracker.update(np.zeros((1, 4)), np.zeros((1, 16, 3)))
    with pytest.raises(ValueError, match="scores"):
        tracker.update(np.zeros((1, 4)), np.zeros((1, 17, 3)), scores=[0.1, 0.2])
    with pytest.raises(ValueError, match="finite"):
        tracker.update([[0, 0, np.nan, 1]], np.zeros((1, 17, 3)))
    for kw in ({"method": "kalman"}, {"min_similarity": 0.0}, {"max_missed": -1}):
        with pytest.raises(ValueError):
            PoseTracker(**kw)
    assert tracker.next_id == 1  # nothing was tracked


@st.composite
def frames(draw):
    """A sequence of frames of 0..5 people drawn near a few fixed spots (so tracks continue, end and start)."""
    n_frames = draw(st.integers(1, 12))
    spots = [pose(100 + 250 * i, 50, 300) for i in range(5)]
    out = []
    for _ in range(n_frames):
        present = draw(st.lists(st.integers(0, 4), max_size=5, unique=True))
        shift = draw(st.floats(-40, 40))
        out.append([spots[i] + [shift, 0, 0] for i in present])
    return out


@settings(max_examples=60, deadline=None)
@given(frames(), st.sampled_from(["oks", "iou"]), st.integers(0, 2))
def test_ids_are_distinct_per_frame_and_never_reused(seq, method, max_missed):
    tracker = PoseTracker(method=method, max_missed=max_missed)
    ended: set[int] = set()
    biggest = 0
    for people in seq:
        ids = tracker.update(*frame(people))
        assert len(ids) == len(people) and len(set(ids.tolist())) == len(ids) and (ids >= 1).all()
        assert not ended & set(ids.tolist())
        new = [i for i in ids.tolist() if i > biggest]
        assert new == list(range(biggest + 1, biggest + 1 + len(new)))  # new IDs count up, in detection order
        biggest = max([biggest, *ids.tolist()])
        ended |= set(tracker.ended_ids.tolist())
        live = {t.track_id for t in tracker.tracks}
        assert set(ids.tolist()) <= live and set(tracker.lost_ids.tolist()) == live - set(ids.tolist())
    # deterministic: a second tracker gives the same IDs
    again = PoseTracker(method=method, max_missed=max_missed)
    first = PoseTracker(method=method, max_missed=max_missed)
    for people in seq:
        assert again.update(*frame(people)).tolist() == first.update(*frame(people)).tolist()


# ------------------------------------------------------------------------------------------ boxes from keypoints


def test_bbox_from_keypoints_expands_the_confident_keypoints_box_about_its_centre():
    kp = pose(300, 100, 200)
    box = bbox_from_keypoints(kp, 0.3, (1000, 1000))
    ex, ey = DEFAULT_BBOX_EXPANSION
    lo, hi = kp[:, :2].min(0), kp[:, :2].max(0)
    c, half = (lo + hi) / 2, (hi - lo) / 2 * [ex, ey]
    np.testing.assert_allclose(box, np.r_[c - half, c + half])
    # a person 200 px from eyes to ankles gets a box 240 px tall: the top of the head and the feet are in it
    assert box[3] - box[1] == pytest.approx(1.2 * 200)
    np.testing.assert_allclose(bbox_from_keypoints(kp, 0.3, (1000, 1000), expansion=1.0), np.r_[lo, hi])


def test_bbox_from_keypoints_ignores_unsure_keypoints_and_needs_enough_of_them():
    kp = pose(300, 100, 200)
    kp[11:, 2] = 0.1  # legs unsure: the box is the upper body's
    box = bbox_from_keypoints(kp, 0.3, (1000, 1000), expansion=1.0)
    np.testing.assert_allclose(box, np.r_[kp[:11, :2].min(0), kp[:11, :2].max(0)])
    kp[3:, 2] = 0.1  # 3 confident of 17: fewer than ceil(17 / 2)
    assert bbox_from_keypoints(kp, 0.3, (1000, 1000)) is None
    assert bbox_from_keypoints(kp, 0.3, (1000, 1000), min_keypoints=3) is not None
    kp[:, 2] = 0.0
    assert bbox_from_keypoints(kp, 0.3, (1000, 1000), min_keypoints=0) is None


def test_bbox_from_keypoints_is_clipped_to_the_image_and_none_when_off_it():
    kp = pose(20, 5, 300)  # the head at the top-left corner, the feet below a 200 px tall image
    box = bbox_from_keypoints(kp, 0.3, (640, 200))
    assert box[0] == 0 and box[1] == 0 and box[3] == 200 and 0 < box[2] < 640
    assert bbox_from_keypoints(pose(-500, 50, 300), 0.3, (640, 480)) is None  # wholly left of the image
    assert bbox_from_keypoints(np.tile([50.0, 50.0, 1.0], (17, 1)), 0.3, (640, 480)) is None  # one point: empty


def test_bboxes_from_keypoints_equals_the_single_pose_function():
    rng = np.random.default_rng(3)
    kp = np.stack([pose(*rng.uniform(0, 600, 2), rng.uniform(50, 400)) for _ in range(8)])
    kp[..., 2] = rng.uniform(0, 1, kp.shape[:2])
    boxes, valid = bboxes_from_keypoints(kp, 0.4, (640, 480))
    assert boxes.shape == (8, 4) and valid.dtype == bool
    for i in range(8):
        one = bbox_from_keypoints(kp[i], 0.4, (640, 480))
        assert (one is None) == (not valid[i])
        if one is not None:
            np.testing.assert_array_equal(one, boxes[i])
    assert bboxes_from_keypoints(np.zeros((0, 17, 3)), 0.3, (640, 480))[0].shape == (0, 4)
    with pytest.raises(ValueError):
        bboxes_from_keypoints(kp, 0.3, (0, 480))
    with pytest.raises(ValueError):
        bbox_from_keypoints(kp, 0.3, (640, 480))  # [N, K, 3] to the single-pose function


# ---------------------------------------------------------------------------------------------------- scene cuts


def _flat(rgb, size=(120, 200)) -> np.ndarray:
    return np.full((*size, 3), rgb, np.uint8)


def test_scene_cut_on_synthetic_frames():
    rng = np.random.default_rng(4)
    det = SceneCutDetector(min_scene_len=3)
    noise = lambda im: np.clip(im + rng.integers(-3, 4, im.shape), 0, 255).astype(np.uint8)  # noqa: E731
    red, blue = _flat((200, 30, 30)), _flat((30, 30, 200))
    got = [det.update(noise(im)) for im in [red] * 5 + [blue] * 5 + [red] + [blue] * 4]
    # cuts: to blue at 5, to red at 10 (the blue scene lasted 5 frames); back to blue at 11 comes 1 frame into the
    # red scene, sooner than min_scene_len
    assert [i for i, c in enumerate(got) if c] == [5, 10]
    assert det.last_score < det.threshold
    det.reset()
    assert det.update(blue) is False and np.isnan(det.last_score)  # a first frame again
    assert det.update(_flat((30, 30, 200), size=(60, 100))) is True  # another frame size: a new scene


def test_scene_cut_rejects_non_rgb8_frames():
    det = SceneCutDetector()
    with pytest.raises(ValueError):
        det.update(np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError):
        det.update(np.zeros((10, 10, 3), np.float32))
    with pytest.raises(ValueError):
        SceneCutDetector(threshold=0)


#: First frames of the new scenes of the shared bikes.mp4 (640x272, 25 fps, 250 frames).
BIKES_CUTS = [30, 76, 137, 187, 242]


@pytest.fixture(scope="module")
def bikes_frames(assets):
    av = pytest.importorskip("av")
    path = assets / "video" / "bikes.mp4"
    if not path.is_file():
        pytest.skip(f"video asset missing: {path}")
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def test_scene_cuts_of_bikes_mp4(bikes_frames):
    assert len(bikes_frames) == 250 and bikes_frames[0].shape == (272, 640, 3)
    det = SceneCutDetector()
    cuts, scores = [], []
    for i, im in enumerate(bikes_frames):
        if det.update(im):
            cuts.append(i)
        scores.append(det.last_score)
    assert cuts == BIKES_CUTS
    scores = np.array(scores)
    non_cut = np.delete(scores[1:], np.array(BIKES_CUTS) - 1)
    # measured at width 160: largest non-cut score 19.7, smallest cut score 35.8; the default 27 sits between
    assert np.nanmax(non_cut) < 21.0 and scores[BIKES_CUTS].min() > 34.0
    assert np.nanmax(non_cut) * 1.3 < det.threshold < scores[BIKES_CUTS].min() / 1.3
