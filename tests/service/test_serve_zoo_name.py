"""`pose-serve --pose <zoo name>` (the names `pose-eval --zoo` and `pose-zoo list` use): served from
``<cache>/pose/<name>.json``, exported there once by `pose-export pose NAME` in a subprocess when missing (a stand-in
export command here: no network, no torch), or a clear error naming that command; an unknown name lists the closest
zoo names."""

from __future__ import annotations

import sys

import pytest

import inference.default_models as defaults
from core.errors import ModelLoadError
from core.settings import Settings
from inference.default_models import check_model_files, resolve_models, resolve_zoo_pose, zoo_name_of
from models.card import InputSpec, ModelCard, OutputSpec
from service import pose_serve
from tests.graphs import tiny_pose_onnx


def _write_served_model(folder, name: str) -> None:
    """A card + ONNX pair as `pose-export pose NAME --out folder` leaves it (tiny graph, keypoints contract)."""
    folder.mkdir(parents=True, exist_ok=True)
    tiny_pose_onnx(folder / f"{name}.onnx", w=4, h=4, output="coords", width=2)
    ModelCard(
        name=name,
        model_file=f"{name}.onnx",
        input=InputSpec(name="crops", width=4, height=4, layout="NHWC", dtype="uint8"),
        output=OutputSpec(name="coords", coord_units="normalized"),
    ).save(folder / f"{name}.json")


def _settings(tmp_path, **kw) -> Settings:
    detector = tmp_path / "det.onnx"
    detector.write_bytes(b"stand-in detector")
    return Settings(cache_dir=tmp_path / "cache", detector_model=detector, offline=True, **kw)


def test_which_values_are_zoo_names(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "td-hm_res50").mkdir()  # a folder of that name exists: the value is that path
    assert zoo_name_of("td-hm_res50") is None
    assert zoo_name_of("ipr_res50_debias") == "ipr_res50_debias"
    assert zoo_name_of("no_such_model") == "no_such_model"  # a name; resolve_zoo_pose says it is unknown
    for path in ("models/ipr_res50_debias", "quick.json", "m.onnx", "best.pth", "model.xml", "x.engine"):
        assert zoo_name_of(path) is None, path


def test_a_prepared_zoo_name_serves_from_the_cache(tmp_path, monkeypatch):
    settings = _settings(tmp_path, pose_model="td-hm_res50")
    card = settings.cache.zoo_pose_card("td-hm_res50")
    assert card == tmp_path / "cache" / "pose" / "td-hm_res50.json"
    _write_served_model(card.parent, "td-hm_res50")
    monkeypatch.setattr(defaults.subprocess, "run", lambda *a, **k: pytest.fail("a prepared model is not exported"))
    resolved = resolve_models(settings)
    assert resolved.pose_model == card and resolved.detector_model == settings.detector_model
    check_model_files(resolved)  # what pose-serve checks before binding its port


def _stand_in_export(rc: int, write: bool):
    """An export command that writes NAME.onnx + NAME.json into --out (when ``write``) and exits ``rc``."""
    calls = []

    def command(sub, settings):
        calls.append(sub)
        out, name = sub[sub.index("--out") + 1], sub[1]
        if not write:
            return [sys.executable, "-c", f"import sys; sys.exit({rc})"]
        script = (
            "import pathlib, sys, json; d = pathlib.Path(sys.argv[1]); n = sys.argv[2]; d.mkdir(parents=True); "
            "(d / (n + '.onnx')).write_bytes(b'onnx'); (d / (n + '.json')).write_text('{}'); "
            f"sys.exit({rc})"
        )
        return [sys.executable, "-c", script, out, name]

    return command, calls


def test_a_missing_zoo_model_is_exported_once_into_the_cache(tmp_path, monkeypatch):
    command, calls = _stand_in_export(0, write=True)
    monkeypatch.setattr(defaults, "export_extra_installed", lambda: True)
    monkeypatch.setattr(defaults, "export_command", command)
    settings = _settings(tmp_path)
    card = resolve_zoo_pose("td-reg_res50_rle", settings)
    assert (
        card == settings.cache.zoo_pose_card("td-reg_res50_rle") and card.with_suffix(".onnx").read_bytes() == b"onnx"
    )
    assert calls == [["pose", "td-reg_res50_rle", "--out", str(card.parent / ".td-reg_res50_rle.tmp")]]
    assert sorted(p.name for p in card.parent.iterdir()) == ["td-reg_res50_rle.json", "td-reg_res50_rle.onnx"]
    resolve_zoo_pose("td-reg_res50_rle", settings)
    assert len(calls) == 1  # cached: not exported again


@pytest.mark.parametrize("rc, write", [(1, True), (0, False)], ids=["failed", "no-output"])
def test_a_failed_zoo_export_names_the_command_and_leaves_nothing(tmp_path, monkeypatch, rc, write):
    command, _ = _stand_in_export(rc, write)
    monkeypatch.setattr(defaults, "export_extra_installed", lambda: True)
    monkeypatch.setattr(defaults, "export_command", command)
    settings = _settings(tmp_path)
    with pytest.raises(
        ModelLoadError, match=r"exporting zoo model ipr_res50 failed .*pose-export pose ipr_res50 --out"
    ):
        resolve_zoo_pose("ipr_res50", settings)
    folder = settings.cache.zoo_pose_card("ipr_res50").parent
    assert not folder.exists() or list(folder.iterdir()) == []


def test_a_missing_zoo_model_without_export_says_what_to_run(tmp_path, monkeypatch):
    monkeypatch.setattr(defaults, "export_extra_installed", lambda: False)
    settings = _settings(tmp_path, pose_model="ipr_res50_debias")
    with pytest.raises(
        ModelLoadError, match=r"export extra .* not installed.*`pose-export pose ipr_res50_debias --out "
    ):
        resolve_models(settings)
    monkeypatch.setattr(defaults, "export_extra_installed", lambda: True)
    with pytest.raises(ModelLoadError, match=r"--no-prepare-defaults.*pose-export pose ipr_res50_debias"):
        resolve_models(settings.model_copy(update={"prepare_defaults": False}))


def test_an_unknown_name_lists_the_closest_zoo_names(tmp_path, capsys):
    with pytest.raises(ModelLoadError, match=r"'ipr_res50_debis' is neither a file nor a zoo .*ipr_res50_debias"):
        resolve_models(_settings(tmp_path, pose_model="ipr_res50_debis"))
    with pytest.raises(ModelLoadError, match="no zoo name is close to it"):
        resolve_models(_settings(tmp_path, pose_model="qwertyuiop"))
    # pose-serve: exit 1 before any port is bound, the close names on stderr
    rc = pose_serve.main(["--pose", "td-hm_res5", "--cache-dir", str(tmp_path / "cache"), "--offline"])
    err = capsys.readouterr().err
    assert rc == pose_serve.EXIT_FAILURE and "td-hm_res50" in err and "pose-zoo list" in err
