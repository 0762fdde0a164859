"""The ingress's HTTP surfaces, one module each: OpenAI's API, operations, and the error envelope.
The admin routes live with what they administer (``access``, ``costbook``, ``costlevers``)."""
