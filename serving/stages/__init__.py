"""The request path's own stages: authenticate, dispatch (local engines or hosted) and respond.

Later stages live with their own concern (admit and settle in ``costbook``, cache and routing
in ``costlevers``) and plug into the same :class:`serving.pipeline.Pipeline`.
"""

from serving.stages.authenticate import Authenticate, static_keys_from_env
from serving.stages.dispatch import Dispatch
from serving.stages.respond import Respond

__all__ = ["Authenticate", "Dispatch", "Respond", "static_keys_from_env"]
