"""Interface text of the kiosk tablet app (`kiosk/`): key -> English msgid.

The server serves `/kiosk/strings.json` as `{lang: {key: gettext_for(lang)(msgid)}}`; the
translations live in `feedback/locales/<locale>/LC_MESSAGES/kiosk.po`. Survey texts (questions,
labels, options) are not here: the survey document carries its own text per language.
`{case}` is a placeholder the app fills in.
"""

from __future__ import annotations

KIOSK_MESSAGES: dict[str, str] = {
    # Enrollment: what the staff member setting up the tablet sees.
    "enroll_title": "Enter the enrollment code",
    "enroll_hint": "Ask a manager for a 6-digit code. It is valid for 15 minutes.",
    "enroll_label": "Enrollment code",
    "enroll_submit": "Connect this tablet",
    "enroll_busy": "Connecting…",
    "enroll_bad_code": "This code is not valid or has expired. Ask for a new one.",
    "enroll_too_many": "Too many wrong codes. Wait a few minutes and try again.",
    "enroll_offline": "The server cannot be reached. Check the network and try again.",
    "enroll_revoked": "This tablet has been disconnected. Enter a new enrollment code.",
    # Rating screen: what the citizen sees.
    "anonymous": "Your answer is anonymous.",
    "case_for": "Rating for case {case}",
    "language": "Language",
    "loading": "Getting ready…",
    "no_survey": "This tablet is not ready yet. Please ask the staff at the counter.",
    # Reasons screen.
    "reasons_title": "Would you like to tell us more?",
    "reasons_hint": "Everything here is optional.",
    "done": "Done",
    # Thank-you screen.
    "thanks_title": "Thank you!",
    "thanks_body": "Your answer has been recorded.",
    # Out of service: the touchpoint was retired, so the tablet takes no more ratings.
    "retired_title": "Ratings are no longer taken here",
    "retired_body": "Thank you. To tell us about your visit, please ask the staff at the counter.",
    # For staff and screen readers: the discreet count in the corner.
    "queue_label": "Answers waiting to be sent",
}
