"""Function pods: typed packet functions, code-aware identity, memoized application."""

from podline.functions.code_identity import code_identity
from podline.functions.memo import ResultCache
from podline.functions.packet_function import SKIP, IdentityMode, PacketFunction, SkipType
from podline.functions.pod import (
    FunctionPod,
    FunctionPodStream,
    PacketLogger,
    PodResult,
    RowStatus,
    function_pod,
)

__all__ = [
    "SKIP",
    "FunctionPod",
    "FunctionPodStream",
    "IdentityMode",
    "PacketFunction",
    "PacketLogger",
    "PodResult",
    "ResultCache",
    "RowStatus",
    "SkipType",
    "code_identity",
    "function_pod",
]
