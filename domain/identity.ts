import { z } from 'zod';

/** What a caller may do: send alerts, approve runs, operate runs, administer Cordon. */
export const Role = z.enum(['soc', 'approver', 'operator', 'admin']);
export type Role = z.infer<typeof Role>;

/** A person or system known to Cordon, by name. */
export const IdentityName = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._@:-]*$/, 'must be a plain identity name');
export type IdentityName = z.infer<typeof IdentityName>;

/** An authenticated caller. */
export const Identity = z.strictObject({
  name: IdentityName,
  roles: z.array(Role).max(8),
});
export type Identity = z.infer<typeof Identity>;
