// The UI's pages, as functions from data to HTML. Every value reaches the page through `html`, which
// escapes it; there is no script on any page.
import { actionChange, ApprovalStage, isTerminal, RunStatus, type Identity, type JournalEntry, type Role, type RunAction, type RunSummary, type RunView } from '../../domain/index.js';
import { Severity } from '../../domain/alert.js';
import type { InboxItem } from '../routes/runs.js';
import { html, type Html, type HtmlValue } from './html.js';
import type { Flash } from './session.js';

/** What every page needs to know about the request. */
export interface PageContext {
  /** The path the UI is reached at, e.g. `/ui` (or `/cordon/ui` behind a proxy that strips `/cordon`). */
  ui: string;
  identity?: Identity | undefined;
  /** A CSRF token for the page's forms (sign out, decide). */
  csrf?: string | undefined;
  devSignIn: boolean;
  flash?: Flash | undefined;
}

type Tone = 'ok' | 'bad' | 'wait' | 'neutral';

const statusTone: Record<RunStatus, Tone> = {
  observing: 'neutral',
  planning: 'neutral',
  deciding: 'neutral',
  awaiting_approval: 'wait',
  executing: 'neutral',
  verifying: 'neutral',
  compensating: 'wait',
  paused: 'wait',
  rolling_back: 'wait',
  completed: 'ok',
  dry_run_completed: 'ok',
  rejected: 'bad',
  expired: 'bad',
  denied: 'bad',
  compensated: 'bad',
  needs_human: 'bad',
  failed: 'bad',
  cancelled: 'neutral',
  rolled_back: 'neutral',
  partially_rolled_back: 'neutral',
};

/** A run status for people: `awaiting_approval` → "awaiting approval". */
export function statusLabel(status: RunStatus): string {
  return status.replaceAll('_', ' ');
}

function badge(status: RunStatus | null): Html {
  if (!status) return html`<span class="badge">unknown</span>`;
  return html`<span class="badge ${statusTone[status]}" data-status="${status}">${statusLabel(status)}</span>`;
}

/** An ISO timestamp as `2025-05-01 12:00:03 UTC`. */
export function formatTime(iso: string | null | undefined): Html {
  if (!iso) return html`<span class="muted">—</span>`;
  const text = iso.replace('T', ' ').replace(/(\.\d+)?Z$/, ' UTC');
  return html`<time datetime="${iso}">${text}</time>`;
}

