"""Saved networks exported as a NIR graph (Neuromorphic Intermediate Representation, ``nir``).

Saved networks themselves (where they are, loading, getting one for an existing record) are in
:mod:`snnbench.saved`. :func:`export_run` rebuilds the network from the record's spec, checks the hash,
loads the weights and writes the graph. The mapping of every module, with the time step ``DT``, is in
``docs/export.md``. A plugin method that subclasses an exported built-in method and builds the same
network (does not override ``build``) is exported with its parent's mapping.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from snnbench.errors import SnnbenchError
from snnbench.neurons.functional import LIFParams
from snnbench.neurons.layers import LIF, LeakyReadout, TimeDistributed
from snnbench.saved import build_network, load_model  # noqa: F401  (re-exported: the older home)

DT = 1e-4  # seconds per time step in the exported graph: the step snnTorch's NIR import assumes

# Methods whose neurons NIR 1.0.8 cannot express, and why (see docs/export.md).
NOT_EXPORTABLE = {
    "ottt": "its neuron resets by subtraction (u − ϑ·s); NIR's LIF and IF reset to a fixed v_reset",
    "bntt": "its batch norm has separate statistics at every time step and its neuron resets by subtraction",
    "conversion": "its integrate-and-fire neuron resets by subtraction and QCFS starts at v(0) = ϑ/2; "
    "NIR's IF resets to v_reset from v(0) = 0",
    "stdbp": "it computes continuous spike times (ReL-PSP), not a clock-driven state update",
    "multispike-tbp": "it computes exact spike times event by event in continuous time; its neuron is NIR's "
    "CubaLIF, but a clock-driven (Euler) reading of that node does not reproduce exact spike times and "
    "its first-spike-before-the-deadline read-out is not a node",
    "st-rsbp": "its recurrent spiking layer is not exported yet (NIR could express it as a cyclic graph)",
    "ide": "its neurons reset by subtraction and its readout is a linear map of the average firing rates",
    "soft-lif": "its LIF neuron has a refractory period and places spikes inside the step (Nengo's exact "
    "step); NIR's LIF has no refractory period",
    "tcja-snn": "its attention multiplies each step by a sigmoid of convolutions across all T steps: not a "
    "per-step state update (and its networks max-pool)",
    "biolcnet": "its hidden neurons have adaptive thresholds and lateral inhibition, which NIR 1.0.8 lacks",
    "desire-bp": "its neurons reset by subtraction (u − ϑ·s)",
    "s-resnet": "its batch norm has separate statistics at every time step and its neuron resets by "
    "subtraction (u − ϑ·s)",
    "loc-snn": "its location neurons integrate along the input's taxel axis, not time (time and taxels are "
    "swapped), and its SRM neurons have an alpha-kernel response with an additive refractory kernel, not a "
    "reset: NIR's LIF/CubaLIF state runs along time and resets to v_reset",
    "sctfa": "its membranes are multiplied at every step by an attention map of the previous step's spikes "
    "(σ(1×1 conv) ⊗ an SE gate of their spatial average): a state-dependent product NIR 1.0.8 lacks",
    "stdp-adaptive": "its layers have winner-take-all with random tie-breaks, lateral inhibition scaled by "
    "the threshold or the largest input current, a threshold set from the batch's largest current and a "
    "label-voting read-out, which NIR 1.0.8 lacks",
    "spikecaps": "its coupling coefficients change within every forward by an STDP rule (a vote trace and "
    "the class capsules' spikes, averaged over the batch) and its read-out is the length of the "
    "time-averaged class capsules: NIR 1.0.8 has no plastic or batch-shared synapse and no vector norm",
    "albsnn": "its binary layers store α·sign(W) (a 1-bit weight and one scale per channel) and its class "
    "convolution is read out by global average pooling of a non-spiking map, not mapped here",
}


def export_run(out_dir: str | Path, suite: str, run_id: str, path: str | Path) -> Path:
    """Write the saved network of ``run_id`` as a NIR file (HDF5)."""
    import nir

    record, net = load_model(out_dir, suite, run_id)
    dataset_shape = _input_shape(record.spec)
    graph = to_nir(net, record.algorithm, dataset_shape)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    nir.write(tmp, graph)
    tmp.replace(path)
    return path


def _input_shape(spec: dict[str, Any]) -> tuple[int, ...]:
    from snnbench.data import datasets

    dataset = datasets.get(spec["dataset"])()
    return tuple(dataset.info(dataset.Options.model_validate(spec["dataset_options"])).input_shape)


def to_nir(net: nn.Module, algorithm: str, input_shape: tuple[int, ...]) -> Any:
    """A NIR graph of ``net`` for one step of input shaped ``input_shape``: a chain ``input → … → output``,
    with a residual block's branch and shortcut as two paths whose ends feed the next node (NIR sums a
    node's inputs)."""
    import nir

    mapped = mapped_algorithm(algorithm)
    if mapped in NOT_EXPORTABLE:
        via = "" if mapped == algorithm else f" (it is {mapped}'s network)"
        raise SnnbenchError(f"{algorithm} cannot be exported to NIR{via}: {NOT_EXPORTABLE[mapped]}")
    graph = _Graph({"input": nir.Input(input_type=np.array(input_shape))})
    ends, shape = _emit(_chain(net, mapped), tuple(input_shape), ["input"], graph)
    graph.add(nir.Output(output_type=np.array(shape)), ends, name="output")
    dangling = set(graph.nodes) - {source for source, _ in graph.edges} - {"output"}
    if dangling:  # a path that feeds nothing (nirtorch would wait on it forever)
        raise SnnbenchError(f"NIR export of {algorithm}: nodes {sorted(dangling)} feed no other node")
    return nir.NIRGraph(nodes=graph.nodes, edges=graph.edges)


