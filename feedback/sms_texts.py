"""What an SMS says, in the recipient's language (vi, ru, zh, en; catalogues `locales/*/LC_MESSAGES/sms.po`).

Short on purpose: a text in Vietnamese, Russian or Chinese travels as UCS-2, 70 characters a segment, so
every sentence costs. The words a reply may use to opt out (`STOP_WORDS`) are the ones the texts name.
"""

from __future__ import annotations

from feedback.i18n import gettext_for

# Replies that opt a number out, compared in upper case with surrounding spaces and punctuation removed.
STOP_WORDS = frozenset({"STOP", "DỪNG", "DUNG", "СТОП", "退订", "TD"})
# What a call-back SMS quotes of the action's record at most (characters each).
MAX_QUOTE = 300


def invitation_text(unit: str, scale: int, link: str, lang: str) -> str:
    """The invitation: who asks, how to answer by reply or by the link, how to opt out."""
    _ = gettext_for(lang)
    return _(
        "%(unit)s: how satisfied were you with our service? Reply with a number from 1 (worst) to %(scale)s"
        " (best), or answer here: %(link)s Reply STOP to opt out."
    ) % {"unit": unit, "scale": scale, "link": link}


def _quote(text: str, lang: str) -> str:
    """Staff's words on one line, at most MAX_QUOTE characters, ending a sentence."""
    text = " ".join(text.split())
    if len(text) > MAX_QUOTE:
        text = text[: MAX_QUOTE - 1].rstrip() + "…"
    return text if text.endswith((".", "!", "?", "…", "。", "！", "？")) else text + ("。" if lang == "zh" else ".")


def callback_text(unit: str, receipt: str, result: str | None, explanation: str | None, lang: str) -> str:
    """The "what we did" message of a closed action, from its latest ISO 10.2 record."""
    _ = gettext_for(lang)
    parts = [
        _("%(unit)s: we looked into your feedback (receipt %(receipt)s) and the case is now closed.")
        % {"unit": unit, "receipt": receipt}
    ]
    if result:
        parts.append(_("What we did: %(result)s") % {"result": _quote(result, lang)})
    if explanation:
        parts.append(_("Our explanation: %(explanation)s") % {"explanation": _quote(explanation, lang)})
    parts.append(_("Thank you."))
    return ("" if lang == "zh" else " ").join(parts)


def is_stop(text: str) -> bool:
    """Whether a reply asks for no more messages."""
    word = text.strip().strip(".!。！ ").upper()
    return word in STOP_WORDS
