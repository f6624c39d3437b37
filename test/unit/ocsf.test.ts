// OCSF 1.x events mapped to alerts: Detection Findings (2004) and Account Changes (3001), and
// unmappable events refused with every missing field named.
import { describe, expect, it } from 'vitest';
import { ocsfToAlert } from '../../server/ocsf.js';

const finding = (patch: Record<string, unknown> = {}) => ({
  class_uid: 2004,
  severity_id: 4,
  time: Date.parse('2026-11-28T09:00:00Z'),
  metadata: { product: { name: 'guardduty', vendor_name: 'AWS' } },
  cloud: { provider: 'AWS' },
  finding_info: { uid: 'f-123', title: 'Access key used from an unknown network', types: ['UnauthorizedAccess', 'credential.leaked', 'credential.used-by-others'] },
  evidences: [{ user: { name: 'ci-bot', uid: 'AIDAEXAMPLE', credential_uid: 'AKIAEXAMPLE0000001' } }],
  ...patch,
});

describe('OCSF intake', () => {
  it('maps a Detection Finding of a leaked key to a credential.leaked alert', () => {
    const mapped = ocsfToAlert(finding());
    expect(mapped).toEqual({
      ok: true,
      alert: {
        source: 'guardduty',
        id: 'f-123',
        kind: 'credential.leaked',
        severity: 'high',
        subject: { system: 'aws', id: 'AIDAEXAMPLE', userName: 'ci-bot' },
        summary: 'Access key used from an unknown network',
        observedAt: '2026-11-28T09:00:00.000Z',
        credential: { id: 'AKIAEXAMPLE0000001', usedByOthers: true },
      },
    });
  });

  it('maps a Detection Finding about a directory account, with the system from the user domain', () => {
    const mapped = ocsfToAlert(
      finding({ cloud: undefined, severity_id: 2, finding_info: { uid: 'f-9', types: ['account.orphaned'] }, evidences: [{ actor: { user: { name: 'dana.reyes', domain: 'SCIM' } } }] }),
    );
    expect(mapped.ok && mapped.alert).toMatchObject({ kind: 'account.orphaned', severity: 'low', subject: { system: 'scim', userName: 'dana.reyes' } });
  });

  it('maps an anomalous agent role to agent.anomalous with the role kind', () => {
    const mapped = ocsfToAlert(finding({ severity_id: 5, finding_info: { uid: 'f-7', types: ['agent.anomalous'] }, evidences: [{ user: { name: 'llm-agent', type: 'Role' } }] }));
    expect(mapped.ok && mapped.alert).toMatchObject({ kind: 'agent.anomalous', severity: 'critical', subject: { system: 'aws', userName: 'llm-agent', kind: 'role' } });
  });

  it('maps an Account Change that attached a policy to entitlement.excessive removing that policy', () => {
    const mapped = ocsfToAlert({
      class_uid: 3001,
      activity_id: 7,
      severity_id: 3,
      metadata: { uid: 'evt-42', product: { name: 'cloudtrail' } },
      cloud: { provider: 'AWS' },
      user: { name: 'intern', uid: 'AIDAINTERN' },
      policy: { name: 'AdministratorAccess', uid: 'arn:aws:iam::aws:policy/AdministratorAccess' },
    });
    expect(mapped.ok && mapped.alert).toMatchObject({
      kind: 'entitlement.excessive',
      id: 'evt-42',
      severity: 'medium',
      subject: { system: 'aws', id: 'AIDAINTERN', userName: 'intern' },
      entitlements: [{ kind: 'policy', name: 'AdministratorAccess' }],
    });
  });

  it.each([
    ['another class', { class_uid: 1001 }, ['class_uid']],
    ['no severity', finding({ severity_id: 0 }), ['severity_id']],
    ['no product', finding({ metadata: {} }), ['metadata.product.name']],
    ['no handled type', finding({ finding_info: { uid: 'x', types: ['Recon'] } }), ['finding_info.types']],
    ['no finding uid', finding({ finding_info: { types: ['credential.leaked'] } }), ['finding_info.uid']],
    ['no user', finding({ evidences: [] }), ['evidences[].user']],
    ['no system', finding({ cloud: undefined, evidences: [{ user: { name: 'x', credential_uid: 'AKIA1' } }] }), ['user.domain']],
    ['a leaked key without its id', finding({ evidences: [{ user: { name: 'x' } }] }), ['user.credential_uid']],
    ['an account change that is not a policy attachment', { class_uid: 3001, activity_id: 3, severity_id: 3, metadata: { uid: 'e', product: { name: 'p' } }, user: { name: 'u', domain: 'scim' } }, ['activity_id']],
    ['a policy attachment without the policy', { class_uid: 3001, activity_id: 7, severity_id: 3, metadata: { uid: 'e', product: { name: 'p' } }, user: { name: 'u', domain: 'scim' } }, ['policy.name']],
  ])('refuses %s, naming what is missing', (_what, event, fields) => {
    const mapped = ocsfToAlert(event);
    expect(mapped.ok).toBe(false);
    if (mapped.ok) return;
    for (const field of fields) expect(mapped.missing.some((m) => m.startsWith(field))).toBe(true);
  });

  it('reports every missing field at once', () => {
    const mapped = ocsfToAlert({ class_uid: 2004 });
    expect(mapped.ok).toBe(false);
    if (!mapped.ok) expect(mapped.missing.length).toBeGreaterThanOrEqual(4);
  });
});
