from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class PushRouteRequest(_message.Message):
    __slots__ = ("sandbox_id", "namespace", "pod_name")
    SANDBOX_ID_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    POD_NAME_FIELD_NUMBER: _ClassVar[int]
    sandbox_id: str
    namespace: str
    pod_name: str
    def __init__(self, sandbox_id: _Optional[str] = ..., namespace: _Optional[str] = ..., pod_name: _Optional[str] = ...) -> None: ...

class PushRouteResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class EvictRouteRequest(_message.Message):
    __slots__ = ("sandbox_id",)
    SANDBOX_ID_FIELD_NUMBER: _ClassVar[int]
    sandbox_id: str
    def __init__(self, sandbox_id: _Optional[str] = ...) -> None: ...

class EvictRouteResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetLastActiveRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetLastActiveResponse(_message.Message):
    __slots__ = ("last_active",)
    class LastActiveEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    LAST_ACTIVE_FIELD_NUMBER: _ClassVar[int]
    last_active: _containers.ScalarMap[str, str]
    def __init__(self, last_active: _Optional[_Mapping[str, str]] = ...) -> None: ...
