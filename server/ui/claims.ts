// From an OpenID Connect provider's claims to a Cordon identity: who (a plain name) and which roles.
import { IdentityName, Role, type Identity } from '../../domain/index.js';

/** How claims become an identity. */
export interface ClaimsMapping {
  /** The claim with the roles: an array of strings, or one string separated by spaces or commas. A dotted path reaches into objects (`realm_access.roles`). */
  rolesClaim: string;
  /** Extra roles by `sub`, or by `email` when the provider does not say the address is unverified. */
  roleMap: Readonly<Record<string, readonly Role[]>>;
  /** The claim naming the person; `sub` when absent. */
  nameClaim?: string | undefined;
}

/**
 * Where a signed-in person's roles come from, kept in the session: the roles the provider's claim
 * granted at sign-in, and the keys (`sub`, verified email) under which the role map may grant more.
 * The role map is consulted again on every request, so an entry removed from it takes effect at once.
 */
export interface RoleSources {
  claimRoles: Role[];
  roleMapKeys: string[];
}

export type ClaimsIdentity = { ok: true; identity: Identity; sources: RoleSources; ignoredRoles: string[] } | { ok: false; reason: string };

/** The roles granted by the claim and by the role map as it is now, in Cordon's order. */
export function rolesFrom(sources: RoleSources, roleMap: ClaimsMapping['roleMap']): Role[] {
  const known = new Set<Role>(sources.claimRoles);
  for (const key of sources.roleMapKeys) if (Object.hasOwn(roleMap, key)) for (const role of roleMap[key] ?? []) known.add(role);
  return Role.options.filter((r) => known.has(r));
}

function claimAt(claims: Readonly<Record<string, unknown>>, path: string): unknown {
  if (Object.hasOwn(claims, path)) return claims[path];
  let value: unknown = claims;
  for (const part of path.split('.')) {
    if (typeof value !== 'object' || value === null || Array.isArray(value) || !Object.hasOwn(value, part)) return undefined;
    value = (value as Record<string, unknown>)[part];
  }
  return value;
}

function stringsOf(value: unknown): string[] {
  if (typeof value === 'string') return value.split(/[\s,]+/).filter(Boolean);
  if (Array.isArray(value)) return value.filter((v): v is string => typeof v === 'string');
  return [];
}

/**
 * The identity the claims describe. The name comes from `nameClaim` (default `sub`) and must be a
 * plain identity name; roles are the union of the roles claim and the role map's entries for the
 * subject and the email (`sources` says which, for the session). Role names Cordon does not know
 * are ignored (and returned, for the log), so an identity may have no role at all: it can sign in
 * and sees nothing it could act on.
 */
export function identityFromClaims(claims: Readonly<Record<string, unknown>>, mapping: ClaimsMapping): ClaimsIdentity {
  const nameClaim = mapping.nameClaim ?? 'sub';
  const rawName = claimAt(claims, nameClaim);
  const name = IdentityName.safeParse(rawName);
  if (!name.success) {
    return {
      ok: false,
      reason: typeof rawName === 'string' ? `the "${nameClaim}" claim is not a plain identity name` : `the provider sent no "${nameClaim}" claim`,
    };
  }
  const claimRoles = new Set<Role>();
  const ignoredRoles: string[] = [];
  for (const role of stringsOf(claimAt(claims, mapping.rolesClaim))) {
    const parsed = Role.safeParse(role);
    if (parsed.success) claimRoles.add(parsed.data);
    else if (!ignoredRoles.includes(role)) ignoredRoles.push(role);
  }
  const sub = typeof claims.sub === 'string' ? claims.sub : undefined;
  const email = typeof claims.email === 'string' && claims.email_verified !== false ? claims.email : undefined;
  const sources: RoleSources = {
    claimRoles: Role.options.filter((r) => claimRoles.has(r)),
    roleMapKeys: [...new Set([sub, email].filter((key): key is string => key !== undefined && key.length <= 320))],
  };
  return { ok: true, identity: { name: name.data, roles: rolesFrom(sources, mapping.roleMap) }, sources, ignoredRoles };
}
