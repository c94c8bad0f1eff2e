"""One version source (core.version) for the package metadata, every command's --version and the OpenAPI document."""

import importlib
import importlib.metadata

import pytest

from core import version as version_module
from core.version import UNKNOWN_VERSION, __version__, _source_tree_version, package_version


def test_version_is_the_distribution_metadata():
    assert __version__ == importlib.metadata.version("poseserve")


def test_source_tree_without_metadata_reads_pyproject(tmp_path, monkeypatch):
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(version_module, "version", missing)
    assert package_version() == _source_tree_version(version_module.Path(__file__).parents[2] / "pyproject.toml")
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        '[build-system]\nversion = "9"\n\n[project]\nname = "x"\nversion = "1.2.3"\n\n[tool.x]\nversion = "4"\n'
    )
    assert _source_tree_version(pyproject) == "1.2.3"
    pyproject.write_text('[tool.x]\nversion = "4"\n')
    assert _source_tree_version(pyproject) is None
    assert _source_tree_version(tmp_path / "absent.toml") is None
    monkeypatch.setattr(version_module, "_source_tree_version", lambda path: None)
    assert package_version() == UNKNOWN_VERSION


@pytest.mark.parametrize(
    ("module", "entry", "prog", "needs"),
    [
        ("service.pose_serve", "main", "pose-serve", "fastapi"),
        ("export.cli", "main", "pose-export", None),
        ("export.cli", "zoo_main", "pose-zoo", None),
        ("evaluation.job", "main", "pose-eval", None),
        ("inference.predict", "main", "pose-predict", None),
        ("training.train", "main", "pose-train", "torch"),
    ],
)
def test_every_command_prints_the_version(module, entry, prog, needs, capsys):
    if needs:
        pytest.importorskip(needs)
    main = getattr(importlib.import_module(module), entry)
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.strip() == f"{prog} {__version__}"


def test_openapi_version_is_the_package_version(movenet_card):
    pytest.importorskip("fastapi")
    from core.settings import Settings
    from service.app import create_app

    app = create_app(Settings(pose_model=movenet_card))  # the models load in the lifespan: not entered here
    assert app.version == __version__ and app.openapi()["info"]["version"] == __version__
