import { deprovisionAccount } from './deprovision-account.js';
import { entitlementCleanup } from './entitlement-cleanup.js';
import { quarantineAgent } from './quarantine-agent.js';
import { revokeCredential } from './revoke-credential.js';
import type { Playbook } from './types.js';

/** Every playbook Cordon ships, by name. */
export const playbooks: Readonly<Record<string, Playbook>> = Object.freeze({
  [deprovisionAccount.name]: deprovisionAccount,
  [entitlementCleanup.name]: entitlementCleanup,
  [revokeCredential.name]: revokeCredential,
  [quarantineAgent.name]: quarantineAgent,
});

const byKind = new Map<string, Playbook>();
for (const playbook of Object.values(playbooks)) {
  for (const kind of playbook.kinds) {
    if (byKind.has(kind)) throw new Error(`alert kind ${kind} is claimed by two playbooks`);
    byKind.set(kind, playbook);
  }
}

/** The playbook that handles an alert kind, or undefined when none does. */
export function playbookForKind(kind: string): Playbook | undefined {
  return byKind.get(kind);
}

/** The playbook with this name; throws when there is none. */
export function playbookNamed(name: string): Playbook {
  // Own properties only: `toString` is not a playbook.
  const playbook = Object.hasOwn(playbooks, name) ? playbooks[name] : undefined;
  if (!playbook) throw new Error(`no playbook named ${name}`);
  return playbook;
}

/** The alert kinds some playbook handles. */
export function handledKinds(): string[] {
  return [...byKind.keys()].sort();
}

export type { Playbook, VerificationResult } from './types.js';
