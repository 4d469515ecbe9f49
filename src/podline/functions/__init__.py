"""Function pods: typed packet functions, code-aware identity, memoized application."""

from podline.functions.code_identity import (
    CodeIdentity,
    code_identity,
    code_structure,
    describe_code,
)
from podline.functions.memo import ResultCache
from podline.functions.output_files import SharedOutputFileWarning
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
    "CodeIdentity",
    "FunctionPod",
    "FunctionPodStream",
    "IdentityMode",
    "PacketFunction",
    "PacketLogger",
    "PodResult",
    "ResultCache",
    "RowStatus",
    "SharedOutputFileWarning",
    "SkipType",
    "code_identity",
    "code_structure",
    "describe_code",
    "function_pod",
]
