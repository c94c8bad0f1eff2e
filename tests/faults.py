"""Fault-injection pose models (issue 25), built with ``onnx.helper`` (no binaries committed), each with a model card
that keeps the card contract: uint8 crops ``crops`` [B, S, S, 3] NHWC RGB -> ``coords`` [B, 17, 3] = x, y
normalised to the crop, score (COCO-17).

A healthy crop's keypoint k sits at x = crop mean / 255, y = k / 17, score 0.9, so every answer depends on its own
crop (a copied or broadcast answer shows). The faults fire only for *bright* crops (mean pixel value above
:data:`BRIGHT`), so a test picks the guilty request by its image:

* ``none``: no fault;
* ``batch1``: the output's batch axis is always 1 (the first crop's answer), whatever the crops;
* ``nan`` / ``inf`` / ``huge``: a bright crop's values are NaN / +Inf / 1e30;
* ``k16``: 16 keypoints instead of 17 when any crop of the batch is bright (an output shape that depends on input);
* ``slow``: a batch with a bright crop runs a ``Loop`` of 10^12 steps (it only ends when cancelled).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: A crop whose mean pixel value is above this is "bright": the faults fire for it.
BRIGHT = 180.0
FAULTS = ("none", "batch1", "nan", "inf", "huge", "k16", "slow")
K = 17


def fault_pose_onnx(path: str | Path, fault: str = "none", size: int = 64) -> Path:
    """Write the ``fault`` model (see the module docstring) for S x S crops; returns ``path`` (opset 17)."""
    import onnx
    from onnx import TensorProto, helper

    if fault not in FAULTS:
        raise ValueError(f"unknown fault {fault!r}; one of {FAULTS}")
    f32 = TensorProto.FLOAT
    slope = np.zeros((1, K, 3), np.float32)
    slope[..., 0] = 1.0 / 255.0
    offset = np.zeros((1, K, 3), np.float32)
    offset[..., 1] = np.arange(K) / K
    offset[..., 2] = 0.9
    inits = [
        helper.make_tensor("slope", f32, [1, K, 3], slope.ravel()),
        helper.make_tensor("offset", f32, [1, K, 3], offset.ravel()),
        helper.make_tensor("column", TensorProto.INT64, [3], [-1, 1, 1]),
        helper.make_tensor("bright_level", f32, [], [BRIGHT]),
    ]
    nodes = [
        helper.make_node("Cast", ["crops"], ["f"], to=f32),
        helper.make_node("ReduceMean", ["f"], ["m"], axes=[1, 2, 3], keepdims=0),
        helper.make_node("Reshape", ["m", "column"], ["mcol"]),  # [B, 1, 1]
        helper.make_node("Mul", ["mcol", "slope"], ["scaled"]),
        helper.make_node("Add", ["scaled", "offset"], ["base"]),  # [B, 17, 3]
        helper.make_node("Greater", ["mcol", "bright_level"], ["bright"]),  # [B, 1, 1] bool
        helper.make_node("Cast", ["bright"], ["bright_f"], to=f32),
        helper.make_node("ReduceMax", ["bright_f"], ["any_bright"], keepdims=0),  # scalar: 1.0 when any crop is
    ]
    out = "base"
    if fault in ("nan", "inf", "huge"):
        value = {"nan": float("nan"), "inf": float("inf"), "huge": 1e30}[fault]
        inits.append(helper.make_tensor("bad", f32, [], [value]))
        nodes.append(helper.make_node("Where", ["bright", "bad", "base"], ["faulty"]))
        out = "faulty"
    elif fault == "batch1":
        inits += [helper.make_tensor(n, TensorProto.INT64, [1], [v]) for n, v in (("zero", 0), ("one", 1))]
        nodes.append(helper.make_node("Slice", ["base", "zero", "one", "zero"], ["faulty"]))
        out = "faulty"
    elif fault == "k16":
        inits += [
            helper.make_tensor("zero", TensorProto.INT64, [1], [0]),
            helper.make_tensor("axis1", TensorProto.INT64, [1], [1]),
            helper.make_tensor("k17", TensorProto.INT64, [1], [K]),
        ]
        nodes += [
            helper.make_node("Cast", ["any_bright"], ["any_i"], to=TensorProto.INT64),
            helper.make_node("Sub", ["k17", "any_i"], ["k_end"]),  # [1]
            helper.make_node("Slice", ["base", "zero", "k_end", "axis1"], ["faulty"]),
        ]
        out = "faulty"
    elif fault == "slow":
        body = helper.make_graph(
            [
                helper.make_node("Identity", ["cond_in"], ["cond_out"]),
                helper.make_node("Add", ["v_in", "step"], ["v_out"]),
            ],
            "spin",
            [
                helper.make_tensor_value_info("i", TensorProto.INT64, []),
                helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
                helper.make_tensor_value_info("v_in", f32, [1]),
            ],
            [
                helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
                helper.make_tensor_value_info("v_out", f32, [1]),
            ],
            [helper.make_tensor("step", f32, [1], [1.0])],
        )
        inits += [
            helper.make_tensor("many", f32, [], [1e12]),
            helper.make_tensor("true", TensorProto.BOOL, [], [True]),
            helper.make_tensor("v0", f32, [1], [0.0]),
            helper.make_tensor("nothing", f32, [], [0.0]),
        ]
        nodes += [
            helper.make_node("Mul", ["any_bright", "many"], ["trips_f"]),
            helper.make_node("Cast", ["trips_f"], ["trips"], to=TensorProto.INT64),
            helper.make_node("Loop", ["trips", "true", "v0"], ["v_end"], body=body),
            helper.make_node("Mul", ["v_end", "nothing"], ["v_zero"]),
            helper.make_node("Add", ["base", "v_zero"], ["faulty"]),
        ]
        out = "faulty"
    nodes.append(helper.make_node("Identity", [out], ["coords"]))
    graph = helper.make_graph(
        nodes,
        f"fault_{fault}",
        [helper.make_tensor_value_info("crops", TensorProto.UINT8, ["batch", size, size, 3])],
        [helper.make_tensor_value_info("coords", f32, ["out_batch", "k", 3])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return Path(path)


def fault_pose_card(folder: str | Path, fault: str = "none", size: int = 64) -> Path:
    """The ``fault`` model and its card in ``folder``; returns the card's path (``--pose`` of ``pose-serve``)."""
    from models.card import InputSpec, ModelCard, OutputSpec

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    onnx_path = fault_pose_onnx(folder / f"fault_{fault}.onnx", fault, size)
    card = ModelCard(
        name=f"fault_{fault}",
        model_file=onnx_path.name,
        input=InputSpec(name="crops", width=size, height=size, layout="NHWC", dtype="uint8", color="RGB"),
        output=OutputSpec(name="coords", kind="keypoints", coord_order="xy", coord_units="normalized"),
        source={"checkpoint": f"fault injection: {fault} (tests/faults.py)"},
    )
    return card.save(folder / f"fault_{fault}.json")
