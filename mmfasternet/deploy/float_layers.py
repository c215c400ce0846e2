"""Which nodes of an end-to-end graph INT8 quantization keeps in float.

Walking back from each graph output, every node up to the first layer with
weights (Conv, Gemm, MatMul by a constant) is *tail*: box decoding, score
activations, top-k, NMS, RoI level mapping, RTMDet-Ins's dynamic mask
convolutions (matrix products of two activations). The layers where the
walk stops are the *output layers*: RTMDet's ``rtm_cls`` / ``rtm_reg``
(and ``rtm_kernel`` and the mask features' projection), Mask R-CNN's RPN
convs, ``fc_cls`` / ``fc_reg`` and the mask head's ``conv_logits``. Their
outputs reach the detections through arithmetic alone, so an INT8 rounding
there moves boxes, scores and mask edges directly, with no later layer to
absorb it (docs/int8.md has what quantizing them costs on the toy set).

The walk does not enter the feature input of RoIAlign (the FPN maps feed
the RoI heads' layers, not the outputs directly), only its boxes.

The same walk runs on an ``onnx.ModelProto`` (:func:`onnx_graph`) and on
an ``openvino.Model`` (:func:`openvino_graph`), with the node names that
NNCF's ``IgnoredScope`` takes for each.

:func:`layers_after_nms` finds the layers whose inputs have a size the
data decides (Mask R-CNN's RoI heads: as many rows as NMS kept
proposals), which NNCF's full bias correction cannot re-run
(:mod:`.quantization`).
"""
from collections import Counter
from typing import Dict, Iterable, List, Mapping, NamedTuple, Tuple

#: Layer types with weights where the walk stops (ONNX and OpenVINO).
WEIGHTED_TYPES = frozenset({
    'Conv', 'ConvTranspose', 'Gemm', 'MatMul', 'Convolution',
    'GroupConvolution', 'ConvolutionBackpropData'
})
#: Inputs the walk does not follow (RoIAlign's feature maps), by type.
SKIPPED_INPUTS = {'RoiAlign': (0, ), 'ROIAlign': (0, )}
#: Node types whose output size depends on the input values (how many
#: boxes NMS keeps, how many elements are non-zero), ONNX and OpenVINO.
DATA_DEPENDENT_TYPES = frozenset({
    'NonMaxSuppression', 'NonZero', 'MulticlassNms', 'MatrixNms', 'NMSRotated'
})
#: Nodes that only carry a constant (OpenVINO's weight decompression).
_CONSTANT_CARRIERS = frozenset(
    {'Convert', 'Reshape', 'Transpose', 'Multiply', 'Subtract', 'Unsqueeze'})


class GraphNode(NamedTuple):
    """A node as the walk sees it."""
    name: str
    type: str
    #: Producer names of its non-constant inputs, by input index.
    inputs: Tuple[Tuple[int, str], ...]
    #: A layer with constant weights (where the walk stops).
    weighted: bool


class OutputLayer(NamedTuple):
    """A layer where the walk stopped."""
    type: str
    #: The graph outputs it produces.
    outputs: List[str]
    #: The node its input comes from (OpenVINO names fused layers after
    #: the node they absorbed: RTMDet's ``rtm_reg`` conv times the stride
    #: is ``/bbox_head/Mul``; its input, ``reg_convs.0``, says which).
    after: str


class FloatScope(NamedTuple):
    """What :func:`find_float_scope` found."""
    #: Output layers by name.
    output_layers: Dict[str, OutputLayer]
    #: Tail node names (between the output layers and the outputs).
    tail: List[str]
    #: Tail node types and how many of each.
    tail_types: Counter

    def describe(self) -> List[str]:
        """Lines for a log: each output layer with its outputs, then the
        tail's size and most frequent types."""
        lines = [
            f'{name} ({layer.type}, after {layer.after}) -> '
            f'{", ".join(layer.outputs)}'
            for name, layer in sorted(self.output_layers.items())
        ]
        common = ', '.join(f'{kind} {count}'
                           for kind, count in self.tail_types.most_common(8))
        lines.append(f'{len(self.tail)} tail nodes after them ({common}, ...)')
        return lines


