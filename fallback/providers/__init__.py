"""Hosted providers behind one small interface (one call that streams or not; close).

A provider is an :class:`contracts.upstream.Upstream`, like the local engines: the same call,
the same items (a whole OpenAI-shaped body, or batches of OpenAI SSE payloads), so the respond
stage never knows who answered. Failures raise the upstream branch of :mod:`contracts.errors`; each adapter
translates its transport's and its API's errors in one place (``_errors.py``), so nothing
outside ``fallback/`` ever sees an httpx or vendor exception.

The interface is :mod:`fallback.providers.interface`; :func:`fallback.providers.build.build_provider`
makes the adapter a config names. Nothing here is imported eagerly, so holding a provider type
loads no HTTP client.
"""
