"""The plugin manager: built-in plugins by name, then third-party entry points (group "feedback").

Each app builds its own manager from its settings (`build_plugin_manager`), so two apps in one
process may hold different plugin sets; nothing is loaded when this module is imported. Hooks are
called through pluggy (`pm.hook.<name>(...)`), which honours `firstresult` from the hookspec and
`wrapper=True` implementations. Isolation is per implementation: at registration each
implementation's function is wrapped so that an exception is recorded under its plugin's name and
becomes a None result (which pluggy skips), and the other implementations still run.
"""

from __future__ import annotations

import functools
import importlib
import importlib.machinery
import importlib.util
import inspect
import logging
import sys
import threading
import traceback
from collections import Counter
from collections.abc import Callable, Generator, Iterable
from pathlib import Path
from typing import Any

import pluggy

from feedback import hookspecs, i18n
from feedback.settings import Settings

log = logging.getLogger("feedback.plugins")

# Built-in behaviour is ordinary plugin modules, so any plugin can override or block it. The package
# of built-in plugins lists its own modules (`BUILTINS`), so the core names none of their rules.
BUILTIN_PACKAGE = "feedback_plugins"
CORE_PLUGINS = ("feedback.web.live", "feedback.sms_hooks")


def default_plugins() -> tuple[str, ...]:
    """The module names registered before any third party's: the built-in plugins, then the core's."""
    return (*importlib.import_module(BUILTIN_PACKAGE).BUILTINS, *CORE_PLUGINS)


# Hooks whose results the core resolves later with `await_me_maybe` (a callable or an awaitable):
# that deferred work is isolated too, and a failure in it recorded under the plugin's name.
DEFERRED_HOOKS = frozenset({"startup", "track_event"})


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


class PluginManager(pluggy.PluginManager):
    """pluggy's manager for the "feedback" hooks, with every implementation isolated.

    `failures` counts what raised, per plugin and hook, for this manager (so for one app) only."""

    def __init__(self) -> None:
        super().__init__("feedback")
        self.failures = PluginFailures()
        self.add_hookspecs(hookspecs)

    def register(self, plugin: object, name: str | None = None) -> str | None:
        registered = super().register(plugin, name)
        if registered is not None:
            for caller in self.get_hookcallers(plugin) or ():
                for impl in caller.get_hookimpls():
                    if impl.plugin is plugin:
                        # HookImpl keeps the argument names it read from the original function, so
                        # pluggy calls the isolating wrapper with exactly the arguments it would have.
                        impl.function = isolate(impl, caller.name, self.failures)  # type: ignore[misc]
        return registered

    def has_impls(self, hook_name: str) -> bool:
        """Whether any plugin implements a hook (lets the hot path skip building its arguments)."""
        return bool(getattr(self.hook, hook_name).get_hookimpls())


def isolate(impl: pluggy.HookImpl, hook: str, failures: PluginFailures) -> Callable[..., Any]:
    """The function pluggy calls instead of `impl.function`: the same, but a failure is recorded
    under the plugin's name and never reaches the caller or the other implementations."""
    if impl.wrapper:
        return _isolated_wrapper(impl.function, impl.plugin_name, hook, failures)
    if impl.hookwrapper:
        return _isolated_old_wrapper(impl.function, impl.plugin_name, hook, failures)
    function, plugin, deferred = impl.function, impl.plugin_name, hook in DEFERRED_HOOKS

    @functools.wraps(function)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            result = function(*args, **kwargs)
        except Exception as error:  # noqa: BLE001 - a plugin must never take the core down
            failures.record(plugin, hook, error)
            return None  # pluggy skips None: the next implementation answers a firstresult hook
        if deferred and (callable(result) or inspect.isawaitable(result)):
            return _Resolved(result, plugin, hook, failures)
        return result

    return call


class _Resolved:
    """A plugin's deferred answer, awaited with its failure recorded under the plugin's name. Closed
    before it is awaited (a hand-over cancelled part-way), it closes the plugin's coroutine too, which
    would otherwise be dropped unawaited and warned of."""

    __slots__ = ("value", "plugin", "hook", "failures")

    def __init__(self, value: Any, plugin: str, hook: str, failures: PluginFailures) -> None:
        self.value, self.plugin, self.hook, self.failures = value, plugin, hook, failures

    def __await__(self) -> Generator[Any, None, Any]:
        return self._resolve().__await__()

    async def _resolve(self) -> Any:
        try:
            return await await_me_maybe(self.value)
        except Exception as error:  # noqa: BLE001 - a plugin must never take the core down
            self.failures.record(self.plugin, self.hook, error)
            return None

    def close(self) -> None:
        if inspect.iscoroutine(self.value):
            self.value.close()


