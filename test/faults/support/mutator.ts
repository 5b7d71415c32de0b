/**
 * Changes the Client System at random, one small transaction at a time, until `stop` on stdin:
 * inserts, updates and deletes of registers, junction rows, meters and their elements (of two
 * tenants), registers moving between tenants, device descriptions. Keeps to the schema's
 * constraints: children go before their parents, elements carry their meter's tenant.
 * Prints `ready`, then `stopped` with the count of each kind of change.
 *
 *   SOURCE_URL=… SEED=42 tsx test/faults/support/mutator.ts
 */
import { createInterface } from 'node:readline';
import pg from 'pg';
import { mulberry32 } from './figures.js';

const client = new pg.Client({ connectionString: process.env.SOURCE_URL });
await client.connect();
const print = (line: Record<string, unknown>) =>
  process.stdout.write(`${JSON.stringify({ ...line, at: Date.now() })}\n`);

const random = mulberry32(Number(process.env.SEED ?? 1));
const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
const tenant = () => (random() < 0.7 ? 1 : 2);
const word = () => pick(['Energy', 'Power', 'Voltage', 'Current', 'Reactive', 'Frequency']);
/** A random existing id, or undefined when the table has none that qualify. */
async function anyId(sql: string, values: unknown[] = []): Promise<number | undefined> {
  const { rows } = await client.query(`${sql} ORDER BY random() LIMIT 1`, values);
  return rows[0]?.id;
}

const changes: Record<string, (() => Promise<unknown>) | undefined> = {
  'insert register': async () => {
    const { rows } = await client.query(
      `INSERT INTO register (tenant_id, name, register, unit, field_name)
       VALUES ($1, $2, $3, $4, $5) RETURNING register_id AS id`,
      [
        tenant(),
        `${word()} ${Math.floor(random() * 1e6)}`,
        Math.floor(random() * 9000),
        pick(['kWh', 'kW', 'V', null]),
        pick(['f', null]),
      ],
    );
    await client.query(
      'INSERT INTO device_register (device_id, register_id) VALUES ($1, $2) ON CONFLICT DO NOTHING',
      [1 + Math.floor(random() * 3), rows[0].id],
    );
  },
  'update register': async () => {
    const id = await anyId('SELECT register_id AS id FROM register');
    if (id === undefined) return;
    await client.query(
      'UPDATE register SET name = $2, unit = $3, register = register + 1, field_name = $4 WHERE register_id = $1',
      [
        id,
        `${word()} ${Math.floor(random() * 1e6)}`,
        pick(['kWh', 'kW', 'V', null]),
        pick(['g', null]),
      ],
    );
  },
  'move register to the other tenant': async () => {
    const id = await anyId('SELECT register_id AS id FROM register');
    if (id === undefined) return;
    await client.query('UPDATE register SET tenant_id = 3 - tenant_id WHERE register_id = $1', [
      id,
    ]);
  },
  'delete register': async () => {
    const id = await anyId('SELECT register_id AS id FROM register');
    if (id === undefined) return;
    await client.query('DELETE FROM device_register WHERE register_id = $1', [id]);
    await client.query('DELETE FROM register WHERE register_id = $1', [id]);
  },
  'insert device_register': async () => {
    const id = await anyId('SELECT register_id AS id FROM register');
    if (id === undefined) return;
    await client.query(
      'INSERT INTO device_register (device_id, register_id) VALUES ($1, $2) ON CONFLICT DO NOTHING',
      [1 + Math.floor(random() * 3), id],
    );
  },
  'delete device_register': async () => {
    const id = await anyId('SELECT id FROM device_register');
    if (id !== undefined) await client.query('DELETE FROM device_register WHERE id = $1', [id]);
  },
  'insert meter': async () => {
    const owner = tenant();
    const { rows } = await client.query(
      `INSERT INTO meter (tenant_id, name, device_id, ip, port, active)
       VALUES ($1, $2, $3, $4, 502, true) RETURNING meter_id AS id`,
      [
        owner,
        `Board ${Math.floor(random() * 1e4)}`,
        pick([1, 2, 3, null]),
        `10.7.${Math.floor(random() * 250)}.${Math.floor(random() * 250)}`,
      ],
    );
    for (const element of ['A', 'B', 'C'].slice(0, 1 + Math.floor(random() * 3))) {
      await client.query(
        'INSERT INTO meter_element (meter_id, tenant_id, element, name) VALUES ($1, $2, $3, $4)',
        [rows[0].id, owner, element, `Phase ${element}`],
      );
    }
  },
  'update meter': async () => {
    const id = await anyId('SELECT meter_id AS id FROM meter');
    if (id === undefined) return;
    await client.query(
      'UPDATE meter SET ip = $2, port = $3, active = $4, device_id = $5, name = $6 WHERE meter_id = $1',
      [
        id,
        pick(['10.8.0.1', '10.8.0.2', null]),
        pick([502, 503, null]),
        random() < 0.8,
        pick([1, 2, 3, null]),
        `Board ${Math.floor(random() * 1e4)}`,
      ],
    );
  },
  'rename meter element': async () => {
    const id = await anyId('SELECT meter_element_id AS id FROM meter_element');
    if (id === undefined) return;
    await client.query('UPDATE meter_element SET name = $2 WHERE meter_element_id = $1', [
      id,
      `Phase ${word()}`,
    ]);
  },
  'delete meter element': async () => {
    const id = await anyId('SELECT meter_element_id AS id FROM meter_element');
    if (id !== undefined)
      await client.query('DELETE FROM meter_element WHERE meter_element_id = $1', [id]);
  },
  'delete meter': async () => {
    const id = await anyId('SELECT meter_id AS id FROM meter');
    if (id === undefined) return;
    await client.query('DELETE FROM meter_element WHERE meter_id = $1', [id]);
    await client.query('DELETE FROM meter WHERE meter_id = $1', [id]);
  },
  'update device': async () => {
    await client.query('UPDATE device SET description = $2 WHERE device_id = $1', [
      1 + Math.floor(random() * 3),
      `${word()} meter, rev ${Math.floor(random() * 100)}`,
    ]);
  },
};
const kinds = Object.keys(changes);
const counts: Record<string, number> = Object.fromEntries(kinds.map((kind) => [kind, 0]));

let stopping = false;
const input = createInterface({ input: process.stdin });
input.on('line', (line) => {
  if (line === 'stop') stopping = true;
});
print({ event: 'ready' });
while (!stopping) {
  const kind = pick(kinds);
  await client.query('BEGIN');
  await changes[kind]?.();
  await client.query('COMMIT');
  counts[kind] = (counts[kind] ?? 0) + 1;
  await new Promise((resolve) => setTimeout(resolve, Math.floor(random() * 20)));
}
input.close();
await client.end();
print({ event: 'stopped', changes: counts });