MAPPED = ("bptt", "proxy", "tssl-bp", "temporal-surrogate-bp", "stl-snn", "sew-resnet", "ms-resnet")


def mapped_algorithm(algorithm: str) -> str:
    """The built-in method whose mapping exports ``algorithm``'s network: itself, or for a plugin the
    nearest registered base class, provided the plugin builds that class's network (does not override
    ``build``). An unregistered name is returned as is (and refused by :func:`_chain`)."""
    from snnbench.algorithms import algorithms

    if algorithm in MAPPED or algorithm in NOT_EXPORTABLE or algorithm not in algorithms.names():
        return algorithm
    cls = algorithms.get(algorithm)
    for base in cls.__mro__[1:]:
        name = base.__dict__.get("registry_name")
        if name in MAPPED or name in NOT_EXPORTABLE:
            if cls.build is not base.build:
                raise SnnbenchError(
                    f"{algorithm} subclasses {name} but builds its own network (overrides build): no NIR "
                    "mapping for it"
                )
            return name
    return algorithm


class _Graph:
    """Nodes named ``<index>_<kind>`` in the order they are added, and the edges into them."""

    def __init__(self, nodes: dict[str, Any]) -> None:
        self.nodes, self.edges = nodes, []

    def add(self, node: Any, sources: list[str], name: str | None = None) -> str:
        name = name or f"{len(self.nodes) - 1}_{type(node).__name__.lower()}"
        self.nodes[name] = node
        self.edges += [(source, name) for source in sources]
        return name


def _chain(net: nn.Module, algorithm: str) -> list[nn.Module]:
    """The network's modules in the order its forward pass applies them (per time step)."""
    if algorithm == "bptt":
        return [*net.body, net.head, net.readout]
    if algorithm == "proxy":
        return [*net.body, net.head, net.output]
    if algorithm == "tssl-bp":  # the input first goes through the PSP filter a' = a + (x − a)/τs
        return [LeakyReadout(net.tau_s), *net.layers]
    if algorithm in ("temporal-surrogate-bp", "stl-snn"):  # readout: output spike rate (STL: per class
        return [*net.body, net.head, net.output]  # population average), after the graph
    if algorithm in ("sew-resnet", "ms-resnet"):  # the head is linear: the mean over T of its per-step
        return [*net.body, net.head]  # outputs is our logits
    raise SnnbenchError(
        f"no NIR export for algorithm {algorithm!r}: a plugin is exported only when it subclasses an "
        f"exported method ({', '.join(MAPPED)}) without overriding build"
    )


