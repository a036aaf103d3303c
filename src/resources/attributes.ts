// Resources described once, as data (the neutron-lib attribute map): which
// attributes exist, how they are stored, their defaults and converters, who may
// set them on create and update, and whether they filter and sort. Request
// validation, policy on attributes, wire rendering, filtering and sorting are
// all derived from these descriptions.
import { HTTPBadRequest } from '../errors.ts';

/** Thrown by converters; becomes "Invalid input for <attr>. Reason: <reason>." */
export class AttributeError extends Error {}

export type Converter = (value: unknown) => unknown;

export interface Attribute {
  /** May be given on create. */
  post?: boolean;
  /** May be given on update. */
  put?: boolean;
  /** Must be given on create. */
  required?: boolean;
  /** Filled in on create when absent (a function for fresh values). */
  default?: unknown;
  /** Validates and normalizes a value from the wire (also used for filter values). */
  convert?: Converter;
  /** Only admins may set it (Neutron's enforce_policy with an admin_only rule). */
  adminSet?: boolean;
  /** Only admins see it on the wire. */
  adminSee?: boolean;
  /** Hidden from the wire entirely. */
  hidden?: boolean;
  /** Stored in this column (default: the attribute's name); false when computed. */
  column?: string | false;
  /** How the column encodes the value. */
  codec?: 'bool' | 'json';
  /** Filterable with ?attr=value (default: true for stored attributes). */
  filter?: boolean;
  /** Usable as sort_key (default: true for stored scalar attributes). */
  sort?: boolean;
}

export interface ResourceDef {
  /** Singular wire name: "network". */
  name: string;
  /** Collection key in JSON bodies: "networks", "security_groups". */
  collection: string;
  /** URL segment when it differs from the collection key: "security-groups". */
  path?: string;
  /** Store table. */
  table: string;
  /** In wire order. */
  attributes: Record<string, Attribute>;
  /** Supports the standard-attr-tag extension. */
  taggable: boolean;
}

export function columnOf(name: string, attr: Attribute): string | null {
  if (attr.column === false) return null;
  return attr.column ?? name;
}

export function isFilterable(name: string, attr: Attribute): boolean {
  return attr.filter ?? columnOf(name, attr) !== null;
}

export function isSortable(name: string, attr: Attribute): boolean {
  return attr.sort ?? (columnOf(name, attr) !== null && attr.codec !== 'json');
}

/** Row value → wire value. */
export function decode(attr: Attribute, value: unknown): unknown {
  if (attr.codec === 'bool') return value === null || value === undefined ? value : Boolean(value);
  if (attr.codec === 'json') return typeof value === 'string' ? JSON.parse(value) : value;
  return value;
}

/** Wire value → row value. */
export function encode(attr: Attribute, value: unknown): unknown {
  if (attr.codec === 'bool') return value === null || value === undefined ? value : value ? 1 : 0;
  if (attr.codec === 'json') return JSON.stringify(value);
  return value;
}

/** Common attributes every resource has (neutron's standard attributes + project). */
export function standardAttributes(): Record<string, Attribute> {
  return {
    id: { column: 'id' },
    project_id: { post: true, convert: str(255) },
    tenant_id: { post: true, convert: str(255), column: false, filter: true },
    description: { post: true, put: true, default: '', convert: str(255) },
    tags: { column: false, filter: false },
    created_at: {},
    updated_at: {},
    revision_number: {},
  };
}

// ---------------------------------------------------------------- converters
const show = (v: unknown) => (typeof v === 'string' ? v : JSON.stringify(v));

export function str(maxLen = 255): Converter {
  return (v) => {
    if (typeof v !== 'string') throw new AttributeError(`'${show(v)}' is not a valid string`);
    if (v.length > maxLen) throw new AttributeError(`'${v}' exceeds maximum length of ${maxLen}`);
    return v;
  };
}

export const bool: Converter = (v) => {
  if (typeof v === 'boolean') return v;
  if (v === 0 || v === 1) return v === 1;
  if (typeof v === 'string') {
    const s = v.toLowerCase();
    if (s === 'true' || s === '1') return true;
    if (s === 'false' || s === '0') return false;
  }
  throw new AttributeError(`'${show(v)}' cannot be converted to boolean`);
};

