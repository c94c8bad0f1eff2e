"""core.precision: the one precision vocabulary, and the Settings Literals that must spell it."""

from typing import get_args

import pytest

from core import precision
from core.precision import ENGINE_PRECISIONS, PRECISIONS, SETTINGS_PRECISIONS
from core.settings import Settings


def test_precisions_are_the_four_spellings():
    assert PRECISIONS == ("fp32", "fp16", "bf16", "int8")


@pytest.mark.parametrize("name", [n for n in dir(precision) if n.endswith("PRECISIONS") and n != "PRECISIONS"])
def test_every_subset_is_taken_from_precisions_in_order(name):
    subset = getattr(precision, name)
    assert subset and set(subset) <= set(PRECISIONS)
    assert list(subset) == [p for p in PRECISIONS if p in subset]


def test_unknown_name_raises():
    with pytest.raises(ValueError, match="not a precision"):
        precision._subset("fp32", "f16")


def test_settings_literals_spell_the_core_tuples():
    # pydantic Literal[...] fields stay literal (readable in the settings table); this keeps them in step
    assert get_args(Settings.model_fields["precision"].annotation) == SETTINGS_PRECISIONS
    trt = get_args(Settings.model_fields["trt_precision"].annotation)
    assert trt[0] == "auto" and set(trt[1:]) == set(ENGINE_PRECISIONS)
