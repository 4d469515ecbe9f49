"""Nodes: compiled pipeline elements that own execution, and their protocols."""

from podline.nodes.base import (
    FunctionNodeProtocol,
    Node,
    NodeOutput,
    NodeType,
    OperatorNodeProtocol,
    SourceNodeProtocol,
    is_function_node,
    is_operator_node,
    is_source_node,
)
from podline.nodes.kinds import (
    NODE_BATCH,
    CacheMode,
    ErrorPolicy,
    FunctionNode,
    OperatorNode,
    SourceNode,
)

__all__ = [
    "NODE_BATCH",
    "CacheMode",
    "ErrorPolicy",
    "FunctionNode",
    "FunctionNodeProtocol",
    "Node",
    "NodeOutput",
    "NodeType",
    "OperatorNode",
    "OperatorNodeProtocol",
    "SourceNode",
    "SourceNodeProtocol",
    "is_function_node",
    "is_operator_node",
    "is_source_node",
]
