import { describe, expect, it } from 'vitest';
import { maskSecrets, passwordsIn } from '../../src/cli/secrets.js';

describe('password masking', () => {
  it.each([
    [
      'postgres://meter:s3cret@db.example:5432/client',
      'postgres://meter:***@db.example:5432/client',
    ],
    ['postgresql://meter:p%40ss@db/client', 'postgresql://meter:***@db/client'],
    [
      'postgres://meter:p@ss@db/client?sslmode=require',
      'postgres://meter:***@db/client?sslmode=require',
    ],
    [
      'connect to postgres://a:b@h/x and postgres://c:d@h/y',
      'connect to postgres://a:***@h/x and postgres://c:***@h/y',
    ],
    ['host=db user=meter password=s3cret dbname=x', 'host=db user=meter password=*** dbname=x'],
    ["host=db password='se cret' dbname=x", 'host=db password=*** dbname=x'],
    [
      'postgres://db/client?password=s3cret&sslmode=require',
      'postgres://db/client?password=***&sslmode=require',
    ],
    ['postgres://meter@db/client', 'postgres://meter@db/client'],
  ])('masks %s', (text, masked) => {
    expect(maskSecrets(text)).toBe(masked);
  });

  it('hides the known passwords wherever they appear, as written or decoded', () => {
    const secrets = passwordsIn(['postgres://meter:p%40ssw0rd@db/client', undefined, 'not a url']);
    expect(secrets).toEqual(['p%40ssw0rd', 'p@ssw0rd']);
    expect(maskSecrets('login p@ssw0rd refused (p%40ssw0rd)', secrets)).toBe(
      'login *** refused (***)',
    );
  });
});
