import { defineSearchAttributeKey } from '@temporalio/common';

/** The run's status (RunStatus). */
export const CordonStatus = defineSearchAttributeKey('CordonStatus', 'KEYWORD');
/** The playbook the run follows. */
export const CordonPlaybook = defineSearchAttributeKey('CordonPlaybook', 'KEYWORD');
/** Ids and names of the identities the run is about. */
export const CordonTargets = defineSearchAttributeKey('CordonTargets', 'KEYWORD_LIST');
/** The alert's source. */
export const CordonAlertSource = defineSearchAttributeKey('CordonAlertSource', 'KEYWORD');
/** The alert's severity. */
export const CordonSeverity = defineSearchAttributeKey('CordonSeverity', 'KEYWORD');

/** The run a rerun was started from. */
export const CordonRerunOf = defineSearchAttributeKey('CordonRerunOf', 'KEYWORD');

/** Every custom search attribute Cordon uses, to register on a namespace. */
export const cordonSearchAttributes = [CordonStatus, CordonPlaybook, CordonTargets, CordonAlertSource, CordonSeverity, CordonRerunOf] as const;
