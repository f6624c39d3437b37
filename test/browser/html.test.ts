// The web UI's pure parts: HTML escaping, how pages describe changes and durations, the run-list
// filters and the visibility query they make.
import { describe, expect, it } from 'vitest';
import type { RunAction, RunView } from '../../domain/index.js';
import { RunFilters, visibilityQuery } from '../../server/run-queries.js';
import { escapeHtml, html, isHtml, join } from '../../server/ui/html.js';
import type { InboxItem } from '../../server/routes/runs.js';
import { changedObjects, describeChange, formatDuration, formatTime, inboxPage, STAGE_LABELS, whyNoDecision } from '../../server/ui/views.js';

describe('html', () => {
  it('escapes every interpolated string: markup, both quotes and ampersands', () => {
    const evil = `<script>alert("x")</script>' onmouseover='y' & more`;
    expect(html`<p title="${evil}">${evil}</p>`.value).toBe(
      '<p title="&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&#39; onmouseover=&#39;y&#39; &amp; more">&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&#39; onmouseover=&#39;y&#39; &amp; more</p>',
    );
    expect(escapeHtml('&amp;')).toBe('&amp;amp;');
  });

  it('keeps fragments built by html as they are, and escapes strings that only look like HTML', () => {
    const inner = html`<b>${'a<b'}</b>`;
    expect(html`<p>${inner}</p>`.value).toBe('<p><b>a&lt;b</b></p>');
    expect(html`<p>${'<b>not a fragment</b>'}</p>`.value).toBe('<p>&lt;b&gt;not a fragment&lt;/b&gt;</p>');
    expect(isHtml(inner)).toBe(true);
    expect(isHtml({ value: '<b>forged</b>' })).toBe(false);
    expect(() => html`${{ value: '<i>', toString: () => '<i>' } as never}`).toThrow(TypeError);
  });

  it('renders lists item by item, numbers as text, and nothing for null, undefined and false', () => {
    expect(html`<ul>${['<a>', html`<li>b</li>`, 3]}</ul>`.value).toBe('<ul>&lt;a&gt;<li>b</li>3</ul>');
    expect(html`[${null}${undefined}${false}]`.value).toBe('[]');
    expect(html`${0}`.value).toBe('0');
    expect(join(['a<', html`<br>`, 'b'], ', ').value).toBe('a&lt;, <br>, b');
  });

  it('refuses a plain object rather than printing [object Object]', () => {
    expect(() => html`${{ a: 1 } as never}`).toThrow(TypeError);
  });
});

const account = { system: 'scim', id: 'u-123', display: 'Jo <Contractor>' };
const disable: RunAction = { id: 'act_0000000000000001', type: 'DisableAccount', target: account, reversible: true, preState: { active: true }, postState: { active: false } };
const remove: RunAction = {
  id: 'act_0000000000000002',
  type: 'RemoveGroupMembership',
  target: account,
  group: { system: 'scim', id: 'g-9', display: 'admins & <co>' },
  reversible: true,
  preState: { member: true },
  postState: { member: false },
  decision: 'approve',
};

describe('run page helpers', () => {
  it('describes each action as before → after, naming the group and escaping its name', () => {
    expect(describeChange(disable).value).toContain('active: <del>true</del><span class="arrow">→</span><ins>false</ins>');
    expect(describeChange(remove).value).toContain('member of admins &amp; &lt;co&gt;: <del>true</del>');
  });

  it('describes credentials and policies too, and lists every object a plan touches with its immutable id once', () => {
    const role = { system: 'aws', id: 'AROA123', name: 'deploy', kind: 'role' as const, display: 'deploy' };
    const policy = { system: 'aws', id: 'arn:aws:iam::1:policy/Admin', name: 'arn:aws:iam::1:policy/Admin', display: 'Admin' };
    const actions = [
      { id: 'act_0000000000000003', type: 'DeactivateCredential', target: role, credential: { id: 'AKIA1' }, reversible: true, preState: { active: true }, postState: { active: false } },
      { id: 'act_0000000000000004', type: 'DetachPolicy', target: role, policy, reversible: true, preState: { attached: true }, postState: { attached: false } },
      { id: 'act_0000000000000005', type: 'AttachQuarantinePolicy', target: role, policy: { ...policy, id: 'arn:q', display: 'Quarantine' }, reversible: true, preState: { attached: false }, postState: { attached: true } },
    ] as RunAction[];
    expect(actions.map((a) => describeChange(a).value.replace(/<[^>]+>/g, ''))).toEqual(['credential AKIA1 active: true→false', 'Admin attached: true→false', 'Quarantine attached: false→true']);
    expect(changedObjects([disable, remove, ...actions]).map((o) => [o.kind, o.id])).toEqual([
      ['account', 'u-123'],
      ['group', 'g-9'],
      ['role', 'AROA123'],
      ['credential', 'AKIA1'],
      ['policy', 'arn:aws:iam::1:policy/Admin'],
      ['policy', 'arn:q'],
    ]);
  });

  it('formats durations for people', () => {
    expect([formatDuration(12), formatDuration(4_230), formatDuration(185_000), formatDuration(2 * 3600_000 + 3 * 60_000)]).toEqual(['12 ms', '4.2 s', '3 min 5 s', '2 h 3 min']);
    expect(formatTime('2025-05-01T12:00:03.123Z').value).toBe('<time datetime="2025-05-01T12:00:03.123Z">2025-05-01 12:00:03 UTC</time>');
  });

  it('says why someone may not decide, by the same rules as mayDecide', () => {
    const view = {
      status: 'awaiting_approval',
      requestedBy: 'alice',
      plan: { digest: 'a'.repeat(64), observedAt: '2025-05-01T12:00:00Z', actions: [disable] },
      decision: { approverRoles: ['approver'] },
      approvals: [{ approver: 'bob', decision: 'approve', at: '2025-05-01T12:01:00Z', channel: 'web' }],
      openApproval: {
        subject: 'plan',
        digest: 'a'.repeat(64),
        requestedBy: 'alice',
        requiredApprovals: 2,
        approverRoles: ['approver'],
        approvals: [{ approver: 'bob', decision: 'approve', at: '2025-05-01T12:01:00Z', channel: 'web' }],
        expiresAt: null,
      },
    } as unknown as RunView;
    expect(whyNoDecision(view, { name: 'alice', roles: ['approver'] })).toMatch(/separation of duties/);
    expect(whyNoDecision(view, { name: 'bob', roles: ['approver'] })).toMatch(/already decided/);
    expect(whyNoDecision(view, { name: 'oscar', roles: ['operator'] })).toMatch(/needs one of the roles: approver/);
    expect(whyNoDecision(view, { name: 'carol', roles: ['approver'] })).toBeUndefined();
    expect(whyNoDecision({ ...view, status: 'completed' }, { name: 'carol', roles: ['approver'] })).toMatch(/completed/);
    // A rollback awaiting approval: its requester (an operator) may not approve it; the run's requester may.
    const rollback = { ...view, openApproval: { ...view.openApproval!, subject: 'rollback' as const, requestedBy: 'olga', approvals: [] } };
    expect(whyNoDecision(rollback, { name: 'olga', roles: ['operator', 'approver'] })).toMatch(/You requested this rollback/);
    expect(whyNoDecision(rollback, { name: 'alice', roles: ['approver'] })).toBeUndefined();
  });
});

