"""Flows the snapshot tests share: a valid flow with a credential-bearing config node, and a
flow every runner rejects."""

from __future__ import annotations

from typing import Any

CANARY = "Canary-cred-7e41c0d9-X"


def valid_flows(password: str = CANARY) -> list[dict[str, Any]]:
    return [
        {"id": "t1", "type": "tab", "label": "Line"},
        {
            "id": "b1",
            "type": "mqtt-broker",
            "name": "Plant broker",
            "broker": "127.0.0.1",
            "port": 1883,
            "credentials": {"user": "plant", "password": password},
        },
        {"id": "i1", "type": "inject", "z": "t1", "wires": [["d1"]]},
        {"id": "d1", "type": "debug", "z": "t1", "wires": []},
    ]


def invalid_flows() -> list[dict[str, Any]]:
    return [
        {"id": "t1", "type": "tab", "label": "Line"},
        {"id": "b9", "type": "mqtt-broker", "broker": "h", "port": 99999},
    ]


def tiny_model(weight: float = 2.0) -> bytes:
    """An ONNX model y[N,2] = x[N,2] * weight (onnx.helper; a dev dependency)."""
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 2])
    w = helper.make_tensor("w", TensorProto.FLOAT, [2], [weight, weight])
    graph = helper.make_graph([helper.make_node("Mul", ["x", "w"], ["y"])], "tiny", [x], [y], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return bytes(model.SerializeToString())
