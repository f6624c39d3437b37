import { collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import type { GuardrailState } from '../store/guardrail-state.js';

/**
 * A Prometheus registry of one Cordon process, with Node's process metrics. Labels never carry
 * identities: only closed sets (statuses, playbooks, kill-switch scopes, route templates).
 */
export function createMetricsRegistry(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  return registry;
}

/**
 * `cordon_kill_switch_engaged{scope, name}`: 1 while a kill switch is engaged, 0 once released; read
 * from the guardrail state at each scrape, so every instance reports the same shared state. The
 * global switch is always reported.
 */
export function registerKillSwitchGauge(registry: Registry, state: Pick<GuardrailState, 'killSwitches'>): Gauge<'scope' | 'name'> {
  return new Gauge({
    name: 'cordon_kill_switch_engaged',
    help: 'Whether a kill switch is engaged (1) or released (0), by scope (global, playbook, connector) and name',
    labelNames: ['scope', 'name'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      this.set({ scope: 'global', name: '' }, 0);
      // A scrape must not fail because the store is briefly unavailable; the health check says so.
      const switches = await state.killSwitches().catch(() => []);
      for (const k of switches) this.set({ scope: k.scope.kind, name: k.scope.kind === 'global' ? '' : k.scope.name }, k.engaged ? 1 : 0);
    },
  });
}
