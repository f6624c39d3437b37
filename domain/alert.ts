import { z } from 'zod';

/** Alert severity, lowest first. */
export const Severity = z.enum(['low', 'medium', 'high', 'critical']);
export type Severity = z.infer<typeof Severity>;

/** Severity as a number (low = 1 … critical = 4), for policies that compare severities. */
export const severityRank: Record<Severity, number> = { low: 1, medium: 2, high: 3, critical: 4 };

/** Dotted lowercase alert kind such as `account.orphaned`; which kinds are handled is the playbooks' business. */
export const AlertKind = z
  .string()
  .max(100)
  .regex(/^[a-z][a-z0-9-]*(\.[a-z][a-z0-9-]*)+$/, 'must be dotted lowercase words, e.g. account.orphaned');
export type AlertKind = z.infer<typeof AlertKind>;

/** A configured system of record, such as `scim`. */
export const SystemName = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[a-z][a-z0-9-]*$/, 'must be a lowercase name, e.g. scim');
export type SystemName = z.infer<typeof SystemName>;

// Printable text without control characters: these strings end up in logs, tables and queries.
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const printable = /^[^\u0000-\u001f\u007f]*$/;
const Text = (max: number) => z.string().min(1).max(max).regex(printable, 'must not contain control characters');

/**
 * The identity an alert is about. At least one of `id` (immutable) or `userName` is required, except
 * for a leaked credential, whose owner is found by the credential.
 */
export const AlertSubject = z
  .strictObject({
    system: SystemName,
    id: Text(256).optional(),
    userName: Text(256).optional(),
    /** A person's account (default), an IAM role, or a service account. */
    kind: z.enum(['user', 'role', 'service']).optional(),
  })
;
export type AlertSubject = z.infer<typeof AlertSubject>;

/** `dry-run` observes, plans and decides, records everything, and changes nothing. */
export const RunMode = z.enum(['live', 'dry-run']);
export type RunMode = z.infer<typeof RunMode>;

/**
 * Cordon's own alert format, version 1. Unknown fields are refused so that a typo (`serverity`) is an
 * error rather than a silently ignored field.
 */
export const Alert = z
  .strictObject({
  source: Text(200),
  id: Text(200),
  kind: AlertKind,
  severity: Severity,
  subject: AlertSubject,
  summary: z.string().max(2000).optional(),
  observedAt: z.iso.datetime({ offset: true }).optional(),
  mode: RunMode.optional(),
  /** For `credential.leaked`: the credential (an access key id) and whether someone else used it. */
  credential: z.strictObject({ id: Text(256), usedByOthers: z.boolean().optional() }).optional(),
  /** For `entitlement.excessive`: exactly the entitlements to remove. */
  entitlements: z
    .array(z.strictObject({ kind: z.enum(['group', 'policy']), name: Text(512) }))
    .min(1)
    .max(100)
    .optional(),
  /**
   * For `entitlement.excessive` naming no entitlements: how many days without use make one stale
   * (where the system records use); the playbook's default when absent.
   */
  unusedForDays: z.int().min(1).max(400).optional(),
  })
  .refine((alert) => alert.subject.id !== undefined || alert.subject.userName !== undefined || alert.credential !== undefined, {
    message: 'subject needs an id or a userName (or the alert a credential)',
    path: ['subject', 'userName'],
  });
export type Alert = z.infer<typeof Alert>;
