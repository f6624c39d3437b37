/** Where Cordon keeps its own IAM managed policies, so they are easy to find and to guard. */
export const QUARANTINE_POLICY_PATH = '/cordon/';

/** The name of Cordon's deny-all quarantine policy. */
export const QUARANTINE_POLICY_NAME = 'CordonQuarantineDenyAll';

/**
 * Denies every action on every resource. An explicit Deny overrides any Allow from identity,
 * group or resource policies, so attaching it cuts what a user's keys or a role's sessions can do,
 * including sessions that were issued before it was attached (IAM evaluates policies per request).
 */
export const QUARANTINE_POLICY_DOCUMENT = {
  Version: '2012-10-17',
  Statement: [{ Sid: 'CordonQuarantine', Effect: 'Deny', Action: '*', Resource: '*' }],
} as const;

const isWildcard = (value: unknown): boolean => value === '*' || (Array.isArray(value) && value.length === 1 && value[0] === '*');

/**
 * Whether a policy document (as IAM returns it: JSON, URL-encoded per RFC 3986 by AWS, plain by
 * some emulators) denies everything and allows nothing. A policy found at Cordon's name and path
 * is attached only if this holds: someone able to create that policy must not be able to turn
 * "quarantine" into a grant.
 */
export function isDenyAllDocument(document: string): boolean {
  let parsed: unknown;
  try {
    const text = document.trimStart().startsWith('{') ? document : decodeURIComponent(document);
    parsed = JSON.parse(text);
  } catch {
    return false;
  }
  if (typeof parsed !== 'object' || parsed === null) return false;
  const statement = (parsed as { Statement?: unknown }).Statement;
  const statements = Array.isArray(statement) ? statement : [statement];
  return (
    statements.length > 0 &&
    statements.every((s: unknown) => {
      if (typeof s !== 'object' || s === null) return false;
      const { Effect, Action, Resource, NotAction, NotResource, Condition, Principal, NotPrincipal } = s as Record<string, unknown>;
      return (
        Effect === 'Deny' &&
        isWildcard(Action) &&
        isWildcard(Resource) &&
        [NotAction, NotResource, Condition, Principal, NotPrincipal].every((v) => v === undefined)
      );
    })
  );
}
