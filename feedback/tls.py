"""The TLS context every outgoing HTTPS client of the service verifies servers with."""

from __future__ import annotations

import functools
import ssl

import httpx


@functools.cache
def client_context() -> ssl.SSLContext:
    """Made once per process and shared by every client (webhooks, SMS gateways, OpenID providers,
    a parent installation). Reading the CA bundle takes tens of milliseconds: a context made per client
    stalls the event loop that long for each delivery or sign-in. Certificates are checked against
    certifi's bundle, or the one `SSL_CERT_FILE` (or `SSL_CERT_DIR`) names."""
    return httpx.create_ssl_context()
