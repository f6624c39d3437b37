/** The no-op activities of the bare baseline workflow: they return at once and touch nothing. */
export function createBareActivities() {
  return {
    /** Does nothing; stands in for one of Cordon's activities. */
    async noop(): Promise<void> {},
  };
}

/** The bare activities, as the bare workflow sees them. */
export type BareActivities = ReturnType<typeof createBareActivities>;
