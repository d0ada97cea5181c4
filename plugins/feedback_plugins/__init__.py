"""The built-in plugins: survey presets, scoring, quality rules, mail, webhooks, the SMS gateway and exports.

Their own interface texts live in `locales/<locale>/LC_MESSAGES/*.po` beside this file (shipped as
package data); every plugin here that shows text returns that folder from `register_translations`.
"""

from pathlib import Path

LOCALES = Path(__file__).parent / "locales"
# Registered in this order by every plugin manager (`feedback.plugins.build_plugin_manager`), unless blocked.
BUILTINS = (
    "feedback_plugins.question_types",
    "feedback_plugins.csat",
    "feedback_plugins.templates",
    "feedback_plugins.criteria_mean",
    "feedback_plugins.quality_rules",
    "feedback_plugins.haochaping_rules",
    "feedback_plugins.vash_kontrol_rules",
    "feedback_plugins.complaint_rule",
    "feedback_plugins.mail",
    "feedback_plugins.webhooks",
    "feedback_plugins.sms",
    "feedback_plugins.a11_export",
    "feedback_plugins.indicators",
)