def find_float_scope(nodes: Mapping[str, GraphNode],
                     outputs: Mapping[str, str]) -> FloatScope:
    """Walk back from the graph outputs to the first weighted layers.

    Args:
        nodes (Mapping[str, GraphNode]): The graph's nodes by name.
        outputs (Mapping[str, str]): Graph output name -> producer name.

    Returns:
        FloatScope: The output layers and the tail.
    """
    layers: Dict[str, OutputLayer] = {}
    tail: Dict[str, str] = {}
    for output, producer in outputs.items():
        seen = set()
        stack = [producer]
        while stack:
            name = stack.pop()
            if name in seen or name not in nodes:
                continue  # graph inputs and constants are not nodes here
            seen.add(name)
            node = nodes[name]
            if node.weighted:
                if name not in layers:
                    after = node.inputs[0][1] if node.inputs else 'input'
                    layers[name] = OutputLayer(node.type, [], after)
                layers[name].outputs.append(output)
                continue
            tail[name] = node.type
            skipped = SKIPPED_INPUTS.get(node.type, ())
            stack += [src for i, src in node.inputs if i not in skipped]
    return FloatScope(layers, list(tail), Counter(tail.values()))


def onnx_graph(model) -> Tuple[Dict[str, GraphNode], Dict[str, str]]:
    """The nodes (by ONNX node name) and outputs of an ONNX model."""
    constants = {init.name for init in model.graph.initializer}
    constants |= {
        out
        for node in model.graph.node if node.op_type == 'Constant'
        for out in node.output
    }
    producer = {
        out: node.name
        for node in model.graph.node
        for out in node.output
    }
    nodes = {}
    for node in model.graph.node:
        if node.op_type == 'Constant':
            continue
        inputs = tuple((i, producer[name]) for i, name in enumerate(node.input)
                       if name in producer and name not in constants)
        weighted = node.op_type in WEIGHTED_TYPES and any(
            name in constants for name in node.input[1:])
        nodes[node.name] = GraphNode(node.name, node.op_type, inputs, weighted)
    outputs = {out.name: producer[out.name] for out in model.graph.output}
    return nodes, outputs


def openvino_graph(model) -> Tuple[Dict[str, GraphNode], Dict[str, str]]:
    """The nodes (by friendly name) and outputs of an ``openvino.Model``
    (output names as :class:`~.backends.OpenVINORunner` gives them)."""
    from .backends import port_name
    nodes = {}
    for op in model.get_ordered_ops():
        kind = op.get_type_name()
        if kind in ('Constant', 'Parameter', 'Result'):
            continue
        sources = [
            op.input_value(i).get_node() for i in range(op.get_input_size())
        ]
        inputs = tuple((i, src.get_friendly_name())
                       for i, src in enumerate(sources)
                       if src.get_type_name() not in ('Constant', 'Parameter'))
        weighted = kind in WEIGHTED_TYPES and any(
            _is_constant(src) for src in sources[1:])
        nodes[op.get_friendly_name()] = GraphNode(op.get_friendly_name(), kind,
                                                  inputs, weighted)
    outputs = {
        port_name(out):
        out.get_node().input_value(0).get_node().get_friendly_name()
        for out in model.outputs
    }
    return nodes, outputs


def _is_constant(node, depth: int = 4) -> bool:
    """Whether ``node`` is a Constant, possibly behind a few
    decompression / reshaping nodes."""
    if node.get_type_name() == 'Constant':
        return True
    if depth == 0 or node.get_type_name() not in _CONSTANT_CARRIERS:
        return False
    return all(
        _is_constant(node.input_value(i).get_node(), depth - 1)
        for i in range(node.get_input_size()))


def layer_names(scope: FloatScope, with_output_layers: bool) -> List[str]:
    """The names to keep in float: the tail, and with
    ``with_output_layers`` the output layers too."""
    names = list(scope.output_layers) if with_output_layers else []
    return names + scope.tail


def layers_after_nms(
    nodes: Mapping[str, GraphNode], kept: Iterable[str] = frozenset()
) -> List[str]:
    """The weighted layers that a node of :data:`DATA_DEPENDENT_TYPES`
    feeds, directly or through other nodes: layers whose input size the
    data decides (Mask R-CNN's RoI heads, after the RPN's NMS).

    Args:
        nodes (Mapping[str, GraphNode]): The graph's nodes by name.
        kept (Iterable[str]): Layers to leave out (those kept in float).
            Default: none.

    Returns:
        list[str]: Their names, sorted.
    """
    consumers: Dict[str, List[str]] = {}
    for node in nodes.values():
        for _, source in node.inputs:
            consumers.setdefault(source, []).append(node.name)
    stack = [n.name for n in nodes.values() if n.type in DATA_DEPENDENT_TYPES]
    seen = set()
    while stack:
        name = stack.pop()
        if name not in seen:
            seen.add(name)
            stack += consumers.get(name, [])
    kept = set(kept)
    return sorted(name for name in seen
                  if nodes[name].weighted and name not in kept)