/** A duration for people: `850 ms`, `4.2 s`, `3 min 5 s`, `2 h 3 min`. */
export function formatDuration(ms: number): string {
  if (ms < 0) return '—';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const s = Math.round(ms / 1000);
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

function roles(list: readonly Role[]): string {
  return list.length > 0 ? list.join(', ') : 'no role';
}

/** The page around the content: navigation, who is signed in, the flash message. */
export function layout(ctx: PageContext, title: string, body: HtmlValue): Html {
  const who = ctx.identity
    ? html`<div class="who"><span>Signed in as <strong data-testid="user">${ctx.identity.name}</strong> <span class="muted">(${roles(ctx.identity.roles)})</span></span>
        <form method="post" action="${ctx.ui}/logout"><input type="hidden" name="_csrf" value="${ctx.csrf}"><button type="submit">Sign out</button></form></div>`
    : html`<div class="who"><a href="${ctx.ui}/login">Sign in</a></div>`;
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title} · Cordon</title>
<link rel="stylesheet" href="${ctx.ui}/static/cordon.css">
</head>
<body>
<header class="top"><a class="brand" href="${ctx.ui}/">Cordon</a>
<nav>${ctx.identity ? html`<a href="${ctx.ui}/">Inbox</a><a href="${ctx.ui}/runs">Runs</a>` : ''}</nav>${who}</header>
${ctx.devSignIn ? html`<div class="dev-banner">Development sign-in is on: this is the embedded default, not a production setup.</div>` : ''}
<main>
${ctx.flash ? html`<div class="flash ${ctx.flash.kind}" role="status" data-testid="flash">${ctx.flash.text}</div>` : ''}
${body}
</main>
</body>
</html>`;
}

/** An error page: what went wrong and where to go from here. */
export function errorPage(ctx: PageContext, status: number, title: string, message: string): Html {
  return layout(
    ctx,
    title,
    html`<section><h1>${title}</h1><p data-testid="error">${message}</p><p class="muted">HTTP ${status}</p><p><a href="${ctx.ui}/">Back to the inbox</a></p></section>`,
  );
}

/** The sign-in page: the organisation's provider, and the dev identities when that sign-in is on. */
export function loginPage(ctx: PageContext, options: { oidc: boolean; next: string; problem?: string | undefined }): Html {
  const next = encodeURIComponent(options.next);
  return layout(
    ctx,
    'Sign in',
    html`<section class="signin"><h1>Sign in to Cordon</h1>
${options.problem ? html`<div class="flash error" data-testid="error">${options.problem}</div>` : ''}
${ctx.identity ? html`<p>You are signed in as <strong>${ctx.identity.name}</strong>. <a href="${ctx.ui}/">Go to your inbox</a>.</p>` : ''}
${options.oidc ? html`<p class="option"><a class="button primary" id="oidc-login" href="${ctx.ui}/login/oidc?next=${next}">Sign in with your organisation's account</a></p>` : ''}
${ctx.devSignIn ? html`<p class="option"><a id="dev-login" href="${ctx.ui}/dev-login?next=${next}">Sign in as a development identity</a></p>` : ''}
${!options.oidc && !ctx.devSignIn ? html`<p>No sign-in is configured on this server.</p>` : ''}
</section>`,
  );
}

/** The development sign-in: one button per dev identity. */
export function devLoginPage(ctx: PageContext, identities: Readonly<Record<string, readonly Role[]>>, next: string): Html {
  const names = Object.keys(identities).sort();
  return layout(
    ctx,
    'Development sign-in',
    html`<section class="signin"><h1>Development sign-in</h1>
<p class="muted">Pick one of the embedded default's identities. This page exists only when the development sign-in is on.</p>
<form method="post" action="${ctx.ui}/dev-login">
<input type="hidden" name="_csrf" value="${ctx.csrf}">
<input type="hidden" name="next" value="${next}">
<div class="who-list">${names.map((name) => html`<button type="submit" name="name" value="${name}">${name} <span class="muted">(${roles(identities[name] ?? [])})</span></button>`)}</div>
</form></section>`,
  );
}

function runLink(ctx: PageContext, runId: string): Html {
  return html`<a class="mono" href="${ctx.ui}/runs/${runId}">${runId}</a>`;
}

/** How an approval stage reads in the inbox and on the run page. */
export const STAGE_LABELS: Record<ApprovalStage, string> = {
  waiting: 'waiting',
  reminded_50: 'reminded: 50% of the window passed',
  reminded_80: 'expiring: reminded at 80% of the window',
  escalated: 'escalated',
  approved: 'approved',
};

function stageLabel(stage: string | null): Html {
  if (stage === null) return html`<span class="muted">—</span>`;
  const parsed = ApprovalStage.safeParse(stage);
  const tone: Tone = stage === 'reminded_80' || stage === 'escalated' ? 'bad' : stage === 'reminded_50' ? 'wait' : 'neutral';
  return html`<span class="badge ${tone}" data-stage="${stage}">${parsed.success ? STAGE_LABELS[parsed.data] : stage}</span>`;
}

/** The inbox: runs (and rollbacks) awaiting the signed-in person's decision, with where each approval stands. */
export function inboxPage(ctx: PageContext, runs: readonly InboxItem[]): Html {
  const identity = ctx.identity!;
  const body =
    identity.roles.length === 0
      ? html`<p data-testid="no-role">Your account has no Cordon role, so there is nothing for you to decide or see here. Ask an administrator for one.</p>`
      : runs.length === 0
        ? html`<p class="muted" data-testid="inbox-empty">Nothing awaits your decision.</p>`
        : html`<table data-testid="inbox"><thead><tr><th>Run</th><th>Alert</th><th>Subject</th><th>Requested by</th><th>Actions</th><th>Approvals</th><th>Stage</th><th>Expires</th></tr></thead><tbody>
${runs.map(
  (item) => html`<tr data-run="${item.runId}"><td>${runLink(ctx, item.runId)}${item.subject === 'rollback' ? html` <span class="muted">(rollback)</span>` : ''}</td><td>${item.alert.kind} <span class="muted">(${item.alert.severity}, ${item.alert.source})</span></td>
<td>${item.alert.subject}</td><td>${item.requestedBy}</td><td>${item.actions}</td>
<td>${item.approvals} of ${item.required}</td><td>${stageLabel(item.stage)}</td><td>${formatTime(item.expiresAt)}</td></tr>`,
)}</tbody></table>`;
  return layout(ctx, 'Inbox', html`<h1>Awaiting your decision</h1><section>${body}</section>`);
}

/** The runs list with its filters. */
export function runsPage(
  ctx: PageContext,
  options: {
    filters: {
      status?: string | undefined;
      playbook?: string | undefined;
      target?: string | undefined;
      source?: string | undefined;
      severity?: string | undefined;
      since?: string | undefined;
      until?: string | undefined;
    };
    playbooks: readonly string[];
    runs: readonly RunSummary[];
    limit: number;
    problem?: string | undefined;
  },
): Html {
  const { filters } = options;
  const form = html`<form class="filters" method="get" action="${ctx.ui}/runs">
<label>Status <select name="status"><option value="">any</option>${RunStatus.options.map((s) => html`<option value="${s}"${s === filters.status ? html` selected` : ''}>${statusLabel(s)}</option>`)}</select></label>
<label>Playbook <select name="playbook"><option value="">any</option>${options.playbooks.map((p) => html`<option value="${p}"${p === filters.playbook ? html` selected` : ''}>${p}</option>`)}</select></label>
<label>Target (account id or userName) <input type="text" name="target" value="${filters.target ?? ''}" maxlength="256" pattern="[A-Za-z0-9._@:\\-]{1,256}"></label>
<label>Alert source <input type="text" name="source" value="${filters.source ?? ''}" maxlength="200" pattern="[A-Za-z0-9 ._@:/+\\-]{1,200}"></label>
<label>Severity <select name="severity"><option value="">any</option>${Severity.options.map((s) => html`<option value="${s}"${s === filters.severity ? html` selected` : ''}>${s}</option>`)}</select></label>
<label>Started since <input type="text" name="since" value="${filters.since ?? ''}" placeholder="2026-01-31T09:00:00Z"></label>
<label>until <input type="text" name="until" value="${filters.until ?? ''}" placeholder="ISO 8601, with a zone"></label>
<button type="submit" class="primary">Filter</button> <a href="${ctx.ui}/runs">Clear</a>
</form>`;
  const table =
    options.runs.length === 0
      ? html`<p class="muted" data-testid="runs-empty">No run matches.</p>`
      : html`<table data-testid="runs"><thead><tr><th>Run</th><th>Status</th><th>Playbook</th><th>Targets</th><th>Severity</th><th>Source</th><th>Started</th><th>Ended</th></tr></thead><tbody>
${options.runs.map(
  (run) => html`<tr data-run="${run.runId}"><td>${runLink(ctx, run.runId)}</td><td>${badge(run.status)}</td><td>${run.playbook ?? '—'}</td>
<td class="mono">${run.targets.join(', ')}</td><td>${run.severity ?? '—'}</td><td>${run.alertSource ?? '—'}</td><td>${formatTime(run.startedAt)}</td><td>${formatTime(run.closedAt)}</td></tr>`,
)}</tbody></table>
${options.runs.length >= options.limit ? html`<p class="muted">Showing the newest ${options.limit}; narrow the filters to see others.</p>` : ''}`;
  return layout(
    ctx,
    'Runs',
    html`<h1>Runs</h1><section>${form}</section>${options.problem ? html`<div class="flash error" data-testid="error">${options.problem}</div>` : ''}<section>${table}</section>`,
  );
}

/** One action's change as "what: before → after", e.g. `active: true → false`, `member of admins: true → false`. */
export function describeChange(action: RunAction): Html {
  const { what, before, after } = actionChange(action);
  return html`<span class="change" data-testid="change">${what}: <del>${String(before)}</del><span class="arrow">→</span><ins>${String(after)}</ins></span>`;
}

function actionTitle(action: RunAction): Html {
  switch (action.type) {
    case 'DisableAccount':
      return html`Disable account`;
    case 'RemoveGroupMembership':
      return html`Remove from group <strong>${action.group.display}</strong> <span class="muted mono">(group id ${action.group.id})</span>`;
    case 'DeactivateCredential':
      return html`Deactivate credential <span class="mono">${action.credential.id}</span>`;
    case 'AttachQuarantinePolicy':
      return html`Attach quarantine policy <strong>${action.policy.display}</strong> <span class="muted mono">(policy id ${action.policy.id})</span>`;
    case 'DetachPolicy':
      return html`Detach policy <strong>${action.policy.display}</strong> <span class="muted mono">(policy id ${action.policy.id})</span>`;
  }
}

interface ChangedObject {
  kind: string;
  system: string;
  id: string;
  display: string;
}

/** The objects a plan changes or names, each with its immutable id (display names are for people only). */
export function changedObjects(actions: readonly RunAction[]): ChangedObject[] {
  const objects = new Map<string, ChangedObject>();
  const add = (kind: string, system: string, id: string, display: string) => {
    if (!objects.has(`${kind}/${system}/${id}`)) objects.set(`${kind}/${system}/${id}`, { kind, system, id, display });
  };
  for (const action of actions) {
    const account = action.target;
    add(account.kind === 'role' ? 'role' : account.kind === 'service' ? 'service account' : 'account', account.system, account.id, account.display);
    switch (action.type) {
      case 'DisableAccount':
        break;
      case 'RemoveGroupMembership':
        add('group', action.group.system, action.group.id, action.group.display);
        break;
      case 'DeactivateCredential':
        add('credential', account.system, action.credential.id, action.credential.id);
        break;
      case 'AttachQuarantinePolicy':
      case 'DetachPolicy':
        add('policy', action.policy.system, action.policy.id, action.policy.display);
        break;
    }
  }
  return [...objects.values()];
}

/** Why the signed-in person may not decide on this run, or undefined when they may (the same rules as `mayDecide`). */
export function whyNoDecision(view: RunView, identity: Identity): string | undefined {
  const open = view.openApproval;
  if (view.status !== 'awaiting_approval' || !open) return `No decision is open: the run is ${statusLabel(view.status)}.`;
  const what = open.subject === 'plan' ? 'this run' : 'this rollback';
  if (open.requestedBy === identity.name) return `You requested ${what}, so others must decide on it (separation of duties).`;
  if (open.approvals.some((a) => a.approver === identity.name)) return `You have already decided on ${what}.`;
  if (!identity.roles.some((r) => open.approverRoles.includes(r))) return `Deciding on ${what} needs one of the roles: ${open.approverRoles.join(', ')}.`;
  return undefined;
}

/** The rollbacks operators asked for: what each undid, what drifted, who approved. */
function rollbackSection(view: RunView): Html {
  if (view.rollbacks.length === 0 && !view.rollbackUntil) return html``;
  const window = view.rollbackUntil ? html`<p class="muted">Rollback possible until <span data-testid="rollback-until">${formatTime(view.rollbackUntil)}</span>.</p>` : '';
  const rows = view.rollbacks.map(
    (rb) => html`<tr data-rollback="${rb.id}"><td class="mono">${rb.id}</td><td data-testid="rollback-status">${rb.status.replaceAll('_', ' ')}</td><td>${rb.requestedBy}: ${rb.reason}</td>
<td><ul class="plain">${rb.results.map((r) => html`<li><span class="mono">${r.actionId}</span> ${r.outcome.replaceAll('_', ' ')}${r.detail ? html` <span class="muted">(${r.detail})</span>` : ''}</li>`)}</ul></td>
<td>${rb.decision ? `${rb.decision.outcome} by ${rb.decision.policies.join(', ') || 'no policy'}` : '—'}${rb.approvals.length > 0 ? html`<br><span class="muted">${rb.approvals.map((a) => `${a.decision} by ${a.approver}`).join('; ')}</span>` : ''}</td></tr>`,
  );
  return html`<section id="rollbacks"><h2>Rollbacks</h2>${window}${
    view.rollbacks.length === 0
      ? html`<p class="muted">None asked for.</p>`
      : html`<table><thead><tr><th>Id</th><th>Status</th><th>Asked by</th><th>Actions</th><th>Decision</th></tr></thead><tbody>${rows}</tbody></table>`
  }</section>`;
}

function factList(items: [string, HtmlValue][]): Html {
  return html`<dl class="facts">${items.map(([k, v]) => html`<dt>${k}</dt><dd>${v}</dd>`)}</dl>`;
}

function json(value: unknown): Html {
  return html`<pre>${JSON.stringify(value, null, 2)}</pre>`;
}

function journalRow(entry: JournalEntry, action: RunAction | undefined): Html {
  return html`<tr data-action="${entry.actionId}"><td>${action ? actionTitle(action) : html`<span class="mono">${entry.actionId}</span>`}<br><span class="muted mono">${entry.actionId}</span></td>
<td><span class="badge ${entry.status === 'verified' ? 'ok' : /failed/.test(entry.status) ? 'bad' : 'neutral'}" data-journal-status="${entry.status}">${entry.status.replaceAll('_', ' ')}</span>${entry.changed === false ? html`<br><span class="muted">already in effect</span>` : ''}
${entry.error ? html`<br><span class="flash error">${entry.error.type}: ${entry.error.message}</span>` : ''}</td>
<td>${entry.evidence.length === 0 ? html`<span class="muted">none</span>` : entry.evidence.map((e) => html`<div><strong>${e.kind}</strong> ${formatTime(e.at)}${json(e.observed)}</div>`)}</td></tr>`;
}

/** The run page: alert, targets, plan as changes, decision, approvals, decide form, journal, timeline. */
export function runPage(ctx: PageContext, view: RunView, options: { canDecide: boolean; refusal?: { type: string; message: string } | undefined; now?: number }): Html {
  const identity = ctx.identity!;
  const actions = view.plan?.actions ?? [];
  const byId = new Map(actions.map((a) => [a.id, a]));

  const targets = changedObjects(actions);

  const header = html`<h1>Run <span class="mono">${view.runId}</span> ${badge(view.status)}</h1>
<p class="muted">${view.playbook} · requested by <strong>${view.requestedBy}</strong> · created ${formatTime(view.createdAt)} · updated ${formatTime(view.updatedAt)} · <a href="${ctx.ui}/runs/${view.runId}">refresh</a></p>
${view.pausedReason ? html`<div class="flash error">Paused: ${view.pausedReason === 'kill-switch' ? 'a kill switch is engaged' : 'a budget is spent'}; the run resumes by itself.</div>` : ''}
${view.error ? html`<div class="flash error" data-testid="run-error">${view.error.type}: ${view.error.message}</div>` : ''}
${options.refusal ? html`<div class="flash error" role="alert" data-testid="refusal">Refused — ${options.refusal.type}: ${options.refusal.message}</div>` : ''}`;

  // Fields beyond the common ones (a leaked credential, entitlements, ...) are shown as sent.
  const { source, id: alertId, kind, severity, subject, summary, observedAt, mode, ...details } = view.alert;
  const { system, ...subjectFields } = subject;
  const alert = html`<section id="alert"><h2>Alert</h2>${factList([
    ['kind', kind],
    ['severity', severity],
    ['source', html`${source} <span class="muted mono">(${alertId})</span>`],
    ['subject', html`${system}: ${Object.entries(subjectFields).map(([k, v]) => html`<span class="subject-field">${k} <span class="mono">${String(v)}</span></span> `)}`],
    ['summary', summary ?? html`<span class="muted">—</span>`],
    ['observed', formatTime(observedAt)],
    ['mode', mode ?? 'live'],
    ...Object.entries(details).map(([k, v]): [string, HtmlValue] => [k, json(v)]),
  ])}</section>`;

  const targetSection = html`<section id="targets"><h2>Targets</h2>${
    targets.length === 0
      ? html`<p class="muted">Not observed yet.</p>`
      : html`<table><thead><tr><th>Kind</th><th>Name</th><th>System</th><th>Immutable id</th></tr></thead><tbody>${targets.map(
          (t) => html`<tr><td>${t.kind}</td><td>${t.display}</td><td>${t.system}</td><td class="mono" data-testid="target-id">${t.id}</td></tr>`,
        )}</tbody></table>`
  }</section>`;

  const plan = html`<section id="plan"><h2>Plan</h2>${
    view.plan
      ? html`<p class="muted">Observed ${formatTime(view.plan.observedAt)} · digest <span class="mono" data-testid="plan-digest">${view.plan.digest}</span></p>
<table><thead><tr><th>#</th><th>Action</th><th>On</th><th>Before → after</th><th>Policy</th></tr></thead><tbody>${actions.map(
          (action, i) => html`<tr data-action="${action.id}"><td>${i + 1}</td><td>${actionTitle(action)}<br><span class="muted mono">${action.id}</span></td>
<td>${action.target.display} <span class="muted mono">(${action.target.id})</span></td><td>${describeChange(action)}</td><td>${action.decision ?? '—'}</td></tr>`,
        )}</tbody></table>`
      : html`<p class="muted">No plan yet.</p>`
  }</section>`;

  const d = view.decision;
  const decision = html`<section id="decision"><h2>Policy decision</h2>${
    d
      ? html`${factList([
          ['outcome', html`<strong data-testid="outcome">${d.outcome}</strong>`],
          ['deciding policies', d.policies.length > 0 ? html`<ul class="plain">${d.policies.map((p) => html`<li><code data-testid="policy">${p}</code></li>`)}</ul>` : html`<span class="muted">none matched</span>`],
          ['policy set hash', html`<span class="mono">${d.policySetHash}</span>`],
          ['reasons', d.reasons.length > 0 ? html`<ul class="plain">${d.reasons.map((r) => html`<li>${r}</li>`)}</ul>` : html`<span class="muted">—</span>`],
          ...(d.outcome === 'approve'
            ? ([
                ['approvals needed', html`${d.requiredApprovals} from ${d.approverRoles.join(', ')}`],
                ['rejection rule', d.rejectionRule],
                ['approval expires', formatTime(d.approvalExpiresAt)],
                ['approval stage', stageLabel(d.approvalStage)],
                ['escalation', d.escalation ? `after ${formatDuration(d.escalation.afterMs)} to ${d.escalation.roles.join(', ')}` : 'none'],
              ] as [string, HtmlValue][])
            : []),
        ])}
<h2>Guardrails</h2>${factList([
          ['mode', `${d.guardrails.mode} (playbook autonomy: ${d.guardrails.autonomy})`],
          ['objects changed', `${d.guardrails.targets}${d.guardrails.population !== null ? ` of ${d.guardrails.population} accounts` : ''}`],
          [
            'max targets per run',
            d.guardrails.maxTargetsPerRun
              ? `${d.guardrails.maxTargetsPerRun.count}${d.guardrails.maxTargetsPerRun.percentOfPopulation !== undefined ? ` or ${d.guardrails.maxTargetsPerRun.percentOfPopulation}% of the population` : ''}`
              : 'no cap',
          ],
          [
            'budgets',
            d.guardrails.budgets.length > 0
              ? html`<ul class="plain">${d.guardrails.budgets.map((b) => html`<li>${b.name}: ${b.used} of ${b.limit} ${b.action} per ${formatDuration(b.windowMs)}</li>`)}</ul>`
              : 'none',
          ],
          [
            'kill switches',
            d.guardrails.killSwitches.length > 0
              ? html`<ul class="plain">${d.guardrails.killSwitches.map((k) => html`<li>${k.scope.kind}${k.scope.kind === 'global' ? '' : ` ${k.scope.name}`}: ${k.engaged ? 'engaged' : 'released'} by ${k.actor} (${k.reason})</li>`)}</ul>`
              : 'none engaged',
          ],
          ['guardrails hash', html`<span class="mono">${d.guardrails.guardrailsHash}</span>`],
        ])}`
      : html`<p class="muted">Not decided yet.</p>`
  }</section>`;

  const approvedCount = view.approvals.filter((a) => a.decision === 'approve').length;
  const approvals = html`<section id="approvals"><h2>Approvals ${d && d.outcome === 'approve' ? html`<span class="muted" data-testid="approval-count">(${approvedCount} of ${d.requiredApprovals})</span>` : ''}</h2>${
    view.approvals.length === 0
      ? html`<p class="muted">None yet.</p>`
      : html`<table><thead><tr><th>Approver</th><th>Decision</th><th>When</th><th>Channel</th><th>Comment</th></tr></thead><tbody>${view.approvals.map(
          (a) => html`<tr data-approver="${a.approver}"><td>${a.approver}</td><td>${a.decision}</td><td>${formatTime(a.at)}</td><td>${a.channel}</td><td>${a.comment ?? ''}</td></tr>`,
        )}</tbody></table>`
  }${
    view.voidedApprovals.length > 0
      ? html`<p class="muted">Voided by a changed plan: ${view.voidedApprovals.map((a) => `${a.approver} (${a.decision}, plan ${a.planDigest.slice(0, 12)}…)`).join('; ')}</p>`
      : ''
  }</section>`;

  const why = whyNoDecision(view, identity);
  const open = view.openApproval;
  const openRollback = open?.subject === 'rollback' ? view.rollbacks.at(-1) : undefined;
  const decide =
    options.canDecide && view.plan && open
      ? html`<section id="decide"><h2>Your decision</h2>
<form class="decide" method="post" action="${ctx.ui}/runs/${view.runId}/decision">
<input type="hidden" name="_csrf" value="${ctx.csrf}">
<input type="hidden" name="planDigest" value="${open.digest}">
${
  openRollback
    ? html`<p class="muted">You decide on rollback ${openRollback.id} (digest <span class="mono">${open.digest}</span>), asked by ${openRollback.requestedBy}: ${openRollback.reason}. It undoes exactly these actions of the plan above: <span class="mono">${openRollback.actions.filter((id) => !openRollback.results.some((r) => r.actionId === id)).join(', ')}</span>.</p>`
    : html`<p class="muted">You decide on plan <span class="mono">${open.digest}</span>: exactly the ${view.plan.actions.length} actions above.</p>`
}
<label>Comment (optional) <textarea name="comment" maxlength="2000"></textarea></label>
<div class="buttons"><button type="submit" name="decision" value="approve" class="approve">Approve</button><button type="submit" name="decision" value="reject" class="reject">Reject</button></div>
</form></section>`
      : html`<section id="decide"><h2>Your decision</h2><p class="muted" data-testid="no-decision">${why ?? 'You cannot decide on this run.'}</p></section>`;

  const journal = html`<section id="journal"><h2>Journal</h2>${
    view.journal.length === 0
      ? html`<p class="muted">Nothing executed.</p>`
      : html`<table><thead><tr><th>Action</th><th>Status</th><th>Evidence</th></tr></thead><tbody>${view.journal.map((entry) => journalRow(entry, byId.get(entry.actionId)))}</tbody></table>`
  }</section>`;

  return layout(ctx, `Run ${view.runId}`, html`${header}<div class="cards">${alert}${decision}</div>${targetSection}${plan}${approvals}${rollbackSection(view)}${decide}${journal}${timelineSection(view, options.now ?? Date.now())}`);
}

/** Each step with how long the run stayed in it: until the next step, or until now while it is the current one. */
function timelineSection(view: RunView, now: number): Html {
  const steps = view.timeline;
  const rows = steps.map((step, i) => {
    const next = steps[i + 1];
    const started = Date.parse(step.at);
    const terminalStep = !next && isTerminal[view.status];
    const duration = next ? formatDuration(Date.parse(next.at) - started) : terminalStep ? '—' : `${formatDuration(now - started)} so far`;
    return html`<tr data-step="${step.status}"><td>${badge(step.status)}</td><td>${formatTime(step.at)}</td><td data-testid="duration">${duration}</td></tr>`;
  });
  const first = steps[0];
  const last = steps[steps.length - 1];
  const total = first && last && isTerminal[view.status] ? html`<p class="muted">Total: ${formatDuration(Date.parse(last.at) - Date.parse(first.at))}</p>` : '';
  return html`<section id="timeline"><h2>Timeline</h2><table><thead><tr><th>Step</th><th>Since</th><th>Duration</th></tr></thead><tbody>${rows}</tbody></table>${total}</section>`;
}