describe('the inbox page', () => {
  const item = (stage: string | null, subject: 'plan' | 'rollback' = 'plan'): InboxItem => ({
    runId: `run_${'1'.repeat(32)}`,
    playbook: 'deprovision-account',
    alert: { source: 'siem', kind: 'account.orphaned', severity: 'critical', subject: 'jo<smith>' },
    requestedBy: 'alice',
    subject,
    planDigest: 'a'.repeat(64),
    actions: 3,
    approvals: 1,
    required: 2,
    approverRoles: ['approver'],
    stage,
    expiresAt: '2025-05-01T12:00:00Z',
  });
  const ctx = { ui: '/ui', identity: { name: 'bob', roles: ['approver' as const] }, csrf: 't', devSignIn: false };
  const row = (page: string) => /<tr data-run=[\s\S]*?<\/tr>/.exec(page)?.[0].replace(/<[^>]+>/g, ' ').replace(/\s+/g, ' ') ?? '';

  it('shows each approval stage in words, the 80% reminder as expiring, with the approvals so far and the deadline', () => {
    expect(Object.keys(STAGE_LABELS)).toEqual(['waiting', 'reminded_50', 'reminded_80', 'escalated', 'approved']);
    for (const [stage, words] of [['waiting', 'waiting'], ['reminded_50', 'reminded: 50%'], ['reminded_80', 'expiring'], ['escalated', 'escalated']] as const) {
      const page = inboxPage(ctx, [item(stage)]).value;
      expect(page).toContain(`data-stage="${stage}"`);
      expect(row(page)).toContain(words);
    }
    const page = inboxPage(ctx, [item('reminded_80')]).value;
    expect(row(page)).toContain('1 of 2');
    expect(row(page)).toContain('2025-05-01 12:00:00 UTC');
    expect(page).toContain('jo&lt;smith&gt;');
  });

  it('marks a rollback, shows a dash for a run without a stage, and says when nothing awaits', () => {
    expect(row(inboxPage(ctx, [item(null, 'rollback')]).value)).toMatch(/\(rollback\).*—/);
    expect(inboxPage(ctx, []).value).toContain('data-testid="inbox-empty"');
  });
});

describe('run list filters', () => {
  it('accepts statuses, known playbooks and plain targets, and treats empty fields as no filter', () => {
    expect(RunFilters.parse({ status: 'completed', playbook: 'deprovision-account', target: 'jo.smith@example.com' })).toEqual({
      status: 'completed',
      playbook: 'deprovision-account',
      target: 'jo.smith@example.com',
    });
    expect(RunFilters.parse({ status: '', playbook: '', target: '  ' })).toEqual({});
  });

  it('refuses unknown statuses and playbooks, unknown fields, and targets that could leave their quotes', () => {
    for (const bad of [{ status: 'done' }, { playbook: 'toString' }, { target: "x' OR '1'='1" }, { target: 'a b' }, { target: 'x'.repeat(257) }, { sort: 'asc' }]) {
      expect(RunFilters.safeParse(bad).success, JSON.stringify(bad)).toBe(false);
    }
  });

  it('builds the visibility query from checked values only', () => {
    expect(visibilityQuery('cordon-remediation', { status: 'awaiting_approval', playbook: 'deprovision-account', target: 'u-123' })).toBe(
      "WorkflowType = 'remediationWorkflow' AND TaskQueue = 'cordon-remediation' AND CordonStatus = 'awaiting_approval' AND CordonPlaybook = 'deprovision-account' AND CordonTargets = 'u-123'",
    );
    expect(() => visibilityQuery('q', { target: "x'" })).toThrow();
    // A task queue name that is not plain is left out rather than quoted wrongly.
    expect(visibilityQuery("odd'queue")).toBe("WorkflowType = 'remediationWorkflow'");
  });
});
