"""Copilot's ``handoffs``: the next steps an agent offers once it has answered.

A GitHub Copilot custom agent (``.github/agents/*.agent.md``) may list, in its front matter::

    handoffs:
      - label: Start Implementation      # the button's text
        agent: implementer               # the agent the button switches to
        prompt: Implement the plan above. # text for that agent (optional)
        send: false                      # submit it at once (optional, default false)

agentls reads the same list, so an editor can offer the buttons after a run: the target agent is
run with the prompt as its task, at once when ``send`` is true, else after the user could edit it.
Copilot is lenient here, and so is agentls: an entry that cannot be read (not a mapping, no
``label`` or ``agent``, a ``prompt`` that is not text, a ``send`` that is not a boolean) is left out
with a hint, never an error, and keys agentls does not use (``model``...) are hinted and ignored.
Whether each target exists is a question about the whole workspace, answered by the registry
(``target_problem``); one that does not is a warning, or a hint for Copilot's built-in agents.

This module only reads values and says what is wrong; positions are the caller's (YAML nodes are
handed back with each hint), so it does not depend on the definition parser.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Literal

import yaml

from agentls.agents.yaml_values import kind as _kind

__all__ = ["COPILOT_BUILT_IN_AGENTS", "Handoff", "HandoffsRead", "read_handoffs", "target_problem"]

ENTRY_KEYS: tuple[str, ...] = ("label", "agent", "prompt", "send")
"""The keys of one entry, as Copilot documents them."""

COPILOT_BUILT_IN_AGENTS: frozenset[str] = frozenset({"agent", "ask", "edit", "plan"})
"""Copilot's own agents (Agent, Ask, Edit, Plan), which handoffs may name; lower case."""


@dataclass(frozen=True)
class Handoff:
    """One next step an agent offers: a button labelled ``label`` that runs ``agent``."""

    label: str
    agent: str
    prompt: str = ""
    """The task for ``agent`` (empty: the user types one)."""
    send: bool = False
    """Whether the editor runs ``agent`` at once, or first lets the user edit ``prompt``."""

    def to_dict(self) -> dict[str, Any]:
        """The protocol form (``agentls.agents.list``, run results)."""
        return {"label": self.label, "agent": self.agent, "prompt": self.prompt, "send": self.send}


@dataclass(frozen=True)
class HandoffsRead:
    """What ``read_handoffs`` made of a ``handoffs`` value."""

    handoffs: tuple[Handoff, ...] = ()
    agent_nodes: tuple[yaml.Node, ...] = ()
    """The node of each kept entry's ``agent`` value (same order), where a problem with the target
    is shown."""
    hints: tuple[tuple[yaml.Node, str], ...] = ()
    """What was left out or ignored, each at its node."""


def read_handoffs(node: yaml.Node, value: Any) -> HandoffsRead:
    """Read a front matter's ``handoffs`` (``node`` and its constructed ``value``). Never raises.

    Entries are kept in file order; a second entry with the same label is left out (two buttons
    that read the same would be one too many).
    """
    if not isinstance(value, list) or not isinstance(node, yaml.SequenceNode):
        hint = (
            f"handoffs must be a list of {{label, agent, prompt, send}}, not {_kind(value)}; "
            "agentls ignores it"
        )
        return HandoffsRead(hints=((node, hint),))
    kept: list[Handoff] = []
    agent_nodes: list[yaml.Node] = []
    hints: list[tuple[yaml.Node, str]] = []
    labels: set[str] = set()
    for item_node, item in zip(node.value, value, strict=True):
        entry = _read_entry(item_node, item, hints)
        if entry is None:
            continue
        handoff, agent_node = entry
        if handoff.label in labels:
            hints.append((item_node, f"another handoff is labelled {handoff.label!r}; left out"))
            continue
        labels.add(handoff.label)
        kept.append(handoff)
        agent_nodes.append(agent_node)
    return HandoffsRead(tuple(kept), tuple(agent_nodes), tuple(hints))


def _read_entry(
    node: yaml.Node, item: Any, hints: list[tuple[yaml.Node, str]]
) -> tuple[Handoff, yaml.Node] | None:
    """One entry and the node of its ``agent`` value, or None (with a hint) when unreadable."""
    if not isinstance(item, dict) or not isinstance(node, yaml.MappingNode):
        hints.append(
            (node, f"a handoff must be a mapping with label and agent, not {_kind(item)}; left out")
        )
        return None
    nodes: dict[str, yaml.Node] = {}
    for key_node, value_node in node.value:
        key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
        if isinstance(key, str) and key in ENTRY_KEYS:
            nodes[key] = value_node
        else:
            hints.append((key_node, f"handoff key {key!r} is not one agentls reads; it is ignored"))
    texts: dict[str, str] = {}
    for key in ("label", "agent"):
        text = item.get(key)
        if not isinstance(text, str) or not text.strip():
            why = (
                "is missing"
                if key not in item
                else f"must be a non-empty string, not {_kind(text)}"
            )
            hints.append((nodes.get(key, node), f"handoff {key} {why}; this handoff is left out"))
            return None
        texts[key] = " ".join(text.split())  # a button label and a name are one line
    prompt = item.get("prompt", "")
    if prompt is None:
        prompt = ""
    if not isinstance(prompt, str):
        message = f"handoff prompt must be a string, not {_kind(prompt)}; this handoff is left out"
        hints.append((nodes["prompt"], message))
        return None
    send = item.get("send", False)
    if send is None:
        send = False
    if not isinstance(send, bool):
        message = f"handoff send must be true or false, not {_kind(send)}; this handoff is left out"
        hints.append((nodes["send"], message))
        return None
    handoff = Handoff(texts["label"], texts["agent"], prompt.strip(), send)
    return handoff, nodes["agent"]


Severity = Literal["warning", "hint"]


def target_problem(handoff: Handoff, known: Collection[str]) -> tuple[str, Severity] | None:
    """What is wrong with a handoff's target among the ``known`` agent names, or None.

    A name no agent has is a warning (a typo, or a file missing from the workspace); one of
    Copilot's built-in agents is only a hint: right for Copilot, just not runnable by agentls.
    """
    if handoff.agent in known:
        return None
    label = handoff.label
    if handoff.agent.lower() in COPILOT_BUILT_IN_AGENTS:
        return (
            f"handoff {label!r}: {handoff.agent!r} is one of Copilot's built-in agents; "
            "agentls has no agent by that name, so it cannot run this handoff",
            "hint",
        )
    message = f"handoff {label!r}: no agent named {handoff.agent!r} in this workspace"
    close = sorted(name for name in known if name.lower() == handoff.agent.lower())
    if close:
        message += f"; did you mean {close[0]!r}?"
    return message, "warning"
