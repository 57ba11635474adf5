/**
 * One network condition as run and as a report records it (profiles.ts): a TypeBox schema and its
 * type, one source. A module of its own so that the lab, which parses profiles (config.ts) but never
 * validates one, does not load TypeBox at start-up.
 */
import { type Static, Type } from 'typebox';

const Ms = Type.Number({ minimum: 0 });
const Kbps = Type.Union([Type.Number({ exclusiveMinimum: 0 }), Type.Null()]);

/** One network condition, as run and as a report records it. */
export const NetworkProfileSchema = Type.Object(
  {
    name: Type.String({ minLength: 1 }),
    /** No relay: connect straight to the server (the `loopback` profile). */
    direct: Type.Boolean(),
    rttMs: Ms,
    jitterMs: Ms,
    downKbps: Kbps,
    upKbps: Kbps,
    loss: Type.Number({ minimum: 0, maximum: 1 }),
    retransmitMs: Type.Number({ exclusiveMinimum: 0 }),
    source: Type.String({ minLength: 1 }),
  },
  { additionalProperties: false },
);
export type NetworkProfile = Static<typeof NetworkProfileSchema>;
