import { wsClients } from './clients/ws.js';
import { sseClients } from './clients/sse.js';
import { longPollClients, shortPollClients } from './clients/poll.js';
import { runScenario } from './run-scenario.js';
import { startServer } from './server-process.js';
const server = await startServer('lab', {});
for (const [transport, clients, statsKey, holds] of [['ws', wsClients, 'ws', true], ['sse', sseClients, 'sse', true], ['poll', longPollClients, 'poll', true], ['short-poll', shortPollClients, 'shortPoll', false]] as const) {
  const t0 = performance.now();
  const r = await runScenario(server, { server: 'lab', transport, process: { script: 'lab', options: {} }, clients, statsKey, holdsConnections: holds } as any, { clients: Number(process.env.C), ratePerSec: Number(process.env.R), payloadBytes: 100, durationSec: 2 });
  console.log(transport, ((performance.now() - t0) / 1000).toFixed(1) + 's', JSON.stringify(r));
}
await server.stop();
