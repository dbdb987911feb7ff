"""The recipe format: a definition whose front matter has ``steps:`` chains agents as a DAG.

A recipe is kept next to the agents, in any definition location. Each step names an agent, the
steps it ``needs`` (which must finish first), a ``task`` template, and optionally ``for_each``, a
glob that fans the step out to one run per matching file. This module reads ``steps`` from the
YAML nodes of a front matter and checks everything that can be judged from the file alone: ids,
keys, unknown and cyclic ``needs``, templates that name a step which is not upstream, globs. Which
agents exist is the registry's question (``agents.registry``); how many files a glob matches is
the workspace index's. Running recipes is ``execution.recipes``.

Templates are filled in one pass (``fill``), so a step's output that happens to contain
``{{steps.x.output}}`` is never expanded again: no template bomb through model output.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import yaml

from agentls.agents.yaml_values import kind as _kind

if TYPE_CHECKING:
    from agentls.agents.definition import Problem, Span

STEP_KEYS: tuple[str, ...] = ("id", "agent", "needs", "task", "for_each", "max_parallel")
"""The keys a step may have."""

STEP_ID = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
"""What a step id looks like: it is used in templates (``{{steps.<id>.output}}``) and edit ids."""

MAX_STEPS = 100
"""The most steps one recipe may have (a fan-out step counts once)."""

TEMPLATE = re.compile(r"\{\{\s*([A-Za-z_][\w.-]*)\s*\}\}")
"""A ``{{name}}`` placeholder in a step's task (names may hold dots: ``steps.plan.output``)."""

STEP_FIELDS: tuple[str, ...] = ("output", "edits")
"""What ``{{steps.<id>.<field>}}`` may ask for."""


@dataclass(frozen=True)
class RecipeStep:
    """One step of a recipe, as written (templates unfilled)."""

    id: str
    agent: str
    needs: tuple[str, ...] = ()
    task: str | None = None
    """The task template; None: the recipe's own task."""
    for_each: str | None = None
    """A glob (workspace-relative, gitignore syntax): one run per matching file."""
    max_parallel: int | None = None
    """How many of a fan-out step's runs may be in flight at once (None: the engine's limit)."""
    agent_span: Span | None = None
    """Where ``agent`` is written, for the registry's unknown-agent problem."""
    for_each_span: Span | None = None
    """Where ``for_each`` is written, for the fan-out limit problem."""


def fill(template: str, values: Mapping[str, str]) -> str:
    """``template`` with each known ``{{name}}`` replaced, in one pass; unknown ones stay."""

    def one(m: re.Match[str]) -> str:
        value = values.get(m.group(1))
        return m.group(0) if value is None else value

    return TEMPLATE.sub(one, template)


def upstream(steps: tuple[RecipeStep, ...], step_id: str) -> set[str]:
    """Every step that must finish before ``step_id`` starts (its ``needs``, transitively)."""
    by_id = {s.id: s for s in steps}
    seen: set[str] = set()
    todo = list(by_id[step_id].needs) if step_id in by_id else []
    while todo:
        current = todo.pop()
        if current in seen or current not in by_id:
            continue
        seen.add(current)
        todo.extend(by_id[current].needs)
    return seen


