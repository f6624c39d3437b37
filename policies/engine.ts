import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import {
  canonicalJson,
  combineDecisions,
  DEFAULT_APPROVAL_TIMEOUT_MS,
  Role,
  severityRank,
  type AccountSnapshot,
  type ActionDecision,
  type Alert,
  type Decision,
  type GuardrailRecord,
  type Identity,
  type Plan,
} from '../domain/index.js';

/** Where the default policy set lives. */
export const DEFAULT_POLICY_DIR = new URL('.', import.meta.url).pathname;

/** A policy file that cannot be used; startup stops with it. */
export class PolicyLoadError extends Error {
  constructor(
    readonly file: string,
    readonly line: number,
    readonly column: number,
    readonly reason: string,
  ) {
    super(`${file}:${line}:${column}: ${reason}`);
    this.name = 'PolicyLoadError';
  }
}

/** What the engine needs to decide on a plan. */
export interface PolicyRequest {
  alert: Alert;
  plan: Plan;
  snapshot: AccountSnapshot;
  requestedBy: Identity;
  /**
   * When set, the request is to roll back the plan's actions: each is decided as Cedar action
   * `Rollback`, with the undone type in `context.undoes` and `context.privileged` for the action ids
   * listed here, and `requestedBy` is the operator asking.
   */
  rollback?: { privileged: readonly string[] };
}

/** A loaded, validated policy set. */
export interface PolicyEngine {
  readonly policySetHash: string;
  readonly policyIds: readonly string[];
  /** Policy's decision for a plan, carrying the guardrail record it was made under (see decideRun). */
  decide(request: PolicyRequest, guardrails: GuardrailRecord): Decision;
}

interface PolicyRules {
  id: string;
  approve: boolean;
  approvers: number;
  roles: Role[];
  timeoutMs: number | undefined;
  rejection: 'reject-wins' | 'majority' | undefined;
  escalation: { afterMs: number; roles: Role[] } | undefined;
}

interface LoadedPolicy extends PolicyRules {
  file: string;
  /** The policy's own text, and where it starts in its file (for error positions). */
  text: string;
  fileText: string;
  offset: number;
}

const DURATION = /^(\d{1,6})(s|m|h|d)$/;
const UNIT_MS = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
const MAX_APPROVAL_TIMEOUT_MS = 7 * UNIT_MS.d;

function lineColumn(text: string, byteOffset: number): { line: number; column: number } {
  const before = Buffer.from(text, 'utf8').subarray(0, byteOffset).toString('utf8');
  const lines = before.split('\n');
  return { line: lines.length, column: (lines.at(-1)?.length ?? 0) + 1 };
}

function firstError(errors: cedar.DetailedError[]): { message: string; offset: number } {
  const error = errors[0];
  if (!error) return { message: 'unknown Cedar error', offset: 0 };
  const location = error.sourceLocations?.[0];
  const detail = [error.message, location?.label, error.help].filter(Boolean).join('; ');
  return { message: detail, offset: location?.start ?? 0 };
}