export function int(min?: number, max?: number): Converter {
  return (v) => {
    const n = typeof v === 'string' && /^-?\d+$/.test(v.trim()) ? Number(v) : v;
    if (typeof n !== 'number' || !Number.isInteger(n)) throw new AttributeError(`'${show(v)}' is not an integer`);
    if (min !== undefined && n < min) throw new AttributeError(`'${n}' is too small - must be at least '${min}'`);
    if (max !== undefined && n > max) throw new AttributeError(`'${n}' is too large - must be no larger than '${max}'`);
    return n;
  };
}

const UUID_RE = /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i;
export const uuid: Converter = (v) => {
  if (typeof v !== 'string' || !UUID_RE.test(v)) throw new AttributeError(`'${show(v)}' is not a valid UUID`);
  return v.toLowerCase();
};

export function oneOf(values: readonly (string | null)[]): Converter {
  return (v) => {
    if (!values.includes(v as string | null)) {
      // Python's repr of a list, as Neutron prints it: ['a', 'b'].
      throw new AttributeError(`'${show(v)}' is not in [${values.map((x) => (x === null ? 'None' : `'${x}'`)).join(', ')}]`);
    }
    return v;
  };
}

export function nullable(inner: Converter): Converter {
  return (v) => (v === null ? null : inner(v));
}

export function listOf(inner: Converter): Converter {
  return (v) => {
    if (!Array.isArray(v)) throw new AttributeError(`'${show(v)}' is not a list`);
    return v.map(inner);
  };
}

export function uniqueList(inner: Converter): Converter {
  return (v) => {
    const items = listOf(inner)(v) as unknown[];
    const seen = new Set(items.map((i) => JSON.stringify(i)));
    if (seen.size !== items.length) throw new AttributeError(`Duplicate items in the list: '${show(v)}'`);
    return items;
  };
}

export const dict: Converter = (v) => {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new AttributeError(`'${show(v)}' is not a dictionary`);
  return v;
};

const MAC_RE = /^([0-9a-f]{2}[:-]){5}[0-9a-f]{2}$/i;
export const mac: Converter = (v) => {
  if (typeof v !== 'string' || !MAC_RE.test(v)) throw new AttributeError(`'${show(v)}' is not a valid MAC address`);
  const norm = v.toLowerCase().replace(/-/g, ':');
  if (norm === '00:00:00:00:00:00' || (parseInt(norm.slice(0, 2), 16) & 1) === 1) {
    throw new AttributeError(`'${v}' is not a valid MAC address`);
  }
  return norm;
};

// -------------------------------------------------------- request handling
export type Body = Record<string, unknown>;

/**
 * Checks one resource body of a create or update against the definition and
 * returns the converted values (defaults filled on create). Throws Neutron's
 * HTTPBadRequest messages for unknown, read-only, missing and invalid attributes.
 */
export function parseBody(def: ResourceDef, body: unknown, op: 'create' | 'update'): Body {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new HTTPBadRequest(`Unable to find '${def.name}' in request body`);
  }
  const input = body as Body;
  const unknown = Object.keys(input).filter((k) => !(k in def.attributes));
  if (unknown.length) throw new HTTPBadRequest(`Unrecognized attribute(s) '${unknown.join(', ')}'`);

  const out: Body = {};
  for (const [name, value] of Object.entries(input)) {
    const attr = def.attributes[name];
    if (op === 'create' && !attr.post) throw new HTTPBadRequest(`Attribute '${name}' not allowed in POST`);
    if (op === 'update' && !attr.put) throw new HTTPBadRequest(`Cannot update read-only attribute ${name}`);
    out[name] = convertAttribute(name, attr, value);
  }
  if (op === 'create') {
    for (const [name, attr] of Object.entries(def.attributes)) {
      if (!attr.post || name in out) continue;
      if (attr.required) throw new HTTPBadRequest(`Failed to parse request. Required attribute '${name}' not specified`);
      if ('default' in attr) out[name] = typeof attr.default === 'function' ? attr.default() : structuredClone(attr.default);
    }
  }
  return out;
}

export function convertAttribute(name: string, attr: Attribute, value: unknown): unknown {
  if (!attr.convert) return value;
  try {
    return attr.convert(value);
  } catch (e) {
    if (e instanceof AttributeError) throw new HTTPBadRequest(`Invalid input for ${name}. Reason: ${e.message}.`);
    throw e;
  }
}
