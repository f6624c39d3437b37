import {
  AddUserToGroupCommand,
  AttachRolePolicyCommand,
  AttachUserPolicyCommand,
  CreateAccessKeyCommand,
  CreateGroupCommand,
  CreatePolicyCommand,
  CreateRoleCommand,
  CreateUserCommand,
  IAMClient,
} from '@aws-sdk/client-iam';
import { spawnManaged, waitUntil, type ManagedProcess } from './processes.js';

/** moto's random generator seed: the demo's ids (and so the example alerts) are the same at every start. */
export const AWS_DEMO_SEED = 20261128;

/** The demo AWS account's identities, as the example alerts name them. */
export const AWS_DEMO = {
  /** A CI user with two keys; the first one leaked (examples/alerts/credential-leaked.json). */
  ciUser: 'ci-deployer',
  /** An AI agent's role acting out of scope (examples/alerts/agent-anomalous.json). */
  agentRole: 'support-agent-llm',
  /** A user with an excessive policy (examples/alerts/entitlement-excessive-aws.json). */
  analyst: 'data-analyst',
  excessivePolicy: 'ProdDatabaseFullAccess',
} as const;

/** The running demo AWS endpoint. */
export interface AwsDemo {
  url: string;
  process: ManagedProcess;
  /** The leaked key's id (deterministic for a given moto version and seed). */
  leakedKeyId: string;
  stop(): Promise<void>;
}

const TRUST = JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Principal: { Service: 'ec2.amazonaws.com' }, Action: 'sts:AssumeRole' }] });
const ALLOW = (action: string) => JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: action, Resource: '*' }] });

/**
 * Starts moto's AWS endpoint on 127.0.0.1 and seeds a small demo account. moto keeps everything in
 * memory: every start seeds it again, the same way (its id generator is seeded), so example alerts
 * keep naming real keys.
 */
export async function startAwsDemo(options: { motoPath: string; port: number; logFile?: string }): Promise<AwsDemo> {
  const url = `http://127.0.0.1:${options.port}`;
  const child = spawnManaged('moto', options.motoPath, {
    args: ['-H', '127.0.0.1', '-p', String(options.port)],
    env: { ...process.env, PYTHONUNBUFFERED: '1' },
    ...(options.logFile ? { logFile: options.logFile } : {}),
  });
  try {
    await waitUntil(`AWS demo endpoint at ${url}`, async () => (await fetch(`${url}/moto-api/`, { signal: AbortSignal.timeout(2000) })).ok, { timeoutMs: 30_000, process: child });
    for (const path of ['/moto-api/reset', `/moto-api/seed?a=${AWS_DEMO_SEED}`]) {
      const answer = await fetch(`${url}${path}`, { method: 'POST', signal: AbortSignal.timeout(5000) });
      if (!answer.ok) throw new Error(`moto ${path} answered ${answer.status}`);
    }
    const iam = new IAMClient({ region: 'us-east-1', endpoint: url, credentials: { accessKeyId: 'demo', secretAccessKey: 'demo' } });
    await iam.send(new CreateUserCommand({ UserName: AWS_DEMO.ciUser }));
    const leaked = await iam.send(new CreateAccessKeyCommand({ UserName: AWS_DEMO.ciUser }));
    await iam.send(new CreateAccessKeyCommand({ UserName: AWS_DEMO.ciUser }));
    const deploy = await iam.send(new CreatePolicyCommand({ PolicyName: 'DeployArtifacts', PolicyDocument: ALLOW('s3:PutObject') }));
    await iam.send(new AttachUserPolicyCommand({ UserName: AWS_DEMO.ciUser, PolicyArn: deploy.Policy!.Arn! }));

    const tools = await iam.send(new CreatePolicyCommand({ PolicyName: 'SupportAgentTools', PolicyDocument: ALLOW('dynamodb:GetItem') }));
    await iam.send(new CreateRoleCommand({ RoleName: AWS_DEMO.agentRole, AssumeRolePolicyDocument: TRUST }));
    await iam.send(new AttachRolePolicyCommand({ RoleName: AWS_DEMO.agentRole, PolicyArn: tools.Policy!.Arn! }));

    const full = await iam.send(new CreatePolicyCommand({ PolicyName: AWS_DEMO.excessivePolicy, PolicyDocument: ALLOW('rds:*') }));
    const reports = await iam.send(new CreatePolicyCommand({ PolicyName: 'ReadReports', PolicyDocument: ALLOW('s3:GetObject') }));
    await iam.send(new CreateUserCommand({ UserName: AWS_DEMO.analyst }));
    await iam.send(new AttachUserPolicyCommand({ UserName: AWS_DEMO.analyst, PolicyArn: full.Policy!.Arn! }));
    await iam.send(new AttachUserPolicyCommand({ UserName: AWS_DEMO.analyst, PolicyArn: reports.Policy!.Arn! }));
    await iam.send(new CreateGroupCommand({ GroupName: 'analysts' }));
    await iam.send(new AddUserToGroupCommand({ GroupName: 'analysts', UserName: AWS_DEMO.analyst }));
    iam.destroy();
    return { url, process: child, leakedKeyId: leaked.AccessKey!.AccessKeyId!, stop: () => child.stop(5000) };
  } catch (error) {
    await child.stop(2000);
    throw error;
  }
}