class _StepsReader:
    """Reads the ``steps`` node: values and positioned problems, never an exception."""

    def __init__(
        self, span_of: Callable[[yaml.Node], Span], construct: Callable[[yaml.Node], Any]
    ) -> None:
        self.span_of = span_of
        self.construct = construct
        self.problems: list[Problem] = []
        self.named: dict[str, None] = {}
        """Every step id that could be read, also of steps with other errors: ``needs`` and
        templates naming them are not reported as naming no step."""

    def error(self, node: yaml.Node, message: str) -> None:
        self.problems.append(self.span_of(node).problem(message))

    def read(self, node: yaml.Node) -> tuple[RecipeStep, ...] | None:
        if not isinstance(node, yaml.SequenceNode) or not node.value:
            what = "an empty list" if isinstance(node, yaml.SequenceNode) else None
            self.error(
                node,
                "steps must be a list of steps, each with an `id` and an `agent`, not "
                f"{what or _kind(self.construct(node))}",
            )
            return None
        if len(node.value) > MAX_STEPS:
            self.error(node, f"a recipe may have at most {MAX_STEPS} steps, not {len(node.value)}")
            return None
        # Every step is read and checked, so one broken step does not hide the others' problems.
        read = [self.step(item) for item in node.value]
        pairs = [(s, item) for s, item in zip(read, node.value, strict=True) if s is not None]
        steps = tuple(s for s, _ in pairs)
        if not self.check_ids([item for _, item in pairs], list(steps)):
            return None  # the checks below key steps by id
        needs_nodes = {s.id: _child(item, "needs") or item for s, item in pairs}
        task_nodes = {s.id: _child(item, "task") or item for s, item in pairs}
        ok = self.check_needs(steps, needs_nodes) and self.check_templates(steps, task_nodes)
        return steps if ok and len(steps) == len(read) else None

    def step(self, node: yaml.Node) -> RecipeStep | None:
        if not isinstance(node, yaml.MappingNode):
            self.error(
                node,
                "each step must be a mapping with `id` and `agent`, not "
                f"{_kind(self.construct(node))}",
            )
            return None
        values: dict[str, tuple[yaml.Node, Any]] = {}
        ok = True
        for key_node, value_node in node.value:
            key = self.construct(key_node)
            if not isinstance(key, str) or key not in STEP_KEYS:
                close = difflib.get_close_matches(str(key), STEP_KEYS, n=1, cutoff=0.7)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                self.error(
                    key_node,
                    f"unknown step key {key!r} (a step has: {', '.join(STEP_KEYS)}){hint}",
                )
                ok = False
                continue
            if key in values:
                self.error(key_node, f"duplicate step key {key!r}")
                ok = False
                continue
            values[key] = (value_node, self.construct(value_node))
        for required in ("id", "agent"):
            if required not in values:
                self.error(node, f"this step has no `{required}`")
                ok = False
        step_id = self.string(values.get("id"), "id")
        if step_id is not None and not STEP_ID.fullmatch(step_id):
            assert "id" in values
            self.error(
                values["id"][0],
                f"step id {step_id!r} must start with a letter and hold only letters, digits, "
                "'-' and '_' (templates name it: {{steps.<id>.output}})",
            )
            step_id = None
        if step_id is not None:
            self.named[step_id] = None
        agent = self.string(values.get("agent"), "agent")
        task = self.string(values.get("task"), "task")
        for_each = self.string(values.get("for_each"), "for_each")
        if for_each is not None:
            from agentls.agents.definition import check_glob  # the same rules as `context`

            reason = check_glob(for_each)
            if reason is None and for_each.startswith("!"):
                reason = "for_each selects files; it cannot start with '!'"
            if reason is not None:
                self.error(values["for_each"][0], f"for_each glob {for_each!r}: {reason}")
                for_each = None
                ok = False
        needs = self.needs(values.get("needs"))
        max_parallel = None
        if "max_parallel" in values:
            mp_node, mp = values["max_parallel"]
            if isinstance(mp, bool) or not isinstance(mp, int) or mp <= 0:
                self.error(mp_node, f"max_parallel must be a positive whole number, not {mp!r}")
                ok = False
            else:
                max_parallel = mp
        if step_id is None or agent is None or needs is None or not ok:
            return None
        if ("task" in values and task is None) or ("for_each" in values and for_each is None):
            return None
        return RecipeStep(
            id=step_id,
            agent=agent,
            needs=needs,
            task=task,
            for_each=for_each,
            max_parallel=max_parallel,
            agent_span=self.span_of(values["agent"][0]),
            for_each_span=self.span_of(values["for_each"][0]) if "for_each" in values else None,
        )

    def string(self, entry: tuple[yaml.Node, Any] | None, key: str) -> str | None:
        if entry is None:
            return None
        node, value = entry
        if not isinstance(value, str) or not value.strip():
            shown = "an empty string" if isinstance(value, str) else _kind(value)
            self.error(node, f"step {key} must be a non-empty string, not {shown}")
            return None
        return value if key == "task" else value.strip()

    def needs(self, entry: tuple[yaml.Node, Any] | None) -> tuple[str, ...] | None:
        if entry is None:
            return ()
        node, value = entry
        if isinstance(value, str):
            return (value.strip(),)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.error(node, f"needs must be a step id or a list of step ids, not {_kind(value)}")
            return None
        return tuple(dict.fromkeys(v.strip() for v in value))

    def check_ids(self, nodes: list[yaml.Node], steps: list[RecipeStep]) -> bool:
        seen: dict[str, int] = {}
        ok = True
        for n, (node, step) in enumerate(zip(nodes, steps, strict=True)):
            if step.id in seen:
                id_node = _child(node, "id") or node
                self.error(
                    id_node,
                    f"another step is already called {step.id!r} (step {seen[step.id] + 1})",
                )
                ok = False
            else:
                seen[step.id] = n
        return ok

    def check_needs(self, steps: tuple[RecipeStep, ...], nodes: Mapping[str, yaml.Node]) -> bool:
        ids = list(self.named)
        ok = True
        for step in steps:
            node = nodes[step.id]
            for need in step.needs:
                if need == step.id:
                    self.error(node, f"step {step.id!r} cannot need itself")
                    ok = False
                elif need not in ids:
                    close = difflib.get_close_matches(need, ids, n=1, cutoff=0.6)
                    hint = f"; did you mean {close[0]!r}?" if close else ""
                    self.error(
                        node,
                        f"needs {need!r}: no step has that id (steps: {', '.join(ids)}){hint}",
                    )
                    ok = False
        if not ok:
            return False
        cycle = _find_cycle(steps)
        if cycle is not None:
            node = nodes[cycle[0]]
            self.error(
                node,
                "these steps need each other in a cycle (each needs the next), so none could "
                "start: " + " -> ".join([*cycle, cycle[0]]),
            )
            return False
        return True

    def check_templates(
        self, steps: tuple[RecipeStep, ...], nodes: Mapping[str, yaml.Node]
    ) -> bool:
        ok = True
        ids = {s.id for s in steps}
        for step in steps:
            if step.task is None:
                continue
            node = nodes[step.id]
            before = upstream(steps, step.id)
            for m in TEMPLATE.finditer(step.task):
                name = m.group(1)
                if name == "item" and step.for_each is None:
                    self.error(node, "{{item}} is only set in a step with for_each")
                    ok = False
                if not name.startswith("steps."):
                    continue
                parts = name.split(".")
                if len(parts) != 3 or parts[2] not in STEP_FIELDS:
                    self.error(
                        node,
                        f"{{{{{name}}}}}: write {{{{steps.<id>.output}}}} or "
                        "{{steps.<id>.edits}}",
                    )
                    ok = False
                elif parts[1] not in self.named:
                    self.error(node, f"{{{{{name}}}}} names no step of this recipe")
                    ok = False
                elif parts[1] in ids and parts[1] not in before:
                    self.error(
                        node,
                        f"{{{{{name}}}}}: step {parts[1]!r} is not upstream of {step.id!r}, so its "
                        f"{parts[2]} is not known when {step.id!r} starts; add it to needs",
                    )
                    ok = False
        return ok