def _leaves(module: nn.Module) -> list[nn.Module]:
    """``module`` with its sequential containers opened (residual blocks stay whole)."""
    inner = module.module if isinstance(module, TimeDistributed) else module
    if isinstance(inner, nn.Sequential):
        return [leaf for child in inner for leaf in _leaves(child)]
    return [module]


def _emit(
    modules: list[nn.Module], shape: tuple[int, ...], sources: list[str], graph: _Graph
) -> tuple[list[str], tuple[int, ...]]:
    """Add ``modules`` as a path from ``sources``; the names feeding whatever follows, and the shape."""
    pending: list[Any] = []  # converted nodes not yet added (batch norm folds into the last of them)
    for module in (leaf for m in modules for leaf in _leaves(m)):
        block = _BLOCKS.get(type(module).__name__)
        if block is None:
            new, shape = _convert(module, shape, pending)
            pending += new
            continue
        for node in pending:
            sources = [graph.add(node, sources)]
        pending = []
        sources, shape = block(module, shape, sources, graph)
    for node in pending:
        sources = [graph.add(node, sources)]
    return sources, shape


def _residual(
    branch: nn.Module, shortcut: nn.Module | None, shape: tuple[int, ...], sources: list[str], graph: _Graph
) -> tuple[list[str], tuple[int, ...]]:
    """Branch + shortcut: both paths start at ``sources``; their ends are summed by the next node."""
    ends, out_shape = _emit([branch], shape, sources, graph)
    if shortcut is not None and not isinstance(shortcut, nn.Identity):
        shortcut_ends, _ = _emit([shortcut], shape, sources, graph)
        return ends + shortcut_ends, out_shape
    return ends + sources, out_shape


def _sew_block(block: nn.Module, shape: tuple[int, ...], sources: list[str], graph: _Graph):
    if block.connect_f != "ADD":
        raise SnnbenchError(
            f"SEW connect function {block.connect_f} multiplies spikes: NIR has no product node (ADD exports)"
        )
    return _residual(block.branch, block.downsample, shape, sources, graph)


def _ms_block(block: nn.Module, shape: tuple[int, ...], sources: list[str], graph: _Graph):
    return _residual(block.branch, block.shortcut, shape, sources, graph)


_BLOCKS: dict[str, Callable[..., tuple[list[str], tuple[int, ...]]]] = {
    "SEWBlock": _sew_block,
    "MSBlock": _ms_block,
}


