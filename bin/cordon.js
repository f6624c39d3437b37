#!/usr/bin/env node
// `npx cordon`: runs the TypeScript CLI through tsx's loader (no build step).
import { register } from 'tsx/esm/api';

register();
await import('../cli/index.ts');
