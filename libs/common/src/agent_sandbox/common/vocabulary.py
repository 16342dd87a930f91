"""Label, annotation and finalizer names shared by every component.

All keys carry the ``agentsandbox.io/`` prefix. State lives on Kubernetes
objects under these keys (not in process memory), so an operator restart can
rebuild everything from the API server; keeping the names in one module stops
the writer and the readers from drifting apart.
"""

from __future__ import annotations

from enum import StrEnum

GROUP = "agentsandbox.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
PREFIX = f"{GROUP}/"

SYSTEM_NAMESPACE = "agent-sandbox-system"
METRICS_PREFIX = "agentsandbox_"

# Custom resources
POOL_KIND = "SandboxPool"
POOL_PLURAL = "sandboxpools"
POOL_SHORT_NAME = "sbp"
TEMPLATE_KIND = "SandboxTemplate"
TEMPLATE_PLURAL = "sandboxtemplates"
TEMPLATE_SHORT_NAME = "sbt"


class SandboxPhase(StrEnum):
    """Value of the pod label :data:`LABEL_SANDBOX_PHASE`."""

    IDLE = "idle"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    FAILED = "failed"


class StopReason(StrEnum):
    COMPLETED = "Completed"
    RELEASED = "Released"
    FAILED = "Failed"
    CANCELED = "Canceled"


class PodCreationImagePolicy(StrEnum):
    POOL_DEFAULT_IMAGE = "PoolDefaultImage"
    IDLE_IMAGE = "IdleImage"


class PoolPhase(StrEnum):
    PENDING = "Pending"
    READY = "Ready"
    SCALING_UP = "ScalingUp"
    SCALING_DOWN = "ScalingDown"
    DEGRADED = "Degraded"
    TERMINATING = "Terminating"


# Pod labels
LABEL_SANDBOX_POOL = PREFIX + "sandbox-pool"
LABEL_SANDBOX_PHASE = PREFIX + "sandbox-phase"
LABEL_SANDBOX_ID = PREFIX + "sandbox-id"
LABEL_MANAGED_BY = PREFIX + "managed-by"
MANAGED_BY_VALUE = "sandbox-api-server"
LABEL_TEAM = PREFIX + "team"
LABEL_USER = PREFIX + "user"
LABEL_SYNC_SOURCE = PREFIX + "sync-source"
SYNC_SOURCE_GLOBAL = "global"
LABEL_TYPE = PREFIX + "type"
LABEL_NAMESPACE = PREFIX + "namespace"
LABEL_TOKEN_HASH = PREFIX + "token-hash"
LABEL_POOL = PREFIX + "pool"
#: On the ConfigMaps holding finished-sandbox records (value ``"true"``), one per sandbox.
LABEL_SANDBOX_HISTORY = PREFIX + "sandbox-history"
TYPE_API_KEY = "api-key"
TYPE_IMAGE_PULL_SECRET = "image-pull-secret"

# Pod annotations
ANN_SANDBOX_ID = PREFIX + "sandbox-id"
ANN_CLAIMED_AT = PREFIX + "claimed-at"
ANN_STARTED_AT = PREFIX + "started-at"
ANN_TERMINATED_AT = PREFIX + "terminated-at"
ANN_LAST_ACTIVE = PREFIX + "last-active"
ANN_IDLE_TIMEOUT = PREFIX + "idle-timeout"
ANN_STARTUP_TIMEOUT = PREFIX + "startup-timeout"
ANN_SANDBOX_METADATA = PREFIX + "sandbox-metadata"
ANN_MANAGED_LABEL_KEYS = PREFIX + "managed-label-keys"
ANN_MANAGED_ANNOTATION_KEYS = PREFIX + "managed-annotation-keys"
ANN_STOP_REASON = PREFIX + "stop-reason"
ANN_FAILURE_REASON = PREFIX + "failure-reason"
ANN_FAILURE_MESSAGE = PREFIX + "failure-message"
ANN_EXIT_CODE = PREFIX + "exit-code"
ANN_RUNNING_IMAGES = PREFIX + "running-images"
ANN_CONTAINER_ID = PREFIX + "container-id"
ANN_POST_START_HOOKS = PREFIX + "post-start-hooks"
ANN_SCALE_DOWN_PROTECTED = PREFIX + "scale-down-protected"
ANN_INPLACE_UPDATE_STATE = PREFIX + "inplace-update-state"

#: Annotations that belong to one sandbox's life and are cleared when the pod returns to idle.
SANDBOX_ANNOTATIONS: tuple[str, ...] = (
    ANN_SANDBOX_ID,
    ANN_CLAIMED_AT,
    ANN_STARTED_AT,
    ANN_TERMINATED_AT,
    ANN_LAST_ACTIVE,
    ANN_IDLE_TIMEOUT,
    ANN_STARTUP_TIMEOUT,
    ANN_SANDBOX_METADATA,
    ANN_MANAGED_LABEL_KEYS,
    ANN_MANAGED_ANNOTATION_KEYS,
    ANN_STOP_REASON,
    ANN_FAILURE_REASON,
    ANN_FAILURE_MESSAGE,
    ANN_EXIT_CODE,
    ANN_RUNNING_IMAGES,
    ANN_CONTAINER_ID,
    ANN_POST_START_HOOKS,
    ANN_INPLACE_UPDATE_STATE,
)

# Pool annotations
ANN_TEMPLATE_NAME = PREFIX + "template-name"
ANN_TEMPLATE_VERSION = PREFIX + "template-version"
ANN_OVERRIDES = PREFIX + "overrides"
ANN_SCALE_UP_PENDING = PREFIX + "scale-up-pending"
ANN_DOCS = PREFIX + "docs"

# Finalizers
FINALIZER_SANDBOX_PROTECTION = PREFIX + "sandbox-protection"
FINALIZER_POOL = PREFIX + "finalizer"

# Ports and paths
ENVD_PORT = 49983
CODE_INTERPRETER_PORT = 49999
ENVD_MOUNT_PATH = "/mnt/agentsandbox"
IDLE_IMAGE_ENV = "AGENT_SANDBOX_IS_IDLE_IMAGE"
IDLE_IMAGE_MARKER = "/etc/agent_sandbox_is_idle_image"

# Data-plane headers
HEADER_API_KEY = "X-API-Key"
HEADER_E2B_SANDBOX_ID = "E2b-Sandbox-Id"
HEADER_E2B_SANDBOX_PORT = "E2b-Sandbox-Port"
HEADER_SANDBOX_ID = "x-sandbox-id"
HEADER_SANDBOX_PORT = "x-sandbox-port"
INTERNAL_HEADER_PREFIX = "x-agentsandbox-"
HEADER_UPSTREAM_DST = "x-agentsandbox-dst"


def pool_selector(pool_name: str) -> str:
    """Label selector of every pod of a pool (the scale subresource's ``.status.selector``)."""
    return f"{LABEL_SANDBOX_POOL}={pool_name}"


def phase_selector(pool_name: str, phase: SandboxPhase) -> str:
    return f"{LABEL_SANDBOX_POOL}={pool_name},{LABEL_SANDBOX_PHASE}={phase.value}"