def _convert(module: nn.Module, shape: tuple[int, ...], done: list[Any]) -> tuple[list[Any], tuple[int, ...]]:
    """NIR nodes for one module and its per-step output shape; batch norm is folded into ``done[-1]``."""
    import nir

    inner = module.module if isinstance(module, TimeDistributed) else module
    converter = _CONVERTERS.get(type(inner).__name__)
    if converter is not None:
        return converter(inner, shape), shape
    if isinstance(inner, nn.Linear):
        weight = _np(inner.weight)
        node = nir.Linear(weight) if inner.bias is None else nir.Affine(weight, _np(inner.bias))
        return [node], (inner.out_features,)
    if isinstance(inner, nn.Conv2d):
        if inner.padding_mode != "zeros":
            raise SnnbenchError(f"NIR's Conv2d pads with zeros, not {inner.padding_mode}")
        bias = _np(inner.bias) if inner.bias is not None else np.zeros(inner.out_channels, np.float32)
        node = nir.Conv2d(
            shape[1:], _np(inner.weight), inner.stride, inner.padding, inner.dilation, inner.groups, bias
        )
        return [node], _shape_after(inner, shape)
    if isinstance(inner, nn.AvgPool2d | nn.AdaptiveAvgPool2d):
        if isinstance(inner, nn.AdaptiveAvgPool2d):
            if inner.output_size not in (1, (1, 1)):
                raise SnnbenchError("only global average pooling is exported")
            kernel, stride, padding = shape[1:], shape[1:], (0, 0)
        else:
            kernel, stride, padding = (_pair(v) for v in (inner.kernel_size, inner.stride, inner.padding))
        node = nir.AvgPool2d(np.array(kernel), np.array(stride), np.array(padding))
        return [node], _shape_after(inner, shape)
    if isinstance(inner, nn.Flatten):  # NIR indexes the dims of one sample (no batch dimension)
        node = nir.Flatten(np.array(shape), start_dim=0, end_dim=-1)
        return [node], (math.prod(shape),)
    if isinstance(inner, nn.BatchNorm1d | nn.BatchNorm2d):
        _fold_batch_norm(done, inner.weight, inner.bias, inner.running_mean, inner.running_var, inner.eps)
        return [], shape
    if type(inner).__name__ == "DualBatchNorm":  # proxy learning: the SNN's statistics
        _fold_batch_norm(done, inner.weight, inner.bias, inner.mean_snn, inner.var_snn, 1e-5)
        return [], shape
    if isinstance(inner, nn.Dropout | nn.Identity) or type(inner).__name__ == "SharedDropout":
        return [], shape  # identity at inference (or a layer the method leaves out, e.g. proxy's dense BN)
    if isinstance(inner, nn.MaxPool2d):
        raise SnnbenchError("NIR 1.0.8 has no max pooling node: architectures with MP cannot be exported")
    raise SnnbenchError(f"no NIR mapping for {type(inner).__name__}")


def _lif_nodes(params: LIFParams, shape: tuple[int, ...]) -> list[Any]:
    """Our step h = v − (v − v_r)/τ + g·x (g = 1/τ or ``input_scale``), s = Θ(h − ϑ), v' = v_r where s.

    NIR LIF, Euler with step DT: v' = v + DT/τ_N (v_leak − v + R·x): τ_N = τ·DT, v_leak = v_r, R = g·τ.
    NIR IF (τ = ∞): v' = v + DT·R·x: R = g/DT."""
    import nir

    if params.v_reset is None:
        raise SnnbenchError("soft reset (v − ϑ·s) has no NIR node: NIR's LIF and IF reset to v_reset")
    gain = 1.0 / params.tau if params.input_scale is None else params.input_scale
    full = lambda value: np.full(shape, value, dtype=np.float32)  # noqa: E731
    threshold, reset = full(params.v_threshold), full(params.v_reset)
    if math.isinf(params.tau):
        return [nir.IF(r=full(gain / DT), v_threshold=threshold, v_reset=reset)]
    return [
        nir.LIF(
            tau=full(params.tau * DT),
            r=full(gain * params.tau),
            v_leak=reset,
            v_threshold=threshold,
            v_reset=reset,
        )
    ]


def _li_node(tau: float, shape: tuple[int, ...]) -> Any:
    """Decay-input leaky integrator v' = v + (x − v)/τ: NIR LI with τ_N = τ·DT, R = 1, v_leak = 0."""
    import nir

    return nir.LI(
        tau=np.full(shape, tau * DT, np.float32),
        r=np.ones(shape, np.float32),
        v_leak=np.zeros(shape, np.float32),
    )


def _tssl_neuron(module: nn.Module, shape: tuple[int, ...]) -> list[Any]:
    cfg = module.cfg  # u' = (1 − 1/τm) u + I, fire at u > ϑ, reset to 0; then the PSP filter
    params = LIFParams(tau=cfg.tau_m, v_threshold=cfg.threshold, v_reset=0.0, input_scale=1.0)
    return [*_lif_nodes(params, shape), _li_node(cfg.tau_s, shape)]