function parseAnnotations(file: string, fileText: string, offset: number, effect: cedar.Effect, annotations: Record<string, string>, fallbackId: string): PolicyRules {
  const fail = (reason: string): never => {
    const { line, column } = lineColumn(fileText, offset);
    throw new PolicyLoadError(file, line, column, reason);
  };
  const id = annotations.id ?? fallbackId;
  if (!/^[A-Za-z0-9._:-]{1,100}$/.test(id)) fail(`@id("${id}") must be 1-100 letters, digits, . _ : -`);
  const decision = annotations.decision;
  if (decision !== undefined && decision !== 'approve') fail(`@decision("${decision}") is not known; the only decision annotation is "approve"`);
  if (decision !== undefined && effect === 'forbid') fail(`@decision("${decision}") only applies to a permit policy; a forbid always denies`);
  const approve = decision === 'approve';
  let approvers = 0;
  let roles: Role[] = [];
  let timeoutMs: number | undefined;
  let rejection: PolicyRules['rejection'];
  let escalation: PolicyRules['escalation'];
  const duration = (name: string, raw: string): number => {
    const match = DURATION.exec(raw);
    const ms = match ? Number(match[1]) * UNIT_MS[match[2] as keyof typeof UNIT_MS] : 0;
    if (!match || ms <= 0 || ms > MAX_APPROVAL_TIMEOUT_MS) fail(`@${name}("${raw}") must be a duration such as 30m, 24h or 7d, at most 7d`);
    return ms;
  };
  const roleList = (name: string, raw: string): Role[] => {
    const list = raw.split(',').map((r) => r.trim()).filter(Boolean);
    for (const r of list) if (!Role.safeParse(r).success) fail(`@${name} names an unknown role "${r}" (known: ${Role.options.join(', ')})`);
    if (list.length === 0) fail(`@${name} names no role`);
    return list as Role[];
  };
  if (approve) {
    const raw = annotations.approvers ?? '1';
    approvers = Number(raw);
    if (!/^\d+$/.test(raw) || approvers < 1 || approvers > 10) fail(`@approvers("${raw}") must be a whole number from 1 to 10`);
    roles = roleList('roles', annotations.roles ?? 'approver');
    if (annotations.expires !== undefined) timeoutMs = duration('expires', annotations.expires);
    if (annotations.rejection !== undefined) {
      const rule = annotations.rejection;
      if (rule !== 'reject-wins' && rule !== 'majority') return fail(`@rejection("${rule}") must be "reject-wins" or "majority"`);
      rejection = rule;
    }
    if ((annotations.escalateAfter === undefined) !== (annotations.escalateRoles === undefined)) fail('@escalateAfter and @escalateRoles go together');
    if (annotations.escalateAfter !== undefined && annotations.escalateRoles !== undefined) {
      const afterMs = duration('escalateAfter', annotations.escalateAfter);
      if (afterMs >= (timeoutMs ?? DEFAULT_APPROVAL_TIMEOUT_MS)) fail(`@escalateAfter("${annotations.escalateAfter}") must come before the approval window ends`);
      escalation = { afterMs, roles: roleList('escalateRoles', annotations.escalateRoles) };
    }
  } else {
    for (const key of ['approvers', 'roles', 'expires', 'rejection', 'escalateAfter', 'escalateRoles']) {
      if (annotations[key] !== undefined) fail(`@${key} only applies to a policy with @decision("approve")`);
    }
  }
  return { id, approve, approvers, roles, timeoutMs, rejection, escalation };
}

/**
 * Loads every `*.cedar` file of `dir` and the schema `schema.cedarschema` beside them, validates the
 * policies against the schema, and returns an engine. Throws PolicyLoadError naming the file, line and
 * reason of the first problem.
 */
