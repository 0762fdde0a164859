"""The serving issue's stages: authenticate, dispatch (local engines) and respond.

Later stages live with their own concern (admit and settle in ``costbook``, cache and routing
in ``costlevers``) and plug into the same :class:`serving.pipeline.Pipeline`.
"""

from serving.stages.authenticate import Authenticate, static_keys_from_env
from serving.stages.dispatch import DispatchLocal
from serving.stages.respond import Respond

__all__ = ["Authenticate", "DispatchLocal", "Respond", "static_keys_from_env"]
