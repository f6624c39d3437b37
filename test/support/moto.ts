import { randomBytes } from 'node:crypto';
import {
  AddUserToGroupCommand,
  AttachGroupPolicyCommand,
  AttachRolePolicyCommand,
  AttachUserPolicyCommand,
  CreateAccessKeyCommand,
  CreateGroupCommand,
  CreateLoginProfileCommand,
  CreatePolicyCommand,
  CreateRoleCommand,
  CreateUserCommand,
  GetUserCommand,
  type IAMClient,
} from '@aws-sdk/client-iam';
import { inject } from 'vitest';
import { createIamClient } from '../../activities/connectors/aws/iam-client.js';
import { freePort, spawnManaged, waitUntil, type ManagedProcess } from '../../dev/processes.js';

/** moto's server (an emulated AWS API on 127.0.0.1), started for one test file. */
export interface TestMoto {
  url: string;
  /** An IAM client for the emulator: region us-east-1, credentials test/test, one attempt per call. */
  client: IAMClient;
  /**
   * Another IAM client: in another moto account (`account`, 12 digits, sent as moto's
   * x-moto-account-id header; a fresh account holds nothing), and/or through another endpoint (such as
   * the Access Advisor recorder in front of moto).
   */
  iamClient(options: { account?: string; endpoint?: string }): IAMClient;
  process: ManagedProcess;
  /** Forgets every resource (POST /moto-api/reset). */
  reset(): Promise<void>;
  /** Stops the server by its PID. */
  stop(): Promise<void>;
}

/** Starts `moto_server` on a free port and waits (at most 30 s) until it answers. */
export async function startMoto(): Promise<TestMoto> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child = spawnManaged('moto_server', inject('motoServerPath'), {
    args: ['-H', '127.0.0.1', '-p', String(port)],
    env: { ...process.env, PYTHONUNBUFFERED: '1' },
  });
  try {
    await waitUntil('moto_server', async () => (await fetch(`${url}/moto-api/`, { signal: AbortSignal.timeout(2000) })).ok, { timeoutMs: 30_000, process: child });
  } catch (error) {
    await child.stop(2000);
    throw error;
  }
  const iamClient = (options: { account?: string; endpoint?: string }): IAMClient => {
    const client = createIamClient({ region: 'us-east-1', endpoint: options.endpoint ?? url, credentials: { accessKeyId: 'test', secretAccessKey: 'test' } });
    const account = options.account;
    if (account !== undefined) {
      client.middlewareStack.add(
        (next) => async (args) => {
          const request = args.request as { headers?: Record<string, string> };
          if (request.headers) request.headers['x-moto-account-id'] = account;
          return next(args);
        },
        { step: 'build', name: 'motoAccount' },
      );
    }
    return client;
  };
  return {
    url,
    client: iamClient({}),
    iamClient,
    process: child,
    async reset() {
      const response = await fetch(`${url}/moto-api/reset`, { method: 'POST', signal: AbortSignal.timeout(5000) });
      if (!response.ok) throw new Error(`moto reset answered ${response.status}`);
    },
    stop: () => child.stop(5000),
  };
}

/** An access key as IAM hands it out once, secret included. */
export interface TestKey {
  accessKeyId: string;
  secretAccessKey: string;
}

/** A trust policy that lets EC2 assume a role (any valid one does for the emulator). */
const EC2_TRUST = JSON.stringify({
  Version: '2012-10-17',
  Statement: [{ Effect: 'Allow', Principal: { Service: 'ec2.amazonaws.com' }, Action: 'sts:AssumeRole' }],
});

/** Creates IAM users, roles, groups and policies with unique names, for tests that share one emulator. */
export class TestAws {
  private counter = 0;

  constructor(
    readonly client: IAMClient,
    readonly url: string,
  ) {}

