import { CordonError, type Action } from '../domain/index.js';
import { attachQuarantine, deactivateCredential, verifyAction } from './actions.js';
import { accountTarget, type Playbook } from './types.js';

/**
 * Revoke a leaked credential: deactivate exactly the key the alert names (never the owner's other
 * keys, never a deletion, which cannot be undone), and when someone else used it, quarantine the
 * owner with the deny-all policy. Evidence keeps the key's last use (time and service).
 */
export const revokeCredential: Playbook = {
  name: 'revoke-credential',
  description: 'Deactivate a leaked access key; quarantine its owner when someone else used it.',
  kinds: ['credential.leaked'],
  needsQuarantinePolicy: true,

  missing: (alert) => (alert.credential ? undefined : 'a credential.leaked alert needs credential.id (the leaked access key id)'),

  observe: (alert) => ({ kind: 'credential-owner', credentialId: alert.credential!.id }),

  plan(alert, snapshot) {
    const credentialId = alert.credential?.id;
    if (!credentialId) throw new CordonError('InvalidRequest', 'the alert names no credential');
    const target = accountTarget(snapshot);
    const key = snapshot.credentials?.find((c) => c.id === credentialId);
    if (!key) throw new CordonError('TargetNotFound', `credential ${credentialId} does not belong to ${target.display}`);
    const actions: Action[] = [];
    if (key.active) actions.push(deactivateCredential(target, credentialId));
    const quarantine = snapshot.quarantinePolicy;
    if (alert.credential?.usedByOthers && !quarantine) {
      // Fail closed: deactivating the key alone would leave whoever used it with the owner's other access.
      throw new CordonError('UnsupportedOperation', `the ${snapshot.system} connector offers no quarantine policy for an owner whose key someone else used`);
    }
    if (alert.credential?.usedByOthers && quarantine && !(snapshot.policies ?? []).some((p) => p.id === quarantine.id)) {
      actions.push(attachQuarantine(target, quarantine));
    }
    return actions;
  },

  verify: verifyAction,
};
