import type { ScimClient } from '../activities/connectors/scim/scim-client.js';

/** A person in the demo directory. */
export interface DemoUser {
  userName: string;
  displayName: string;
  groups: string[];
}

const ORDINARY = ['engineering', 'finance', 'sales', 'vpn-users', 'jira-users', 'contractors'] as const;

/** The demo organisation's groups: ordinary ones, the privileged `admins`, and `break-glass`. */
export const DEMO_GROUPS = [...ORDINARY, 'admins', 'break-glass'] as const;

/**
 * A small organisation: 24 people, 8 groups. `dana.reyes` is the orphaned contractor of
 * examples/alerts/orphaned-account.json (3 ordinary groups); `erin.wolfe` is the orphaned contractor
 * with admin rights of examples/alerts/orphaned-admin.json.
 */
export const DEMO_USERS: DemoUser[] = [
  { userName: 'ana.garcia', displayName: 'Ana Garcia', groups: ['engineering', 'vpn-users', 'jira-users'] },
  { userName: 'ben.cohen', displayName: 'Ben Cohen', groups: ['engineering', 'jira-users'] },
  { userName: 'chloe.martin', displayName: 'Chloe Martin', groups: ['finance'] },
  { userName: 'dev.patel', displayName: 'Dev Patel', groups: ['engineering', 'vpn-users'] },
  { userName: 'emma.johansson', displayName: 'Emma Johansson', groups: ['sales'] },
  { userName: 'farid.haddad', displayName: 'Farid Haddad', groups: ['sales', 'vpn-users'] },
  { userName: 'grace.kim', displayName: 'Grace Kim', groups: ['engineering', 'jira-users', 'vpn-users'] },
  { userName: 'hugo.dubois', displayName: 'Hugo Dubois', groups: ['finance', 'vpn-users'] },
  { userName: 'ines.silva', displayName: 'Ines Silva', groups: ['engineering'] },
  { userName: 'jonas.weber', displayName: 'Jonas Weber', groups: ['sales', 'jira-users'] },
  { userName: 'kai.tanaka', displayName: 'Kai Tanaka', groups: ['engineering', 'vpn-users'] },
  { userName: 'lena.novak', displayName: 'Lena Novak', groups: ['finance', 'jira-users'] },
  { userName: 'mateo.rossi', displayName: 'Mateo Rossi', groups: ['sales'] },
  { userName: 'nora.lindqvist', displayName: 'Nora Lindqvist', groups: ['engineering', 'jira-users'] },
  { userName: 'omar.aziz', displayName: 'Omar Aziz', groups: ['admins', 'engineering', 'vpn-users'] },
  { userName: 'priya.raman', displayName: 'Priya Raman', groups: ['admins', 'vpn-users'] },
  { userName: 'ravi.menon', displayName: 'Ravi Menon', groups: ['finance'] },
  { userName: 'sara.ahmed', displayName: 'Sara Ahmed', groups: ['sales', 'vpn-users'] },
  { userName: 'tom.baker', displayName: 'Tom Baker', groups: ['engineering', 'jira-users'] },
  { userName: 'uma.rao', displayName: 'Uma Rao', groups: ['engineering'] },
  { userName: 'dana.reyes', displayName: 'Dana Reyes (contractor)', groups: ['engineering', 'vpn-users', 'jira-users'] },
  { userName: 'erin.wolfe', displayName: 'Erin Wolfe (contractor)', groups: ['admins', 'contractors', 'vpn-users'] },
  { userName: 'felix.mora', displayName: 'Felix Mora (contractor)', groups: ['contractors', 'jira-users'] },
  { userName: 'breakglass-01', displayName: 'Emergency access 01', groups: ['break-glass', 'admins'] },
];

/**
 * Creates the demo organisation through the SCIM API (users first, then groups with their members).
 * Returns the counts created; does nothing when the directory already has users.
 */
export async function seedDemoOrganisation(client: ScimClient): Promise<{ users: number; groups: number; seeded: boolean }> {
  const existingUsers = await client.findUsers();
  if (existingUsers.length > 0) {
    const groups = await client.findGroups();
    return { users: existingUsers.length, groups: groups.length, seeded: false };
  }
  const ids = new Map<string, string>();
  for (const user of DEMO_USERS) {
    const [given, ...family] = user.displayName.split(' ');
    const created = await client.createUser({
      userName: user.userName,
      displayName: user.displayName,
      name: { givenName: given ?? user.displayName, familyName: family.join(' ') },
      active: true,
      emails: [{ value: `${user.userName}@example.test`, primary: true }],
    });
    ids.set(user.userName, created.id);
  }
  for (const group of DEMO_GROUPS) {
    const members = DEMO_USERS.filter((u) => u.groups.includes(group)).map((u) => ({ value: ids.get(u.userName)! }));
    await client.createGroup({ displayName: group, members });
  }
  return { users: DEMO_USERS.length, groups: DEMO_GROUPS.length, seeded: true };
}
