/**
 * How agents appear in the Agents view and the agent picker. Pure: it maps the server's
 * `agentls.agents.list` entries to labels, descriptions, icons and tooltips, and never imports
 * `vscode`; `views.ts` turns these rows into tree items.
 */

import type { AgentInfo, AgentProblem } from "./protocol";

/** One row of the Agents view. */
export interface AgentRow {
  name: string;
  label: string;
  description: string;
  tooltip: string;
  /** A codicon id; invalid agents get a warning icon. */
  icon: "hubot" | "warning" | "list-ordered";
  /** The definition file, opened on click. */
  uri: string;
  valid: boolean;
  /** Context value for menus: only valid agents offer "Run This Agent…". */
  contextValue: "agent" | "invalidAgent";
}

/** The text of a problem, whichever shape the server used. */
export function problemText(problem: AgentProblem): string {
  if (typeof problem === "string") {
    return problem;
  }
  const where = problem.line !== undefined ? `line ${problem.line + 1}: ` : "";
  return `${where}${problem.message}`;
}

function backendText(agent: AgentInfo): string {
  if (agent.kind === "recipe") {
    const steps = agent.steps ?? [];
    return `recipe · ${steps.length} step${steps.length === 1 ? "" : "s"}: ${steps.map((s) => s.agent).join(", ")}`;
  }
  if (!agent.backend && !agent.model) {
    return "default backend";
  }
  return [agent.backend, agent.model].filter((s) => s).join(" · ");
}

/** The Agents view row of one agent. */
export function agentRow(agent: AgentInfo): AgentRow {
  const problems = agent.problems.map(problemText);
  const tooltip = [
    agent.name,
    agent.description,
    agent.kind === "recipe" ? `Recipe: ${backendText(agent).replace(/^recipe · /, "")}` : `Backend: ${backendText(agent)}`,
    `Defined in ${agent.source}`,
    ...(agent.valid ? [] : ["Not runnable:", ...problems.map((p) => `• ${p}`)]),
  ].filter((s) => s !== "");
  return {
    name: agent.name,
    label: agent.name,
    description: agent.valid ? agent.description : `invalid: ${problems[0] ?? "see the definition"}`,
    tooltip: tooltip.join("\n"),
    icon: !agent.valid ? "warning" : agent.kind === "recipe" ? "list-ordered" : "hubot",
    uri: agent.uri,
    valid: agent.valid,
    contextValue: agent.valid ? "agent" : "invalidAgent",
  };
}

/** Rows for the view: valid agents first, each group by name. */
export function agentRows(agents: readonly AgentInfo[]): AgentRow[] {
  return [...agents]
    .sort((a, b) => Number(b.valid) - Number(a.valid) || a.name.localeCompare(b.name))
    .map(agentRow);
}

/** One entry of the agent quick pick. */
export interface AgentPick {
  label: string;
  description: string;
  detail: string;
  agent: string;
  valid: boolean;
}

/** Quick-pick entries: description and validity visible before choosing. */
export function agentPicks(agents: readonly AgentInfo[]): AgentPick[] {
  return agentRows(agents).map((row) => {
    const agent = agents.find((a) => a.name === row.name) as AgentInfo;
    return {
      label: `$(${row.icon}) ${row.name}`,
      description: backendText(agent),
      detail: row.valid
        ? agent.description || agent.source
        : `Invalid: ${agent.problems.map(problemText).join("; ") || "see the definition"}`,
      agent: row.name,
      valid: row.valid,
    };
  });
}
