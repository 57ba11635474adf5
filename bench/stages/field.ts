/**
 * `npm run bench -- --field`: each field failure of these transports behind a reverse proxy,
 * reproduced with the naive setting and measured with the lab's (bench/field/*.ts), one after the
 * other on a quiet machine; the rows go into the report's `field` section (results/field.*).
 */
import type { HeaderMode } from '../clients/browser-headers.js';
import { haveNginx } from '../processes/nginx.js';
import type { Progress } from '../plan/progress.js';
import type { FieldResult } from '../../report/types.js';
import { measureBuffering } from '../field/buffering.js';
import { measureDeploy } from '../field/deploy.js';
import { type FieldEnv, fieldEnv } from '../field/env.js';
import { measureSticky } from '../field/sticky.js';
import { measureStorm } from '../field/storm.js';
import { measureTabs } from '../field/tabs.js';
import { measureTimeouts } from '../field/timeouts.js';
import { measureUpgrade } from '../field/upgrade.js';
import type { Stage } from './stage.js';

/** Every scenario, in the order the report lists them. */
export const FIELD_SCENARIOS: readonly {
  name: string;
  measure: (env: FieldEnv) => Promise<FieldResult[]>;
  estimateSec: number;
}[] = [
  { name: 'proxy-buffering', measure: measureBuffering, estimateSec: 35 },
  { name: 'idle-timeouts', measure: measureTimeouts, estimateSec: 95 },
  { name: 'no-sticky', measure: (env) => measureSticky(env), estimateSec: 55 },
  { name: 'reconnect-storm', measure: (env) => measureStorm(env), estimateSec: 65 },
  { name: 'rolling-deploy', measure: (env) => measureDeploy(env), estimateSec: 85 },
  { name: 'upgrade-stripped', measure: (env) => measureUpgrade(env), estimateSec: 30 },
  { name: 'many-tabs', measure: (env) => measureTabs(env), estimateSec: 50 },
];

export async function runField(opts: {
  log: Progress;
  redisUrl: string;
  keyPrefix: string;
  headers: HeaderMode;
  only?: readonly string[];
}): Promise<FieldResult[]> {
  if (!haveNginx()) throw new Error('--field needs nginx (apt-get install -y nginx); .ci/run installs it');
  const rows: FieldResult[] = [];
  for (const s of FIELD_SCENARIOS.filter((x) => opts.only === undefined || opts.only.includes(x.name))) {
    const env = await fieldEnv(opts);
    try {
      rows.push(...(await s.measure(env)));
    } finally {
      await env.close();
    }
  }
  return rows;
}

/** `--field`: the field scenarios, each on labs and an nginx of its own (bench/field/env.ts), once the run's servers are stopped. */
export const fieldStage: Stage = {
  name: 'field',
  runs: (opts) => opts.field !== undefined,
  estimateSec: (opts) =>
    FIELD_SCENARIOS.filter((f) => opts.field?.includes(f.name)).reduce((a, f) => a + f.estimateSec, 0),
  afterProcesses: true,
  run: async ({ opts, log }) => ({
    field: await runField({
      log,
      redisUrl: opts.lab.redisUrl,
      keyPrefix: opts.lab.redisKeyPrefix,
      headers: opts.headers,
      only: opts.field!,
    }),
  }),
};
