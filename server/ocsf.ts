import { z } from 'zod';
import { Alert, type Severity } from '../domain/index.js';
import { handledKinds } from '../playbooks/registry.js';

/**
 * OCSF 1.x intake: Detection Finding (class 2004) and Account Change (class 3001) events become
 * Cordon alerts. Only the fields read here are checked; the rest of an event is ignored.
 *
 * Mapping rules:
 * - `id` ← `finding_info.uid` (2004) or `metadata.uid` (3001); `source` ← `metadata.product.name`
 *   (or `metadata.product.vendor_name`); `severity` ← `severity_id` (1-2 low, 3 medium, 4 high,
 *   5-6 critical); `summary` ← `finding_info.title` / `message`; `observedAt` ← `time` (ms).
 * - The Cordon system: `cloud.provider` "AWS" → `aws`; otherwise the user's `domain` (e.g. `scim`,
 *   `ldap`), which names the configured directory.
 * - Subject: the first user found (2004: `evidences[].user`, then `evidences[].actor.user`; 3001:
 *   `user`), by `uid` (the immutable id) and `name`; `type` "Role" or "Service" gives the kind.
 * - Kind, 2004: the first of `finding_info.types` that a Cordon playbook handles (e.g.
 *   `credential.leaked`); a leaked key is the user's `credential_uid`, and the type
 *   `credential.used-by-others` among the types says someone else used it (the owner is quarantined).
 * - Kind, 3001: `activity_id` 7 (Attach Policy) → `entitlement.excessive` removing that `policy`.
 */
const OcsfUser = z.object({
  uid: z.string().min(1).optional(),
  name: z.string().min(1).optional(),
  domain: z.string().min(1).optional(),
  type: z.string().optional(),
  credential_uid: z.string().min(1).optional(),
});
type OcsfUser = z.infer<typeof OcsfUser>;

const OcsfCommon = z.object({
  severity_id: z.int().optional(),
  time: z.number().optional(),
  message: z.string().optional(),
  metadata: z.object({ uid: z.string().optional(), product: z.object({ name: z.string().optional(), vendor_name: z.string().optional() }).optional() }).optional(),
  cloud: z.object({ provider: z.string().optional() }).optional(),
});

const DetectionFinding = OcsfCommon.extend({
  class_uid: z.literal(2004),
  finding_info: z.object({ uid: z.string().optional(), title: z.string().optional(), types: z.array(z.string()).optional() }).optional(),
  evidences: z.array(z.object({ user: OcsfUser.optional(), actor: z.object({ user: OcsfUser.optional() }).optional() })).optional(),
});

const AccountChange = OcsfCommon.extend({
  class_uid: z.literal(3001),
  activity_id: z.int().optional(),
  user: OcsfUser.optional(),
  policy: z.object({ name: z.string().optional(), uid: z.string().optional() }).optional(),
});

/** The OCSF classes Cordon takes. */
export const OcsfEvent = z.discriminatedUnion('class_uid', [DetectionFinding, AccountChange]);

/** An OCSF event as an alert, or what was missing to make one (each entry names the OCSF field). */
export type OcsfMapping = { ok: true; alert: Alert } | { ok: false; missing: string[] };

const SEVERITY: Record<number, Severity> = { 1: 'low', 2: 'low', 3: 'medium', 4: 'high', 5: 'critical', 6: 'critical' };
const ATTACH_POLICY = 7;
const USED_BY_OTHERS = 'credential.used-by-others';

function subjectKind(user: OcsfUser): 'user' | 'role' | 'service' | undefined {
  const type = user.type?.toLowerCase();
  return type === 'role' ? 'role' : type === 'service' ? 'service' : undefined;
}

/** Maps a parsed OCSF event to a Cordon alert (validated with the alert schema). */
export function ocsfToAlert(raw: unknown): OcsfMapping {
  const parsed = OcsfEvent.safeParse(raw);
  if (!parsed.success) {
    const classUid = (raw as { class_uid?: unknown } | null)?.class_uid;
    if (classUid !== 2004 && classUid !== 3001) return { ok: false, missing: ['class_uid: must be 2004 (Detection Finding) or 3001 (Account Change)'] };
    return { ok: false, missing: parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`) };
  }
  const event = parsed.data;
  const missing: string[] = [];
  const severity = event.severity_id !== undefined ? SEVERITY[event.severity_id] : undefined;
  if (!severity) missing.push('severity_id: must be 1 to 6');
  const source = event.metadata?.product?.name ?? event.metadata?.product?.vendor_name;
  if (!source) missing.push('metadata.product.name');

  let kind: string | undefined;
  let id: string | undefined;
  let user: OcsfUser | undefined;
  let summary: string | undefined;
  let entitlements: Alert['entitlements'];
  let usedByOthers = false;
  if (event.class_uid === 2004) {
    usedByOthers = event.finding_info?.types?.includes(USED_BY_OTHERS) ?? false;
    const handled = handledKinds();
    kind = event.finding_info?.types?.find((t) => handled.includes(t));
    if (!kind) missing.push(`finding_info.types: none is a kind Cordon handles (${handled.join(', ')})`);
    id = event.finding_info?.uid;
    if (!id) missing.push('finding_info.uid');
    user = event.evidences?.map((e) => e.user ?? e.actor?.user).find((u) => u !== undefined);
    summary = event.finding_info?.title ?? event.message;
  } else {
    id = event.metadata?.uid;
    if (!id) missing.push('metadata.uid');
    user = event.user;
    summary = event.message;
    if (event.activity_id === ATTACH_POLICY) {
      kind = 'entitlement.excessive';
      const policy = event.policy?.name ?? event.policy?.uid;
      if (policy) entitlements = [{ kind: 'policy', name: policy }];
      else missing.push('policy.name: the policy that was attached');
    } else {
      missing.push(`activity_id: only ${ATTACH_POLICY} (Attach Policy) maps to a remediation`);
    }
  }

  const system = event.cloud?.provider?.toUpperCase() === 'AWS' ? 'aws' : user?.domain?.toLowerCase();
  if (!user) missing.push(event.class_uid === 2004 ? 'evidences[].user' : 'user');
  else {
    if (!system) missing.push('user.domain (the Cordon system) or cloud.provider');
    if (!user.uid && !user.name && !(kind === 'credential.leaked' && user.credential_uid)) missing.push('user.uid or user.name');
    if (kind === 'credential.leaked' && !user.credential_uid) missing.push('user.credential_uid (the leaked key)');
  }
  if (missing.length > 0 || !user) return { ok: false, missing };

  const kindOf = subjectKind(user);
  const candidate = {
    source,
    id,
    kind,
    severity,
    subject: {
      system,
      ...(user.uid ? { id: user.uid } : {}),
      ...(user.name ? { userName: user.name } : {}),
      ...(kindOf ? { kind: kindOf } : {}),
    },
    ...(summary ? { summary: summary.slice(0, 2000) } : {}),
    ...(event.time !== undefined ? { observedAt: new Date(event.time).toISOString() } : {}),
    ...(kind === 'credential.leaked' && user.credential_uid
      ? { credential: { id: user.credential_uid, ...(usedByOthers ? { usedByOthers: true } : {}) } }
      : {}),
    ...(entitlements ? { entitlements } : {}),
  };
  const alert = Alert.safeParse(candidate);
  if (!alert.success) return { ok: false, missing: alert.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`) };
  return { ok: true, alert: alert.data };
}