export async function loadPolicyEngine(dir: string = DEFAULT_POLICY_DIR): Promise<PolicyEngine> {
  const display = (file: string) => relative(process.cwd(), join(dir, file)) || file;
  const schemaFile = 'schema.cedarschema';
  let schemaText: string;
  try {
    schemaText = await readFile(join(dir, schemaFile), 'utf8');
  } catch {
    throw new PolicyLoadError(display(schemaFile), 1, 1, `no Cedar schema found in ${dir}`);
  }
  const schemaCheck = cedar.checkParseSchema(schemaText);
  if (schemaCheck.type === 'failure') {
    const { message, offset } = firstError(schemaCheck.errors);
    const { line, column } = lineColumn(schemaText, offset);
    throw new PolicyLoadError(display(schemaFile), line, column, message);
  }

  const files = (await readdir(dir)).filter((f) => f.endsWith('.cedar')).sort();
  if (files.length === 0) throw new PolicyLoadError(display('.'), 1, 1, 'no .cedar policy files found');

  const policies: LoadedPolicy[] = [];
  const texts: { file: string; text: string }[] = [];
  for (const file of files) {
    const fileText = await readFile(join(dir, file), 'utf8');
    texts.push({ file, text: fileText });
    const parts = cedar.policySetTextToParts(fileText);
    if (parts.type === 'failure') {
      const { message, offset } = firstError(parts.errors);
      const { line, column } = lineColumn(fileText, offset);
      throw new PolicyLoadError(display(file), line, column, message);
    }
    if (parts.policy_templates.length > 0) throw new PolicyLoadError(display(file), 1, 1, 'policy templates are not supported');
    // The parser may hand the policies back in any order: put them in file order, each at its own
    // position (a repeated text takes the next occurrence), so ids and error lines follow the file.
    const taken = new Map<string, number>();
    const located = parts.policies
      .map((text) => {
        const at = fileText.indexOf(text, taken.get(text) ?? 0);
        if (at >= 0) taken.set(text, at + text.length);
        return { text, at };
      })
      .sort((a, b) => (a.at < 0 ? Infinity : a.at) - (b.at < 0 ? Infinity : b.at));
    located.forEach(({ text, at }, index) => {
      const offset = Buffer.byteLength(fileText.slice(0, Math.max(at, 0)), 'utf8');
      const json = cedar.policyToJson(text);
      if (json.type === 'failure') {
        const { message } = firstError(json.errors);
        const { line, column } = lineColumn(fileText, offset);
        throw new PolicyLoadError(display(file), line, column, message);
      }
      const policy = parseAnnotations(display(file), fileText, offset, json.json.effect, json.json.annotations ?? {}, `${file.replace(/\.cedar$/, '')}.${index}`);
      const duplicate = policies.find((p) => p.id === policy.id);
      if (duplicate) {
        const { line, column } = lineColumn(fileText, offset);
        throw new PolicyLoadError(display(file), line, column, `policy id "${policy.id}" is already used in ${duplicate.file}`);
      }
      policies.push({ ...policy, file: display(file), text, fileText, offset });
    });
  }

  const staticPolicies: Record<string, string> = Object.fromEntries(policies.map((p) => [p.id, p.text]));
  const validation = cedar.validate({ schema: schemaText, policies: { staticPolicies }, validationSettings: { mode: 'strict' } });
  if (validation.type === 'failure') {
    const { message } = firstError(validation.errors);
    throw new PolicyLoadError(display(schemaFile), 1, 1, message);
  }
  const invalid = validation.validationErrors[0];
  if (invalid) {
    const policy = policies.find((p) => p.id === invalid.policyId);
    const { message, offset } = firstError([invalid.error]);
    const base = policy ? policy.offset : 0;
    const { line, column } = lineColumn(policy?.fileText ?? '', base + offset);
    throw new PolicyLoadError(policy?.file ?? display('.'), line, column, message);
  }

  const policySetHash = createHash('sha256').update(canonicalJson({ schema: schemaText, files: texts })).digest('hex');
  const byId = new Map(policies.map((p) => [p.id, p]));
  // Parse the policies once; each decision then only evaluates. The policies were validated against
  // the schema above, and the entities are built here from typed data, so requests are not validated
  // against the schema again (that costs ~4 ms per action); an attribute a policy cannot evaluate is an
  // evaluation error, which denies (fail closed).
  const cacheKey = `cordon-${policySetHash}`;
  const preparsed = cedar.preparsePolicySet(cacheKey, { staticPolicies });
  if (preparsed.type === 'failure') throw new PolicyLoadError(display('.'), 1, 1, firstError(preparsed.errors).message);

  return {
    policySetHash,
    policyIds: policies.map((p) => p.id),
    decide({ alert, plan, snapshot, requestedBy, rollback }, guardrails) {
      const account = snapshot.account;
      const groupNames = [...new Set(snapshot.groups.map((g) => g.displayName))];
      const entities: cedar.EntityJson[] = [
        { uid: { type: 'Cordon::Requester', id: requestedBy.name }, attrs: { roles: requestedBy.roles }, parents: [] },
        ...groupNames.map((name) => ({ uid: { type: 'Cordon::Group', id: name }, attrs: {}, parents: [] })),
        {
          uid: { type: 'Cordon::Account', id: account.id },
          attrs: { system: snapshot.system, userName: account.userName, active: account.active, kind: account.kind ?? 'user' },
          parents: groupNames.map((name) => ({ type: 'Cordon::Group', id: name })),
        },
      ];
      const perAction: ActionDecision[] = [];
      const reasons: string[] = [];
      for (const action of plan.actions) {
        const context: cedar.Context = {
          alertKind: alert.kind,
          alertSource: alert.source,
          severity: alert.severity,
          severityRank: severityRank[alert.severity],
          playbook: plan.playbook,
          actionCount: plan.actions.length,
          ...(action.type === 'RemoveGroupMembership' ? { group: action.group.display } : {}),
          ...(action.type === 'DeactivateCredential' ? { credential: action.credential.id } : {}),
          ...(action.type === 'AttachQuarantinePolicy' || action.type === 'DetachPolicy' ? { policy: action.policy.display } : {}),
          ...(rollback ? { undoes: action.type, privileged: rollback.privileged.includes(action.id) } : {}),
        };
        const answer = cedar.statefulIsAuthorized({
          principal: { type: 'Cordon::Requester', id: requestedBy.name },
          action: { type: 'Cordon::Action', id: rollback ? 'Rollback' : action.type },
          resource: { type: 'Cordon::Account', id: action.target.id },
          context,
          preparsedPolicySetId: cacheKey,
          validateRequest: false,
          entities,
        });
        // Fail closed: an evaluation that errors, or a policy that errors, denies the action.
        if (answer.type === 'failure') {
          perAction.push({ actionId: action.id, outcome: 'deny', policies: [], approvers: 0, roles: [] });
          reasons.push(`${action.id}: policy evaluation failed: ${firstError(answer.errors).message}`);
          continue;
        }
        const { decision, diagnostics } = answer.response;
        if (diagnostics.errors.length > 0) {
          perAction.push({ actionId: action.id, outcome: 'deny', policies: diagnostics.errors.map((e) => e.policyId), approvers: 0, roles: [] });
          reasons.push(`${action.id}: policy ${diagnostics.errors[0]!.policyId} errored: ${diagnostics.errors[0]!.error.message}`);
          continue;
        }
        if (decision === 'deny') {
          perAction.push({ actionId: action.id, outcome: 'deny', policies: [...diagnostics.reason].sort(), approvers: 0, roles: [] });
          reasons.push(
            diagnostics.reason.length > 0
              ? `${action.id} (${action.type}): forbidden by ${diagnostics.reason.join(', ')}`
              : `${action.id} (${action.type}): no policy permits it`,
          );
          continue;
        }
        const satisfied = diagnostics.reason.map((id) => byId.get(id)).filter((p): p is LoadedPolicy => p !== undefined);
        const approving = satisfied.filter((p) => p.approve);
        if (approving.length > 0) {
          const timeouts = approving.map((p) => p.timeoutMs).filter((t): t is number => t !== undefined);
          const escalations = approving.map((p) => p.escalation).filter((e): e is NonNullable<PolicyRules['escalation']> => e !== undefined);
          perAction.push({
            actionId: action.id,
            outcome: 'approve',
            policies: approving.map((p) => p.id).sort(),
            approvers: Math.max(...approving.map((p) => p.approvers)),
            roles: [...new Set(approving.flatMap((p) => p.roles))].sort(),
            ...(timeouts.length > 0 ? { approvalTimeoutMs: Math.min(...timeouts) } : {}),
            ...(approving.every((p) => p.rejection === 'majority') ? { rejection: 'majority' as const } : {}),
            ...(escalations.length > 0
              ? { escalation: { afterMs: Math.min(...escalations.map((e) => e.afterMs)), roles: [...new Set(escalations.flatMap((e) => e.roles))].sort() } }
              : {}),
          });
        } else {
          perAction.push({ actionId: action.id, outcome: 'auto', policies: satisfied.map((p) => p.id).sort(), approvers: 0, roles: [] });
        }
      }
      return combineDecisions(perAction, policySetHash, guardrails, reasons);
    },
  };
}