def _isolated_wrapper(function: Callable[..., Any], plugin: str, hook: str, failures: PluginFailures) -> Callable:
    """A `wrapper=True` implementation, isolated: if it raises before or after its `yield`, the
    failure is recorded and the result of the implementations inside it passes through unchanged."""

    @functools.wraps(function)
    def call(*args: Any, **kwargs: Any) -> Generator[None, Any, Any]:
        try:
            teardown = function(*args, **kwargs)
            next(teardown)
        except Exception as error:  # noqa: BLE001 - StopIteration too: a wrapper that never yields
            failures.record(plugin, hook, error)
            return (yield)
        try:
            inner = yield
        except BaseException as error:
            # The implementations inside raised (a core error, not a plugin's): the wrapper sees it, as in pluggy.
            try:
                teardown.throw(error)
            except StopIteration as stop:
                return stop.value
            except BaseException as raised:
                if raised is not error and isinstance(raised, Exception):
                    failures.record(plugin, hook, raised)
                raise error from None
            teardown.close()
            raise
        try:
            teardown.send(inner)
        except StopIteration as stop:
            return stop.value
        except Exception as error:  # noqa: BLE001 - a plugin must never take the core down
            failures.record(plugin, hook, error)
            return inner
        teardown.close()
        failures.record(plugin, hook, RuntimeError("the wrapper yielded more than once"))
        return inner

    return call


def _isolated_old_wrapper(function: Callable[..., Any], plugin: str, hook: str, failures: PluginFailures) -> Callable:
    """An old-style `hookwrapper=True` implementation (it receives a `pluggy.Result`), isolated."""

    @functools.wraps(function)
    def call(*args: Any, **kwargs: Any) -> Generator[None, Any, None]:
        try:
            teardown = function(*args, **kwargs)
            next(teardown)
        except Exception as error:  # noqa: BLE001 - StopIteration too: a wrapper that never yields
            failures.record(plugin, hook, error)
            yield
            return
        outcome = yield
        try:
            teardown.send(outcome)
        except StopIteration:
            return
        except Exception as error:  # noqa: BLE001 - a plugin must never take the core down
            failures.record(plugin, hook, error)
            return
        teardown.close()
        failures.record(plugin, hook, RuntimeError("the wrapper yielded more than once"))

    return call


class PluginFileLoader(importlib.machinery.SourceFileLoader):
    """Runs a plugins-folder file from its source every time it is loaded, never from `__pycache__`:
    Python trusts a cached compile while the file's mtime (in whole seconds) and size are unchanged, so
    a plugin rewritten within the second at the same size (a deployment templating one constant) would
    run its old code. It writes no `__pycache__` into the folder either, which may be read-only."""

    def get_code(self, fullname: str) -> Any:
        return self.source_to_code(self.get_data(self.path), self.path)


def load_plugins_dir(pm: pluggy.PluginManager, folder: str) -> None:
    """Register every `*.py` file of a folder as a plugin named after the file."""
    for path in sorted(Path(folder).glob("*.py")):
        name = f"plugins_dir.{path.stem}"
        if pm.is_blocked(name) or pm.is_blocked(path.stem):
            continue
        spec = importlib.util.spec_from_file_location(name, path, loader=PluginFileLoader(name, str(path)))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # frameworks resolve type hints through the module
        spec.loader.exec_module(module)
        pm.register(module, name=path.stem)


def build_plugin_manager(settings: Settings) -> PluginManager:
    """A fresh manager for one app or one command: the hookspecs, `default_plugins()`, the entry-point
    plugins and the plugins folder, less the blocked ones; their gettext catalogues join the core's."""
    pm = PluginManager()
    for name in settings.block_plugins:
        pm.set_blocked(name)
    for module_name in default_plugins():
        if pm.is_blocked(module_name):
            continue
        pm.register(importlib.import_module(module_name), name=module_name)
    pm.load_setuptools_entrypoints("feedback")
    if settings.plugins_dir:
        load_plugins_dir(pm, settings.plugins_dir)
    # A misspelt hook name in a plugin becomes an error here instead of silence.
    pm.check_pending()
    for folder in flatten(pm.hook.register_translations()):
        i18n.add_locales(folder)
    return pm


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


def describe_plugins(pm: pluggy.PluginManager) -> list[dict[str, Any]]:
    """What `feedback plugins` prints: each loaded plugin and the hooks it implements."""
    described = []
    builtin = default_plugins()
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
                "builtin": name in builtin,
            }
        )
    return described
