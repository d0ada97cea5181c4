"""The generic HTTP SMS gateway (`sms_gateway`): each SMS is one POST to FEEDBACK_SMS_URL.

The body is JSON `{"to": "+84912345678", "text": "…", "id": "…"}` unless FEEDBACK_SMS_TEMPLATE gives
another: a template of the body with the placeholders `{to}`, `{text}` and `{id}`, each written where
its value goes. A template that starts with `{` or `[` is JSON: the values are inserted JSON-escaped
(without quotes; write them in the template), e.g. `{"msisdn": "{to}", "message": "{text}", "ref": "{id}"}`;
any other is a form (`application/x-www-form-urlencoded`): the values are percent-encoded, e.g.
`to={to}&body={text}&ref={id}`. Any other `{word}` is refused, as is a JSON template that is not JSON
once filled in. `id` is the same on every retry of one message, so the gateway can drop a copy.

FEEDBACK_SMS_TOKEN, when set, goes as `Authorization: Bearer <token>`. The URL is the operator's setting,
but only http and https are ever used (`feedback.settings` refuses others at start-up, and so does this
plugin); a request has a 10 s timeout, follows no redirect and ignores proxy variables, and at most
`MAX_ANSWER` bytes of the answer are read. A 2xx answer is success; 400 and 422 say the gateway refuses
this message (given up at once); anything else (another status, a refused connection, a timeout) is
tried again later with the outbox's backoff.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from functools import cache
from urllib.parse import quote_plus, urlsplit

import httpx

from feedback import hookimpl, tls
from feedback.outbox import GiveUp
from feedback.settings import Settings

log = logging.getLogger("feedback.sms")

TIMEOUT = httpx.Timeout(10.0)
PLACEHOLDERS = ("to", "text", "id")
_PLACEHOLDER = re.compile(r"\{(\w+)\}")
REFUSED = (400, 422)  # the gateway will not take this message, however often it is sent
MAX_ANSWER = 4096  # bytes of the gateway's answer read: only its status counts, however long the body


async def read_at_most(response: httpx.Response, limit: int) -> bytes:
    """At most `limit` bytes of a streamed answer's body (the rest is never read into memory)."""
    taken = bytearray()
    async for chunk in response.aiter_raw():
        taken += chunk[: limit - len(taken)]
        if len(taken) >= limit:
            break
    return bytes(taken)


@dataclass(frozen=True)
class Template:
    """A body with placeholders, and how its values are escaped (`json` or `form`)."""

    text: str
    kind: str

    @property
    def content_type(self) -> str:
        return "application/json" if self.kind == "json" else "application/x-www-form-urlencoded"

    def render(self, values: dict[str, str]) -> bytes:
        escape = _json_escape if self.kind == "json" else quote_plus
        return _PLACEHOLDER.sub(lambda match: escape(values[match[1]]), self.text).encode()


def _json_escape(value: str) -> str:
    """A value as the inside of a JSON string (the template writes the quotes)."""
    return json.dumps(value, ensure_ascii=False)[1:-1]


def parse_template(text: str) -> Template | None:
    """FEEDBACK_SMS_TEMPLATE as a Template (None: empty, the default JSON body); ValueError naming it."""
    if not text.strip():
        return None
    unknown = sorted({name for name in _PLACEHOLDER.findall(text) if name not in PLACEHOLDERS})
    if unknown:
        raise ValueError(
            f"FEEDBACK_SMS_TEMPLATE: unknown placeholder {{{unknown[0]}}} (use {{to}}, {{text}} and {{id}})"
        )
    template = Template(text, "json" if text.lstrip().startswith(("{", "[")) else "form")
    if template.kind == "json":
        # Each sample is a JSON string's inside and nothing else: "1.a" is no JSON number, so an unquoted
        # `{id}` is refused here rather than when a message id happens not to look like one.
        sample = {"to": "+10000000000", "text": 'a "quoted"\nline', "id": "1.a"}
        try:
            json.loads(template.render(sample))
        except ValueError as error:
            raise ValueError(f"FEEDBACK_SMS_TEMPLATE: not JSON once filled in ({error})") from None
    return template


@dataclass(frozen=True)
class HttpGateway:
    url: str
    token: str
    template: Template | None

    def body(self, to: str, text: str, message_id: str) -> tuple[bytes, str]:
        """(body, content type) of one message."""
        values = {"to": to, "text": text, "id": message_id}
        if self.template is None:
            return json.dumps(values, ensure_ascii=False).encode(), "application/json"
        return self.template.render(values), self.template.content_type

    async def send(self, to: str, text: str, message_id: str) -> None:
        body, content_type = self.body(to, text, message_id)
        headers = {"Content-Type": f"{content_type}; charset=utf-8"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        async with (
            httpx.AsyncClient(
                timeout=TIMEOUT, follow_redirects=False, trust_env=False, verify=tls.client_context()
            ) as client,
            client.stream("POST", self.url, content=body, headers=headers) as response,
        ):
            await read_at_most(response, MAX_ANSWER)
        if 200 <= response.status_code < 300:
            return
        if response.status_code in REFUSED:
            raise GiveUp(f"the gateway refused the message: HTTP {response.status_code}")
        raise RuntimeError(f"the gateway answered HTTP {response.status_code}")


@cache
def gateway_for(url: str, token: str, template: str) -> HttpGateway | None:
    """The gateway of these settings (made once), or None when they are unusable (said once in the log)."""
    try:
        if urlsplit(url).scheme.lower() not in ("http", "https"):
            raise ValueError(f"FEEDBACK_SMS_URL: {url!r} is not an http:// or https:// URL")
        return HttpGateway(url, token, parse_template(template))
    except ValueError as error:
        log.error("SMS is off: %s", error)
        return None


@hookimpl
def sms_gateway(settings: Settings) -> HttpGateway | None:
    if not settings.sms_url:
        return None
    return gateway_for(settings.sms_url, settings.sms_token, settings.sms_template)
