"""The plugin manager: built-in plugins by name, then third-party entry points (group "feedback")."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import logging
import sys
import threading
import traceback
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pluggy

from feedback import hookspecs
from feedback.settings import load_settings

log = logging.getLogger("feedback.plugins")

# Built-in behaviour is ordinary plugin modules, so any plugin can override or block it.
DEFAULT_PLUGINS = (
    "feedback_plugins.question_types",
    "feedback_plugins.csat",
    "feedback_plugins.templates",
    "feedback_plugins.criteria_mean",
    "feedback_plugins.quality_rules",
    "feedback_plugins.haochaping_rules",
    "feedback_plugins.vash_kontrol_rules",
    "feedback_plugins.mail",
    "feedback_plugins.webhooks",
    "feedback.web.live",
)


class PluginFailures:
    """Counts hook failures per plugin so they are visible (`/healthz`, `feedback plugins`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.last: dict[str, str] = {}

    def record(self, plugin: str, hook: str, error: BaseException) -> None:
        key = f"{plugin}.{hook}"
        with self._lock:
            self.counts[key] += 1
            self.last[key] = "".join(traceback.format_exception_only(type(error), error)).strip()
        log.error("plugin %s failed in %s", plugin, hook, exc_info=error)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {key: {"count": n, "last": self.last[key]} for key, n in self.counts.items()}


failures = PluginFailures()


def load_plugins_dir(pm: pluggy.PluginManager, folder: str) -> None:
    """Register every `*.py` file of a folder as a plugin named after the file."""
    for path in sorted(Path(folder).glob("*.py")):
        name = f"plugins_dir.{path.stem}"
        if pm.is_blocked(name) or pm.is_blocked(path.stem):
            continue
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # frameworks resolve type hints through the module
        spec.loader.exec_module(module)
        pm.register(module, name=path.stem)


def make_plugin_manager(block: Iterable[str] = (), plugins_dir: str | None = None) -> pluggy.PluginManager:
    """A fresh manager with the hookspecs, DEFAULT_PLUGINS, entry-point plugins and a plugins folder."""
    pm = pluggy.PluginManager("feedback")
    pm.add_hookspecs(hookspecs)
    for name in block:
        pm.set_blocked(name)
    for module_name in DEFAULT_PLUGINS:
        if pm.is_blocked(module_name):
            continue
        pm.register(importlib.import_module(module_name), name=module_name)
    pm.load_setuptools_entrypoints("feedback")
    if plugins_dir:
        load_plugins_dir(pm, plugins_dir)
    # A misspelt hook name in a plugin becomes an error here instead of silence.
    pm.check_pending()
    return pm


_settings = load_settings()
pm = make_plugin_manager(_settings.block_plugins, _settings.plugins_dir)


def block_plugins(names: Iterable[str]) -> None:
    """Switch plugins off by name (the `block_plugins` setting); a blocked plugin is unregistered."""
    for name in names:
        pm.set_blocked(name)


def plugin_name(hookimpl: pluggy.HookImpl) -> str:
    return hookimpl.plugin_name


def call_isolated(hook_name: str, firstresult: bool = False, **kwargs: Any) -> Any:
    """Call a hook implementation by implementation, so one that raises cannot stop the others.

    Returns the first non-None result when `firstresult`, else the list of results. Failures are
    logged and counted in `failures`.
    """
    caller = getattr(pm.hook, hook_name)
    results = []
    # pluggy calls implementations last-registered-first, tryfirst before the rest.
    for impl in reversed(caller.get_hookimpls()):
        if impl.hookwrapper or impl.wrapper:
            continue
        args = {name: kwargs[name] for name in impl.argnames if name in kwargs}
        try:
            result = impl.function(**args)
        except Exception as error:  # noqa: BLE001 - a plugin must never take the core down
            failures.record(impl.plugin_name, hook_name, error)
            continue
        if result is None:
            continue
        if firstresult:
            return result
        results.append(result)
    return None if firstresult else results


async def await_me_maybe(value: Any) -> Any:
    """Resolve a hook result that may be a value, a callable or an awaitable."""
    if callable(value):
        value = value()
    if inspect.isawaitable(value):
        value = await value
    return value


def flatten(results: Iterable[Any]) -> list[Any]:
    """`register_*` results: each implementation returns one item or a list of them."""
    items: list[Any] = []
    for result in results:
        if result is None:
            continue
        if isinstance(result, list | tuple):
            items.extend(result)
        else:
            items.append(result)
    return items


def describe_plugins() -> list[dict[str, Any]]:
    """What `feedback plugins` prints: each loaded plugin and the hooks it implements."""
    described = []
    for name, plugin in sorted(pm.list_name_plugin(), key=lambda item: item[0]):
        if plugin is None:
            continue
        hooks = sorted(caller.name for caller in pm.get_hookcallers(plugin) or [])
        dist = next((d for p, d in pm.list_plugin_distinfo() if p is plugin), None)
        described.append(
            {
                "name": name,
                "hooks": hooks,
                "version": dist.version if dist else None,
                "builtin": name in DEFAULT_PLUGINS,
            }
        )
    return described
