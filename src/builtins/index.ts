import { device } from './device.js';
import { deviceRegister } from './device-register.js';
import { meter } from './meter.js';
import { register } from './register.js';

export { syncSchemaSql } from './sync-schema.js';
export { device, deviceRegister, meter, register };

/** The built-in definitions, in dependency order: device, meter, register, device_register. */
export const builtInEntities: readonly [
  typeof device,
  typeof meter,
  typeof register,
  typeof deviceRegister,
] = [device, meter, register, deviceRegister] as const;

/** The built-in definitions by name. */
export const builtIns: {
  readonly device: typeof device;
  readonly meter: typeof meter;
  readonly register: typeof register;
  readonly device_register: typeof deviceRegister;
} = { device, meter, register, device_register: deviceRegister } as const;
