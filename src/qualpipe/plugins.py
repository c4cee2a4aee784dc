"""The plugin manager factory and the registry of what plugins contribute.

Nothing happens at import time: :func:`create_manager` adds the hookspecs, registers the
built-in plugins, loads the ``qualpipe`` entry-point group (honouring
``QUALPIPE_LOAD_PLUGINS`` and ``QUALPIPE_DISABLE_PLUGINS``) and checks for misspelt hook
implementations. A plugin that fails to import, has an invalid hook or raises while
registering is set aside and reported by name; unrelated plugins keep working.
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from types import ModuleType, TracebackType
from typing import TYPE_CHECKING, Any, cast

import pluggy

from qualpipe import hookspecs
from qualpipe.errors import PluginError

if TYPE_CHECKING:
    import click

    from qualpipe.datasets import DatasetKind
    from qualpipe.executors.base import ExecutorFactory
    from qualpipe.stage import StageType

ENTRY_POINT_GROUP = "qualpipe"
LOAD_ENV = "QUALPIPE_LOAD_PLUGINS"
DISABLE_ENV = "QUALPIPE_DISABLE_PLUGINS"

#: Built-in plugins, registered through the same hooks as third-party ones.
BUILTIN_PLUGINS = (
    "qualpipe.builtin.kinds",
    "qualpipe.builtin.runner",
    "qualpipe.builtin.executors",
    "qualpipe.builtin.lifecycle",
    "qualpipe.builtin.readers",
    "qualpipe.builtin.ingest",
    "qualpipe.builtin.anonymise",
    "qualpipe.builtin.segment",
    "qualpipe.builtin.codebook",
    "qualpipe.builtin.code",
    "qualpipe.builtin.coders",
    "qualpipe.builtin.human",
    "qualpipe.builtin.theme",
    "qualpipe.builtin.export",
    "qualpipe.builtin.exporters",
)

# Plugins added for the duration of a ``with temporary_plugin(...)`` block (tests).
_temporary: list[tuple[str, object, str]] = []


@dataclass
class PluginInfo:
    """A plugin as ``qualpipe plugins`` shows it."""

    name: str
    version: str
    source: str  # "builtin", "entrypoint" or "temporary"
    distribution: str | None = None
    error: str | None = None
    hooks: list[str] = field(default_factory=list)
    provides: dict[str, list[str]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "source": self.source,
            "distribution": self.distribution,
            "hooks": sorted(self.hooks),
            "provides": {k: sorted(v) for k, v in self.provides.items()},
            "error": self.error,
        }


def _env_list(name: str) -> list[str] | None:
    raw = os.environ.get(name)
    if raw is None:
        return None
    return [item.strip() for item in raw.split(",") if item.strip()]


def _canonical(dist: str) -> str:
    """A distribution name as pip compares it (PEP 503): ``Foo_Bar`` is ``foo-bar``."""
    return re.sub(r"[-_.]+", "-", dist).lower()


@contextmanager
def temporary_plugin(plugin: object, name: str | None = None) -> Iterator[str]:
    """Register ``plugin`` in every manager created inside the block (for tests)."""
    pname = name or getattr(plugin, "__name__", None) or f"plugin-{id(plugin)}"
    version = str(getattr(plugin, "__version__", "0"))
    _temporary.append((pname, plugin, version))
    try:
        yield pname
    finally:
        _temporary.remove((pname, plugin, version))


#: Component families inside stages: family -> (registration hook, "module:Class").
COMPONENT_HOOKS = {
    "reader": ("qualpipe_register_readers", "qualpipe.readers:Reader"),
    "recogniser": (
        "qualpipe_register_recognisers",
        "qualpipe.anonymise.recognisers:Recogniser",
    ),
    "coder": ("qualpipe_register_coders", "qualpipe.coding.coders:Coder"),
    "exporter": ("qualpipe_register_exporters", "qualpipe.exporters:Exporter"),
}


class Registry:
    """Stage types, dataset kinds, executors and components, each with its plugin."""

    def __init__(self) -> None:
        self.stage_types: dict[str, tuple[StageType, PluginInfo]] = {}
        self.kinds: dict[str, tuple[DatasetKind, PluginInfo]] = {}
        self.executors: dict[str, tuple[ExecutorFactory, PluginInfo]] = {}
        self.components: dict[str, dict[str, tuple[Any, PluginInfo]]] = {
            family: {} for family in COMPONENT_HOOKS
        }

    def component_versions(self, family: str) -> dict[str, str]:
        """``{name: "plugin@version/component version"}`` for fingerprints."""
        return {
            name: f"{info.name}@{info.version}/{getattr(obj, 'version', '')}"
            for name, (obj, info) in sorted(self.components.get(family, {}).items())
        }

    def _add(self, table: dict[str, Any], what: str, name: str, obj: Any, info: PluginInfo) -> None:
        if name in table:
            other = table[name][1]
            raise PluginError(
                info.name,
                f"{what} {name!r} is already provided by plugin {other.name!r}; "
                f"uninstall one of them or set {DISABLE_ENV}={info.name}",
            )
        table[name] = (obj, info)
        info.provides.setdefault(what, []).append(name)

    def stage_type(self, name: str) -> StageType | None:
        entry = self.stage_types.get(name)
        return entry[0] if entry else None

    def kind(self, name: str) -> DatasetKind | None:
        entry = self.kinds.get(name)
        return entry[0] if entry else None


class Manager:
    """A configured pluggy manager plus what each plugin is and provides."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager("qualpipe")
        self.pm.add_hookspecs(hookspecs)
        self.plugins: dict[str, PluginInfo] = {}
        self._registry: Registry | None = None

    @property
    def hook(self) -> Any:
        return self.pm.hook

    @property
    def failures(self) -> list[PluginInfo]:
        return [p for p in self.plugins.values() if p.error]

    # -- loading ---------------------------------------------------------------
    def _register(self, obj: object, info: PluginInfo) -> None:
        if info.name in self.plugins and not self.plugins[info.name].error:
            first = self.plugins[info.name]
            info.error = f"a plugin named {info.name!r} is already loaded from {first.source}"
            self.plugins[f"{info.name} ({info.source})"] = info
            return
        self.plugins[info.name] = info
        try:
            self.pm.register(obj, name=info.name)
        except Exception as exc:  # pluggy.PluginValidationError and friends
            info.error = f"invalid hook implementation: {exc}"
            # Older pluggy leaves the hooks validated before the bad one registered.
            if self.pm.get_plugin(info.name) is obj:
                self.pm.unregister(name=info.name)
            return
        info.hooks = _hook_names(self.pm, obj)

    def load(self) -> None:
        disabled = set(_env_list(DISABLE_ENV) or [])
        allowed = _env_list(LOAD_ENV)
        # Entry points match by name, distributions by name as pip compares them.
        disabled_dists = {_canonical(d) for d in disabled}
        allowed_dists = {_canonical(a) for a in allowed or []}
        from qualpipe import __version__

        for modname in BUILTIN_PLUGINS:
            short = modname.rsplit(".", 1)[-1]
            if modname in disabled or f"builtin.{short}" in disabled:
                continue
            info = PluginInfo(modname, __version__, "builtin", "qualpipe")
            try:
                module = importlib.import_module(modname)
            except Exception as exc:
                info.error = f"failed to import: {type(exc).__name__}: {exc}"
                self.plugins[modname] = info
                continue
            self._register(module, info)

        for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            dist = ep.dist.name if ep.dist else None
            if ep.name in disabled or (dist and _canonical(dist) in disabled_dists):
                continue
            if (
                allowed is not None
                and ep.name not in allowed
                and not (dist and _canonical(dist) in allowed_dists)
            ):
                continue
            version = ep.dist.version if ep.dist else "0"
            info = PluginInfo(ep.name, version, "entrypoint", dist)
            try:
                obj = ep.load()
            except Exception as exc:
                info.error = (
                    f"failed to import {ep.value!r}: {type(exc).__name__}: {exc} "
                    f"(set {DISABLE_ENV}={ep.name} to skip it)"
                )
                self.plugins.setdefault(ep.name, info)
                continue
            self._register(obj, info)

        for name, obj, version in list(_temporary):
            if name in disabled:
                continue
            self._register(obj, PluginInfo(name, version, "temporary"))

        self._check_pending()

    def _check_pending(self) -> None:
        # Like pm.check_pending(), but a misspelt hook sets aside only its own plugin.
        # Every marked implementation counts, with or without the ``qualpipe_`` prefix.
        for hook_name, caller in list(vars(self.pm.hook).items()):
            if not isinstance(caller, pluggy.HookCaller) or caller.has_spec():
                continue
            for impl in caller.get_hookimpls():
                if impl.optionalhook:
                    continue
                info = self.plugins.get(impl.plugin_name)
                if info is not None and info.error is None:
                    info.error = (
                        f"unknown hook {hook_name!r}: no such hook in qualpipe's contract "
                        "(misspelt? see docs/hooks.md)"
                    )
                self.pm.unregister(name=impl.plugin_name)

    # -- registration ------------------------------------------------------------
    def _call_each(
        self, hook_name: str, on_plugin: Callable[[PluginInfo], None], **kwargs: Any
    ) -> None:
        """Call ``hook_name`` on each plugin separately, so failures are attributed."""
        caller = getattr(self.pm.hook, hook_name)
        for impl in reversed(caller.get_hookimpls()):
            info = self.plugins[impl.plugin_name]
            if info.error:
                continue
            args = {k: v for k, v in kwargs.items() if k in impl.argnames}
            on_plugin(info)
            try:
                impl.function(**args)
            except PluginError:
                raise
            except Exception as exc:
                raise PluginError(
                    info.name, f"{hook_name} raised {type(exc).__name__}: {exc}"
                ) from exc

    def plugin_in_traceback(self, tb: TracebackType | None) -> str | None:
        """Name the plugin whose code raised: the innermost traceback frame it owns."""
        modules: dict[str, str] = {}
        for name, plugin in self.pm.list_name_plugin():
            if plugin is None:
                continue
            mod = plugin.__name__ if isinstance(plugin, ModuleType) else type(plugin).__module__
            modules[mod] = name
        found = None
        while tb is not None:
            mod = tb.tb_frame.f_globals.get("__name__", "")
            if mod in modules:
                found = modules[mod]
            tb = tb.tb_next
        return found

    @property
    def registry(self) -> Registry:
        """Stage types, kinds and executors from every loaded plugin (built once)."""
        if self._registry is None:
            self._registry = self._build_registry()
        return self._registry

    def _build_registry(self) -> Registry:
        from qualpipe.datasets import DatasetKind
        from qualpipe.stage import StageType

        reg = Registry()
        current: list[PluginInfo] = []
        for plugin in self.plugins.values():  # a rebuild after an error starts afresh
            for what in ("dataset kind", "stage type", "executor", *COMPONENT_HOOKS):
                plugin.provides.pop(what, None)

        def register_kind(kind: DatasetKind) -> None:
            if not isinstance(kind, DatasetKind):
                raise PluginError(current[0].name, f"registered {kind!r}, not a DatasetKind")
            reg._add(reg.kinds, "dataset kind", kind.name, kind, current[0])

        def register_stage(stage_type: StageType) -> None:
            if not isinstance(stage_type, StageType):
                raise PluginError(current[0].name, f"registered {stage_type!r}, not a StageType")
            reg._add(reg.stage_types, "stage type", stage_type.name, stage_type, current[0])

        def register_executor(name: str, factory: ExecutorFactory) -> None:
            reg._add(reg.executors, "executor", name, factory, current[0])

        def component_registrar(family: str, cls: type) -> Callable[[Any], None]:
            def register(obj: Any) -> None:
                if not isinstance(obj, cls):
                    raise PluginError(current[0].name, f"registered {obj!r}, not a {cls.__name__}")
                name: str = cast(Any, obj).name
                reg._add(reg.components[family], family, name, obj, current[0])

            return register

        hooks: list[tuple[str, Callable[..., None]]] = [
            ("qualpipe_register_dataset_kinds", register_kind),
            ("qualpipe_register_stages", register_stage),
            ("qualpipe_register_executors", register_executor),
        ]
        for family, (hook_name, target) in COMPONENT_HOOKS.items():
            modname, _, clsname = target.partition(":")
            cls = getattr(importlib.import_module(modname), clsname)
            hooks.append((hook_name, component_registrar(family, cls)))
        for hook_name, cb in hooks:
            self._call_each(
                hook_name, lambda info: current.__setitem__(slice(None), [info]), register=cb
            )

        for name, (stage_type, info) in reg.stage_types.items():
            for family in stage_type.components:
                if family not in COMPONENT_HOOKS:
                    raise PluginError(
                        info.name,
                        f"stage type {name!r} uses unknown component family {family!r} "
                        f"(known: {', '.join(COMPONENT_HOOKS)})",
                    )

        for name, (stage_type, info) in reg.stage_types.items():
            kinds_used = [i.kind for i in stage_type.inputs] + [o.kind for o in stage_type.outputs]
            for kind_name in kinds_used:
                if kind_name not in reg.kinds:
                    raise PluginError(
                        info.name,
                        f"stage type {name!r} uses unknown dataset kind {kind_name!r} "
                        f"(known: {', '.join(sorted(reg.kinds))})",
                    )
        return reg

    def add_commands(self, cli: click.Group) -> None:
        """Let every plugin add its CLI commands; a clash is an error naming both."""
        owners: dict[str, str] = dict.fromkeys(cli.commands, "qualpipe")
        caller = self.pm.hook.qualpipe_register_commands
        for impl in reversed(caller.get_hookimpls()):
            info = self.plugins[impl.plugin_name]
            if info.error:
                continue
            before = dict(cli.commands)
            try:
                impl.function(**({"cli": cli} if "cli" in impl.argnames else {}))
            except Exception as exc:
                cli.commands.clear()
                cli.commands.update(before)
                info.error = f"qualpipe_register_commands raised {type(exc).__name__}: {exc}"
                continue
            for name, cmd in cli.commands.items():
                if name in before and before[name] is not cmd:
                    cli.commands[name] = before[name]
                    raise PluginError(
                        info.name,
                        f"command {name!r} is already provided by {owners[name]!r}; "
                        f"set {DISABLE_ENV}={info.name} to use the other one",
                    )
                if name not in before:
                    owners[name] = info.name
                    info.provides.setdefault("command", []).append(name)


def _hook_names(pm: pluggy.PluginManager, plugin: object) -> list[str]:
    callers = pm.get_hookcallers(plugin) or []
    return sorted(c.name for c in callers)


def create_manager() -> Manager:
    """Create a plugin manager with built-ins, entry-point and temporary plugins loaded."""
    manager = Manager()
    manager.load()
    return manager
