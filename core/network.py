"""The trained network as plain NumPy: first layer apart, the rest in float64.

Two users: the attribution engine, which evaluates the first layer field by field, and fast
scoring, which folds the preprocessor's scaler into the first layer and multiplies the
*sparse* encoded rows by it, so a million applicants never become a dense
million-by-1,500 matrix. Results equal Keras' own forward pass to float rounding.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

NETWORK_FILE = "network.npz"


@dataclass
class Network:
    """The Keras network split at its first layer: linear head + NumPy float64 tail."""

    w1: np.ndarray
    b1: np.ndarray
    activation: str
    tail: list[tuple[str, tuple]]

    @classmethod
    def from_model(cls, model: object) -> Network:
        import keras

        layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
        first = layers[0]
        if not isinstance(first, keras.layers.Dense):
            raise TypeError("the attribution engine needs a Dense first layer")
        w1, b1 = (np.asarray(v, dtype=np.float64) for v in first.get_weights())
        tail: list[tuple[str, tuple]] = []
        for layer in layers[1:]:
            if isinstance(layer, keras.layers.Dense):
                w, b = (np.asarray(v, dtype=np.float64) for v in layer.get_weights())
                tail.append(("dense", (w, b, layer.activation.__name__)))
            elif isinstance(layer, keras.layers.BatchNormalization):
                gamma, beta, mean, var = (np.asarray(v, dtype=np.float64) for v in layer.get_weights())
                scale = gamma / np.sqrt(var + layer.epsilon)
                tail.append(("affine", (scale, beta - mean * scale)))
            elif isinstance(layer, keras.layers.Dropout):
                continue
            else:
                raise TypeError(f"unsupported layer for exact attributions: {type(layer).__name__}")
        return cls(w1, b1, first.activation.__name__, tail)

    def to_bytes(self) -> bytes:
        """The network as a NumPy ``.npz`` (arrays and a JSON layer list; no pickle)."""
        arrays: dict[str, np.ndarray] = {"w1": self.w1, "b1": self.b1}
        layers = []
        for i, (kind, params) in enumerate(self.tail):
            if kind == "dense":
                w, b, act = params
                arrays[f"l{i}_a"], arrays[f"l{i}_b"] = w, b
                layers.append({"kind": "dense", "activation": act})
            else:
                arrays[f"l{i}_a"], arrays[f"l{i}_b"] = params
                layers.append({"kind": "affine"})
        spec = {"activation": self.activation, "tail": layers}
        arrays["spec"] = np.array(json.dumps(spec))
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, blob: bytes) -> Network:
        """Read what ``to_bytes`` wrote; refuses pickled objects."""
        with np.load(io.BytesIO(blob), allow_pickle=False) as z:
            spec = json.loads(str(z["spec"]))
            tail: list[tuple[str, tuple]] = []
            for i, layer in enumerate(spec["tail"]):
                a, b = z[f"l{i}_a"], z[f"l{i}_b"]
                if layer["kind"] == "dense":
                    cls._act(layer["activation"], np.zeros(1))  # unknown activations fail here
                    tail.append(("dense", (a, b, layer["activation"])))
                elif layer["kind"] == "affine":
                    tail.append(("affine", (a, b)))
                else:
                    raise TypeError(f"unknown layer kind {layer['kind']!r}")
            return cls(z["w1"], z["b1"], spec["activation"], tail)

    @staticmethod
    def _act(name: str, z: np.ndarray) -> np.ndarray:
        if name == "tanh":
            return np.tanh(z)
        if name == "relu":
            return np.maximum(z, 0.0)
        if name == "sigmoid":
            return 0.5 * (1.0 + np.tanh(0.5 * z))
        if name == "linear":
            return z
        raise TypeError(f"unsupported activation {name}")

    @staticmethod
    def _act_in_place(name: str, z: np.ndarray) -> np.ndarray:
        """``_act`` computed into ``z`` itself (the same operations, so the same numbers)."""
        if name == "tanh":
            np.tanh(z, out=z)
        elif name == "relu":
            np.maximum(z, 0.0, out=z)
        elif name == "sigmoid":
            z *= 0.5
            np.tanh(z, out=z)
            z += 1.0
            z *= 0.5
        elif name != "linear":
            raise TypeError(f"unsupported activation {name}")
        return z

    def from_first(self, z1: np.ndarray, scratch: Scratch | None = None) -> np.ndarray:
        """Probability from first-layer pre-activations (any leading shape).

        With ``scratch``, ``z1`` is overwritten and every later layer is computed into arrays the
        scratch keeps for the next call: the attribution engine evaluates millions of coalitions in
        blocks, and a server that hands freed memory back to the system (serve.py) would otherwise
        pay page faults for each block's fresh arrays (it made explaining 2x slower). Same numbers.
        """
        if scratch is None:
            h = self._act(self.activation, z1)
            for kind, params in self.tail:
                if kind == "dense":
                    w, b, act = params
                    h = self._act(act, _flat_matmul(h, w) + b)
                else:
                    scale, shift = params
                    h = h * scale + shift
            return h[..., 0]
        h = self._act_in_place(self.activation, z1)
        for i, (kind, params) in enumerate(self.tail):
            if kind == "dense":
                w, b, act = params
                out = scratch.array(("layer", i), (*h.shape[:-1], w.shape[1]))
                _flat_matmul(h, w, out)
                out += b
                h = self._act_in_place(act, out)
            else:
                scale, shift = params
                h *= scale
                h += shift
        return h[..., 0]


def _flat_matmul(h: np.ndarray, w: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``h @ w`` for rows with any leading shape, as one matrix product (into ``out`` when given, a
    contiguous array of the result's shape): NumPy multiplies a stack slice by slice (one BLAS call
    per slice, 2x slower for the attribution engine's blocks)."""
    rows = h.reshape(-1, h.shape[-1])
    if out is None:
        return (rows @ w).reshape(*h.shape[:-1], w.shape[1])
    np.matmul(rows, w, out=out.reshape(-1, w.shape[1]))
    return out


class Scratch:
    """Arrays reused from one block of a computation to the next (grown when a block needs more)."""

    def __init__(self) -> None:
        self._arrays: dict[object, np.ndarray] = {}

    def array(self, key: object, shape: tuple[int, ...]) -> np.ndarray:
        """An uninitialised float64 array of ``shape``, sharing memory with earlier ones of ``key``."""
        size = int(np.prod(shape))
        flat = self._arrays.get(key)
        if flat is None or flat.size < size:
            flat = self._arrays[key] = np.empty(size, np.float64)
        return flat[:size].reshape(shape)


def folded_first_layer(net: Network, scaler: object) -> tuple[np.ndarray, np.ndarray]:
    """First-layer weights acting on *unscaled* encoded rows: W/scale, b - (mean/scale) @ W."""
    mean = np.asarray(getattr(scaler, "mean_", 0.0), dtype=np.float64)
    scale = np.asarray(getattr(scaler, "scale_", 1.0), dtype=np.float64)
    w = net.w1 / scale[:, None]
    b = net.b1 - (mean / scale) @ net.w1
    return w, b


class FastScorer:
    """Success probabilities from a fitted pipeline + network, without densifying the input."""

    def __init__(self, pipeline: object, net: Network) -> None:
        self.encoder = pipeline.named_steps["encode"]
        self.net = net
        self.w, self.b = folded_first_layer(self.net, pipeline.named_steps["scale"])

    def predict(self, rows) -> np.ndarray:
        encoded: sp.csr_matrix = self.encoder.transform_sparse(rows)
        return self.net.from_first(np.asarray(encoded @ self.w) + self.b)