def _sum_pool(module: nn.Module, shape: tuple[int, ...]) -> list[Any]:
    import nir

    size = np.array([module.size, module.size])
    channels = np.full(shape[0], module.scale, np.float32)[:, None, None]
    return [nir.SumPool2d(size, size, np.zeros(2, int)), nir.Scale(channels)]


_CONVERTERS: dict[str, Callable[[Any, tuple[int, ...]], list[Any]]] = {
    LIF.__name__: lambda m, shape: _lif_nodes(m.params, shape),
    "ProxyNeuron": lambda m, shape: _lif_nodes(m.params, shape),
    LeakyReadout.__name__: lambda m, shape: [_li_node(m.tau, shape)],
    "TSSLNeuron": _tssl_neuron,
    "SumPool": _sum_pool,
    # SEW's PLIF h = v + (x − v)·k, k = sigmoid(w): our LIF with τ = 1/k (decay input), hard reset to 0
    "PLIF": lambda m, shape: _lif_nodes(
        LIFParams(1.0 / float(torch.sigmoid(m.w.detach())), m.params.v_threshold, m.params.v_reset), shape
    ),
    "MSNeuron": lambda m, shape: _multiplicative_reset(m.decay, m.v_threshold, shape),
    "ResetLIF": lambda m, shape: _multiplicative_reset(m.decay, m.v_threshold, shape),  # temporal surr. BP
    "ThresholdLIF": lambda m, shape: _with_thresholds(  # STL-SNN: m = τ v + x (τ a decay factor)
        _lif_nodes(LIFParams(1.0 / (1.0 - m.tau), 1.0, 0.0, input_scale=1.0), shape), m.threshold, shape
    ),
}


def _multiplicative_reset(decay: float, threshold: float, shape: tuple[int, ...]) -> list[Any]:
    """MS-ResNet's and temporal surrogate BP's u = λ u (1 − s) + x: our LIF with 1 − 1/τ = λ, input scale
    1, hard reset to 0."""
    return _lif_nodes(LIFParams(1.0 / (1.0 - decay), threshold, 0.0, input_scale=1.0), shape)


def _with_thresholds(nodes: list[Any], threshold: torch.Tensor, shape: tuple[int, ...]) -> list[Any]:
    """The LIF node with one trained threshold per neuron (NIR's thresholds are per-neuron arrays)."""
    nodes[0].v_threshold = np.broadcast_to(_np(threshold), shape).copy()
    return nodes


def _fold_batch_norm(
    done: list[Any],
    gamma: torch.Tensor,
    beta: torch.Tensor,
    mean: torch.Tensor,
    var: torch.Tensor,
    eps: float,
) -> None:
    """Inference batch norm y = γ (x − μ)/√(σ² + ε) + β folded into the preceding Linear/Affine/Conv2d."""
    import nir

    previous = done[-1] if done else None
    if isinstance(previous, nir.Linear):  # no bias yet: the folded shift needs one
        previous = done[-1] = nir.Affine(previous.weight, np.zeros(previous.weight.shape[0], np.float32))
    if not isinstance(previous, nir.Affine | nir.Conv2d):
        raise SnnbenchError("batch norm is exported folded into the layer before it, which must be affine")
    scale = _np(gamma) / np.sqrt(_np(var).astype(np.float64) + eps)
    shift = _np(beta) - _np(mean) * scale
    extra = (slice(None),) + (None,) * (previous.weight.ndim - 1)
    previous.weight = (previous.weight * scale[extra]).astype(np.float32)
    previous.bias = (previous.bias * scale + shift).astype(np.float32)


def _shape_after(module: nn.Module, shape: tuple[int, ...]) -> tuple[int, ...]:
    with torch.no_grad():
        return tuple(module(torch.zeros(1, *shape)).shape[1:])


def _pair(value: int | tuple[int, ...]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (value[0], value[1])


def _np(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().cpu().numpy().astype(np.float32)