  /** A name unique to this run, valid for users, roles, groups and policies. */
  unique(prefix: string): string {
    return `${prefix}-${++this.counter}-${randomBytes(3).toString('hex')}`;
  }

  async group(prefix: string): Promise<{ id: string; name: string; arn: string }> {
    const { Group } = await this.client.send(new CreateGroupCommand({ GroupName: this.unique(prefix) }));
    return { id: Group?.GroupId ?? '', name: Group?.GroupName ?? '', arn: Group?.Arn ?? '' };
  }

  /** Attaches managed policies (ARNs) to a group. */
  async attachToGroup(group: { name: string }, ...policies: string[]): Promise<void> {
    for (const arn of policies) await this.client.send(new AttachGroupPolicyCommand({ GroupName: group.name, PolicyArn: arn }));
  }

  /** A customer managed policy (allowing s3:GetObject unless a document is given). */
  async managedPolicy(prefix: string, document?: unknown, path = '/'): Promise<{ arn: string; name: string }> {
    const name = this.unique(prefix);
    const doc = document ?? { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 's3:GetObject', Resource: '*' }] };
    const { Policy } = await this.client.send(new CreatePolicyCommand({ PolicyName: name, Path: path, PolicyDocument: JSON.stringify(doc) }));
    return { arn: Policy?.Arn ?? '', name };
  }

  /**
   * A user with `keys` access keys (at most 2, IAM's quota), member of `groups`, with `policies`
   * (ARNs) attached and, when `loginProfile`, a console password.
   */
  async user(
    prefix: string,
    options: { keys?: number; groups?: { name: string }[]; policies?: string[]; loginProfile?: boolean; userName?: string } = {},
  ): Promise<{ id: string; userName: string; arn: string; keys: TestKey[] }> {
    const userName = options.userName ?? this.unique(prefix);
    const { User } = await this.client.send(new CreateUserCommand({ UserName: userName }));
    const keys: TestKey[] = [];
    for (let i = 0; i < (options.keys ?? 0); i++) {
      const { AccessKey } = await this.client.send(new CreateAccessKeyCommand({ UserName: userName }));
      keys.push({ accessKeyId: AccessKey?.AccessKeyId ?? '', secretAccessKey: AccessKey?.SecretAccessKey ?? '' });
    }
    for (const group of options.groups ?? []) await this.client.send(new AddUserToGroupCommand({ GroupName: group.name, UserName: userName }));
    for (const arn of options.policies ?? []) await this.client.send(new AttachUserPolicyCommand({ UserName: userName, PolicyArn: arn }));
    if (options.loginProfile) {
      await this.client.send(new CreateLoginProfileCommand({ UserName: userName, Password: `T3st!${randomBytes(12).toString('base64url')}`, PasswordResetRequired: false }));
    }
    return { id: User?.UserId ?? '', userName, arn: User?.Arn ?? '', keys };
  }

  /** A role EC2 may assume, with `policies` (ARNs) attached. */
  async role(prefix: string, options: { policies?: string[] } = {}): Promise<{ id: string; roleName: string; arn: string }> {
    const roleName = this.unique(prefix);
    const { Role } = await this.client.send(new CreateRoleCommand({ RoleName: roleName, AssumeRolePolicyDocument: EC2_TRUST }));
    for (const arn of options.policies ?? []) await this.client.send(new AttachRolePolicyCommand({ RoleName: roleName, PolicyArn: arn }));
    return { id: Role?.RoleId ?? '', roleName, arn: Role?.Arn ?? '' };
  }

  /**
   * Makes one signed call with `key` (iam:GetUser on itself), so the emulator records the key's last
   * use (service iam, region us-east-1) as AWS would.
   */
  async useKey(key: TestKey): Promise<void> {
    const asUser = createIamClient({ region: 'us-east-1', endpoint: this.url, credentials: key });
    try {
      await asUser.send(new GetUserCommand({}));
    } finally {
      asUser.destroy();
    }
  }
}