def _child(node: yaml.Node, key: str) -> yaml.Node | None:
    """The value node of ``key`` in a mapping node, if any."""
    if not isinstance(node, yaml.MappingNode):
        return None
    for key_node, value_node in node.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
            found: yaml.Node = value_node
            return found
    return None


def _find_cycle(steps: tuple[RecipeStep, ...]) -> list[str] | None:
    """One cycle of ``needs`` (as step ids in order), or None when the steps form a DAG."""
    needs = {s.id: s.needs for s in steps}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(step_id: str) -> list[str] | None:
        state[step_id] = 1
        path.append(step_id)
        for need in needs.get(step_id, ()):
            if state.get(need) == 1:
                return path[path.index(need) :]
            if need not in state:
                found = visit(need)
                if found is not None:
                    return found
        path.pop()
        state[step_id] = 2
        return None

    for s in steps:
        if s.id not in state:
            found = visit(s.id)
            if found is not None:
                return found
    return None


def read_steps(
    node: yaml.Node,
    span_of: Callable[[yaml.Node], Span],
    construct: Callable[[yaml.Node], Any],
) -> tuple[tuple[RecipeStep, ...] | None, list[Problem]]:
    """The steps of a ``steps:`` node, and every problem found (None when there is an error)."""
    reader = _StepsReader(span_of, construct)
    steps = reader.read(node)
    return steps, reader.problems
