/**
 * The one catalogue of failures Cordon reports. Each entry says whether a retry can help and which
 * HTTP status the API answers with, so workflows, activities, the API and the CLI agree.
 */
export const ErrorCatalogue = {
  // Input and identity (API edge).
  InvalidRequest: { httpStatus: 400, retryable: false, summary: 'the request body or parameters are invalid' },
  Unauthenticated: { httpStatus: 401, retryable: false, summary: 'missing or invalid credentials' },
  Forbidden: { httpStatus: 403, retryable: false, summary: 'the caller lacks the role this needs' },
  NotFound: { httpStatus: 404, retryable: false, summary: 'no such resource' },
  PayloadTooLarge: { httpStatus: 413, retryable: false, summary: 'the request body is too large' },
  UnsupportedMediaType: { httpStatus: 415, retryable: false, summary: 'the request body must be JSON' },
  UnknownAlertKind: { httpStatus: 422, retryable: false, summary: 'no playbook handles this alert kind' },
  AlertIncomplete: { httpStatus: 422, retryable: false, summary: 'the alert lacks what its playbook needs' },
  ServiceUnavailable: { httpStatus: 503, retryable: true, summary: 'a part Cordon depends on is down' },
  Internal: { httpStatus: 500, retryable: false, summary: 'unexpected error' },

  // Approvals (rejected by the workflow's update validator).
  RunNotAwaitingApproval: { httpStatus: 409, retryable: false, summary: 'the run is not awaiting approval' },
  StalePlanDigest: { httpStatus: 409, retryable: false, summary: 'the approval names a plan digest that is not the current plan' },
  SeparationOfDuties: { httpStatus: 403, retryable: false, summary: 'the requester of a run cannot approve it' },
  DuplicateApproval: { httpStatus: 409, retryable: false, summary: 'this approver has already decided on this run' },
  MissingApproverRole: { httpStatus: 403, retryable: false, summary: 'the approver lacks a role the policy requires' },
  InvalidApproval: { httpStatus: 400, retryable: false, summary: 'the approval message is malformed' },
  ForgedApproval: { httpStatus: 403, retryable: false, summary: 'the approval is not signed by the API, or its signature is used, altered or expired' },

  // Rollbacks (refused by the workflow's update validator).
  RollbackNotAllowed: { httpStatus: 409, retryable: false, summary: 'the run cannot be rolled back now (not completed, another rollback in progress, or nothing left to undo)' },
  RollbackWindowClosed: { httpStatus: 409, retryable: false, summary: "the run's rollback window has ended" },
  UnknownAction: { httpStatus: 400, retryable: false, summary: 'the rollback names an action this run did not change, or one already rolled back' },
  ForgedRollback: { httpStatus: 403, retryable: false, summary: 'the rollback request is not signed by the API, or its signature is used, altered or expired' },
  // Connectors and playbooks (activities).
  TargetNotFound: { httpStatus: 404, retryable: false, summary: 'the target does not exist in the system of record' },
  TargetAmbiguous: { httpStatus: 409, retryable: false, summary: 'the subject matches more than one identity' },
  ConnectorRejected: { httpStatus: 502, retryable: false, summary: 'the system of record refused the request (4xx)' },
  ConnectorUnavailable: { httpStatus: 503, retryable: true, summary: 'the system of record is unreachable or failing (5xx)' },
  ConcurrentModification: { httpStatus: 409, retryable: true, summary: 'the target changed while Cordon was acting; re-read and retry' },
  UnsupportedOperation: { httpStatus: 422, retryable: false, summary: 'the connector of this system does not offer the operation the playbook needs' },
  UnknownSystem: { httpStatus: 422, retryable: false, summary: 'no connector is configured for this system' },
  UnknownPlaybook: { httpStatus: 422, retryable: false, summary: 'no such playbook' },
  PolicyEvaluationFailed: { httpStatus: 500, retryable: false, summary: 'the policy engine could not evaluate the request' },

  // How a run ended, when it did not complete (RunView.error.type).
  PolicyDenied: { httpStatus: 403, retryable: false, summary: 'policy denies at least one action of the plan' },
  ApprovalRejected: { httpStatus: 409, retryable: false, summary: 'an approver rejected the plan' },
  ApprovalExpired: { httpStatus: 409, retryable: false, summary: 'the approval window ended without a quorum' },
  ActionFailed: { httpStatus: 500, retryable: false, summary: 'an action failed; the actions before it were undone' },
  VerificationFailed: { httpStatus: 500, retryable: false, summary: 'a change did not hold when re-read' },
  CompensationFailed: { httpStatus: 500, retryable: false, summary: 'an undo failed; a person must finish it' },
  Cancelled: { httpStatus: 409, retryable: false, summary: 'the run was cancelled' },
  GuardrailBlocked: { httpStatus: 409, retryable: false, summary: 'a kill switch or a spent budget stops the mutation for now' },
  PausedTooLong: { httpStatus: 409, retryable: false, summary: "the run stayed paused until its window ended" },
  RollbackFailed: { httpStatus: 500, retryable: false, summary: 'an undo of a rollback failed; a person must finish it' },
  PlanUnstable: { httpStatus: 409, retryable: false, summary: 'the target kept changing before the plan could run' },
  InjectedFault: { httpStatus: 500, retryable: false, summary: 'a fault injected by a test' },
} as const;

/** A failure type from the catalogue. */
export type ErrorType = keyof typeof ErrorCatalogue;

/** The failure types a retry cannot fix: activity retry policies list them as non-retryable. */
export const nonRetryableErrorTypes: ErrorType[] = (Object.keys(ErrorCatalogue) as ErrorType[]).filter(
  (type) => !ErrorCatalogue[type].retryable,
);

/** Returns whether `type` names a catalogue entry. */
export function isErrorType(type: unknown): type is ErrorType {
  return typeof type === 'string' && Object.hasOwn(ErrorCatalogue, type);
}

/** The HTTP status for a failure type; unknown types map to 500. */
export function httpStatusOf(type: string | undefined | null): number {
  return isErrorType(type) ? ErrorCatalogue[type].httpStatus : 500;
}

/**
 * An error with a catalogue type, thrown outside workflow code (activities convert it to an
 * `ApplicationFailure`, the API to an HTTP answer).
 */
export class CordonError extends Error {
  readonly type: ErrorType;
  readonly details: Record<string, unknown> | undefined;

  constructor(type: ErrorType, message: string, details?: Record<string, unknown>) {
    super(message);
    this.name = 'CordonError';
    this.type = type;
    this.details = details;
  }

  get retryable(): boolean {
    return ErrorCatalogue[this.type].retryable;
  }
}
