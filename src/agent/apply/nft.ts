// nftables: rendering our tables, reading them back cheaply, and the pure
// table diff that turns plan-vs-host into one small `nft -f -` transaction.
//
// How a chain's content is known without listing rules: every chain we write
// carries `comment "nucleon:<hash of its hook and rules>"`, and `nft list
// chains` (cheap: no rules) prints comments. Per-port chain names also embed a
// hash of their rules (the compile contract in plan.ts), so a changed port is
// a new chain plus a changed map element, never an edit in place. nft 1.0.6
// silently ignores a new comment on an existing chain, so a chain whose rules
// change under the same name can only be recreated: base chains (nothing jumps
// to them) are flushed, deleted and re-added in the same transaction; a
// regular chain changed in place makes us replace the whole table atomically
// (correct, just slower: the compile should not do that).
import { createHash } from 'node:crypto';
import type { FirewallPort, NftTable } from '../plan.ts';

/** Tables whose name starts with this are ours; nothing else is ever touched. */
export const NFT_PREFIX = 'nucleon_';
const COMMENT_PREFIX = 'nucleon:';

export interface NftChainState { comment: string | null; base: boolean }
export interface NftSetState { type: string; flags: string[]; elements: string[] }
export interface NftMapState { type: string; flags: string[]; elements: Record<string, string> }

export interface NftTableState {
  family: string;
  name: string;
  chains: Record<string, NftChainState>;
  sets: Record<string, NftSetState>;
  maps: Record<string, NftMapState>;
}

type PlanChain = NftTable['chains'][string];

export function chainHash(chain: PlanChain): string {
  return createHash('sha256').update(JSON.stringify([chain.hook ?? null, chain.rules])).digest('hex').slice(0, 16);
}

export const chainComment = (chain: PlanChain) => `${COMMENT_PREFIX}${chainHash(chain)}`;

const hookLine = (h: NonNullable<PlanChain['hook']>) => `type ${h.type} hook ${h.hook} priority ${h.priority}; policy ${h.policy};`;

/** The body of a chain declaration (comment first, then the hook). */
function chainDecl(chain: PlanChain): string {
  return `comment "${chainComment(chain)}";${chain.hook ? ` ${hookLine(chain.hook)}` : ''}`;
}

function setDecl(s: { type: string; flags?: string[]; elements: string[] | Record<string, string> }, withElements: boolean): string {
  const parts = [`type ${s.type};`];
  if (s.flags?.length) parts.push(`flags ${s.flags.join(',')};`);
  const elems = Array.isArray(s.elements) ? s.elements : Object.entries(s.elements).map(([k, v]) => `${k} : ${v}`);
  if (withElements && elems.length) parts.push(`elements = { ${elems.join(', ')} }`);
  return parts.join(' ');
}

/**
 * Block syntax for a whole table, with our chain comments. Chains may jump to
 * chains declared later and maps may point at them: nft declares every chain
 * of the block before it adds rules and elements.
 */
export function renderTable(t: NftTable): string {
  const out = [`table ${t.family} ${t.name} {`];
  for (const [name, s] of Object.entries(t.sets)) out.push(`\tset ${name} { ${setDecl(s, true)} }`);
  for (const [name, m] of Object.entries(t.maps)) out.push(`\tmap ${name} { ${setDecl(m, true)} }`);
  for (const [name, c] of Object.entries(t.chains)) {
    out.push(`\tchain ${name} {`, `\t\t${chainDecl(c)}`);
    for (const r of c.rules) out.push(`\t\t${r}`);
    out.push('\t}');
  }
  out.push('}');
  return out.join('\n');
}

// ---------------------------------------------------------------------------
// Reading `nft list chains; list sets; list maps` (text: one nft process for all three).

/** Splits an element list at top-level commas. */
function splitElements(body: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let quoted = false;
  let cur = '';
  for (const ch of body) {
    if (ch === '"') quoted = !quoted;
    if (!quoted && (ch === '{' || ch === '[' || ch === '(')) depth++;
    if (!quoted && (ch === '}' || ch === ']' || ch === ')')) depth--;
    if (!quoted && depth === 0 && ch === ',') {
      if (cur.trim()) out.push(cur.trim());
      cur = '';
    } else cur += ch;
  }
  if (cur.trim()) out.push(cur.trim());
  return out;
}

/** Splits a map element "key : value" at the first top-level " : ". */
function splitMapElement(e: string): [string, string] {
  const i = e.indexOf(' : ');
  return i < 0 ? [e, ''] : [e.slice(0, i).trim(), e.slice(i + 3).trim()];
}

export function parseNftListing(text: string): NftTableState[] {
  const tables = new Map<string, NftTableState>();
  const lines = text.split('\n');
  let table: NftTableState | null = null;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    let m: RegExpExecArray | null;
    if ((m = /^table (\S+) (\S+) \{$/.exec(line))) {
      const key = `${m[1]} ${m[2]}`;
      table = tables.get(key) ?? { family: m[1], name: m[2], chains: {}, sets: {}, maps: {} };
      tables.set(key, table);
    } else if (table && (m = /^chain (\S+) \{$/.exec(line))) {
      const chain: NftChainState = { comment: null, base: false };
      for (i++; i < lines.length && lines[i].trim() !== '}'; i++) {
        const l = lines[i].trim();
        const c = /^comment "(.*)"$/.exec(l);
        if (c) chain.comment = c[1];
        else if (/^type \S+ hook /.test(l)) chain.base = true;
      }
      table.chains[unquote(m[1])] = chain;
    } else if (table && (m = /^(set|map) (\S+) \{$/.exec(line))) {
      let type = '';
      let flags: string[] = [];
      let elements: string[] = [];
      for (i++; i < lines.length && lines[i].trim() !== '}'; i++) {
        const l = lines[i].trim();
        if (l.startsWith('type ')) type = l.slice(5).trim();
        else if (l.startsWith('flags ')) flags = l.slice(6).split(',').map((f) => f.trim());
        else if (l.startsWith('elements = {')) {
          // The list wraps over several lines and ends at the first unquoted
          // '}'. Scan each line once (a 1,000-element map is ~500 lines).
          const parts = [l.slice('elements = {'.length)];
          const scan = { quoted: false };
          while (!closes(parts[parts.length - 1], scan) && i + 1 < lines.length) parts.push(lines[++i].trim());
          const body = parts.join(' ');
          elements = splitElements(body.slice(0, body.lastIndexOf('}')));
        }
      }
      if (m[1] === 'set') table.sets[unquote(m[2])] = { type, flags, elements };
      else {
        const map: Record<string, string> = {};
        for (const e of elements) {
          const [k, v] = splitMapElement(e);
          map[k] = v;
        }
        table.maps[unquote(m[2])] = { type, flags, elements: map };
      }
    } else if (line === '}') {
      table = null;
    }
  }
  return [...tables.values()];
}

const unquote = (s: string) => s.replace(/^"(.*)"$/, '$1');

/** Does this line close the element list? Quote state carries over between lines. */
function closes(line: string, scan: { quoted: boolean }): boolean {
  for (let i = 0; i < line.length; i++) {
    const ch = line[i];
    if (ch === '"') scan.quoted = !scan.quoted;
    else if (ch === '}' && !scan.quoted) return true;
  }
  return false;
}

/**
 * One spelling per element, so plan and listing compare equal: nft prints
 * marks as 0x%08x, host prefixes without /32, names in quotes, and may wrap
 * lists differently from how they were written.
 */
export function normElement(s: string): string {
  // Hot: a 1,000-port firewall has ~5,000 map elements on each side of the diff.
  const t = s.trim();
  if (!t.includes(' . ')) return normAtom(t);
  return t.replace(/\s+/g, ' ').split(' . ').map(normAtom).join(' . ');
}

const HEX = /^0x[0-9a-f]+$/i;

function normAtom(raw: string): string {
  let t = raw.trim();
  if (t.startsWith('"') && t.endsWith('"')) return t.slice(1, -1);
  if (t.startsWith('goto ') || t.startsWith('jump ')) return t.replace(/\s+/g, ' ');
  if (t.startsWith('0x') && HEX.test(t)) return t.length <= 10 ? String(parseInt(t, 16)) : BigInt(t).toString();
  if (/^\d+$/.test(t)) return BigInt(t).toString();
  if (/^[0-9.]+\/32$/.test(t)) return t.slice(0, -3);
  if (/^[0-9a-f:]+\/128$/i.test(t)) return t.slice(0, -4).toLowerCase();
  if (/^[0-9a-f:./-]+$/i.test(t) && /[:.]/.test(t)) {
    // Addresses, prefixes, ranges and MACs: case-insensitive.
    return t.split('-').map((p) => (/^[0-9.]+\/32$/.test(p) ? p.slice(0, -3) : p)).join('-').toLowerCase();
  }
  return t;
}

const normType = (t: string) => t.trim().replace(/\s+/g, ' ');
const hasInterval = (flags: string[] | undefined) => (flags ?? []).includes('interval');

// ---------------------------------------------------------------------------
// The table diff.

export interface MapChange { map: string; mapType: string; key: string; kind: 'changed' | 'removed' }
export interface SetRemoval { set: string; setType: string; element: string }

export interface TableDiff {
  family: string;
  name: string;
  /** nft -f statements; empty when nothing changed. */
  lines: string[];
  /** How: 'none' | 'create' (absent) | 'incremental' | 'replace' (atomic full rewrite) | 'delete' (stale table). */
  mode: 'none' | 'create' | 'incremental' | 'replace' | 'delete';
  /** Why replace was needed. */
  why?: string;
  /** For cutting connections (see conntrackCuts). */
  mapChanges: MapChange[];
  setRemovals: SetRemoval[];
}

const tableRef = (family: string, name: string) => `${family} ${name}`;

/** Pure: what to run so that `state` (may be absent) becomes `plan` (may be absent). */
export function diffTable(plan: NftTable | undefined, state: NftTableState | undefined): TableDiff {
  const family = plan?.family ?? state!.family;
  const name = plan?.name ?? state!.name;
  const ref = tableRef(family, name);
  const base: TableDiff = { family, name, lines: [], mode: 'none', mapChanges: [], setRemovals: [] };
  if (!plan) return { ...base, mode: 'delete', lines: [`delete table ${ref}`] };
  if (!state) return { ...base, mode: 'create', lines: [renderTable(plan)] };

  const lines = { newDecls: [] as string[], newRules: [] as string[], baseChains: [] as string[], elemDel: [] as string[], elemAdd: [] as string[], flush: [] as string[], del: [] as string[] };
  const reasons: string[] = [];

  // Sets: new ones declared empty (their elements are added with the others),
  // changed types force a rewrite, elements added/deleted one by one.
  for (const [setName, s] of Object.entries(plan.sets)) {
    const st = state.sets[setName];
    if (!st) {
      lines.newDecls.push(`add set ${ref} ${setName} { ${setDecl(s, false)} }`);
      if (s.elements.length) lines.elemAdd.push(`add element ${ref} ${setName} { ${s.elements.join(', ')} }`);
      continue;
    }
    if (normType(st.type) !== normType(s.type) || hasInterval(st.flags) !== hasInterval(s.flags)) reasons.push(`set ${setName} changed type`);
    const want = new Map(s.elements.map((e) => [normElement(e), e]));
    const have = new Map(st.elements.map((e) => [normElement(e), e]));
    const add = [...want].filter(([k]) => !have.has(k)).map(([, raw]) => raw);
    const del = [...have].filter(([k]) => !want.has(k));
    if (del.length) lines.elemDel.push(`delete element ${ref} ${setName} { ${del.map(([, raw]) => raw).join(', ')} }`);
    if (add.length) lines.elemAdd.push(`add element ${ref} ${setName} { ${add.join(', ')} }`);
    for (const [k] of del) base.setRemovals.push({ set: setName, setType: st.type, element: k });
  }
  for (const [mapName, m] of Object.entries(plan.maps)) {
    const st = state.maps[mapName];
    if (!st) {
      lines.newDecls.push(`add map ${ref} ${mapName} { ${setDecl({ type: m.type, elements: [] }, false)} }`);
      const elems = Object.entries(m.elements).map(([k, v]) => `${k} : ${v}`);
      if (elems.length) lines.elemAdd.push(`add element ${ref} ${mapName} { ${elems.join(', ')} }`);
      continue;
    }
    if (normType(st.type) !== normType(m.type)) reasons.push(`map ${mapName} changed type`);
    const want = new Map(Object.entries(m.elements).map(([k, v]) => [normElement(k), { k, v }]));
    const have = new Map(Object.entries(st.elements).map(([k, v]) => [normElement(k), { k, v }]));
    const del: string[] = [];
    const add: string[] = [];
    for (const [nk, h] of have) {
      const w = want.get(nk);
      if (!w) {
        del.push(h.k);
        base.mapChanges.push({ map: mapName, mapType: st.type, key: nk, kind: 'removed' });
      } else if (normElement(w.v) !== normElement(h.v)) {
        // No "replace element" in nft 1.0.6: delete the key, add it back (same transaction, atomic).
        del.push(h.k);
        add.push(`${w.k} : ${w.v}`);
        base.mapChanges.push({ map: mapName, mapType: st.type, key: nk, kind: 'changed' });
      }
    }
    for (const [nk, w] of want) if (!have.has(nk)) add.push(`${w.k} : ${w.v}`);
    if (del.length) lines.elemDel.push(`delete element ${ref} ${mapName} { ${del.join(', ')} }`);
    if (add.length) lines.elemAdd.push(`add element ${ref} ${mapName} { ${add.join(', ')} }`);
  }

  for (const [chainName, c] of Object.entries(plan.chains)) {
    const st = state.chains[chainName];
    if (!st) {
      lines.newDecls.push(`add chain ${ref} ${chainName} { ${chainDecl(c)} }`);
      for (const r of c.rules) lines.newRules.push(`add rule ${ref} ${chainName} ${r}`);
      continue;
    }
    if (st.comment === chainComment(c)) continue;
    if (c.hook && st.base) {
      lines.baseChains.push(`flush chain ${ref} ${chainName}`, `delete chain ${ref} ${chainName}`, `add chain ${ref} ${chainName} { ${chainDecl(c)} }`);
      for (const r of c.rules) lines.baseChains.push(`add rule ${ref} ${chainName} ${r}`);
    } else {
      reasons.push(`chain ${chainName} changed in place`);
    }
  }
  // Stale chains: emptied first (they may jump to each other), deleted after
  // the map elements that pointed at them are gone.
  for (const chainName of Object.keys(state.chains)) {
    if (plan.chains[chainName]) continue;
    lines.flush.push(`flush chain ${ref} ${chainName}`);
    lines.del.push(`delete chain ${ref} ${chainName}`);
  }
  for (const setName of Object.keys(state.sets)) if (!plan.sets[setName]) lines.del.push(`delete set ${ref} ${setName}`);
  for (const mapName of Object.keys(state.maps)) if (!plan.maps[mapName]) lines.del.push(`delete map ${ref} ${mapName}`);

  if (reasons.length) {
    // `table … {}` makes the delete valid whatever is there; all in one transaction.
    return { ...base, mode: 'replace', why: reasons.join('; '), lines: [`table ${ref} {}`, `delete table ${ref}`, renderTable(plan)] };
  }
  const all = [...lines.newDecls, ...lines.newRules, ...lines.baseChains, ...lines.elemDel, ...lines.elemAdd, ...lines.flush, ...lines.del];
  return { ...base, mode: all.length ? 'incremental' : 'none', lines: all };
}

/** All our tables of one namespace: one diff per table (plan order, then stale ones). */
export function diffTables(plan: NftTable[], state: NftTableState[]): TableDiff[] {
  const key = (t: { family: string; name: string }) => `${t.family} ${t.name}`;
  const have = new Map(state.map((t) => [key(t), t]));
  const want = new Set(plan.map(key));
  const out = plan.map((t) => diffTable(t, have.get(key(t))));
  for (const t of state) if (!want.has(key(t))) out.push(diffTable(undefined, t));
  return out.filter((d) => d.mode !== 'none');
}

/** Statement count of a transaction (a rendered table counts its rules and declarations). */
export const countStatements = (lines: string[]) =>
  lines.reduce((n, l) => n + l.split('\n').filter((x) => x.trim() && x.trim() !== '}').length, 0);

// ---------------------------------------------------------------------------
// Which connections a change stops admitting.

const isAddrType = (t: string) => /^ipv[46]_addr$/.test(normType(t));
const isSingleAddress = (e: string) => /^\d+\.\d+\.\d+\.\d+$/.test(e) || (/^[0-9a-f:]+$/i.test(e) && e.includes(':'));

/** 'ingress' | 'egress' | 'both' from a firewall map's name (compile's convention: ingress/egress, in/eg/out). */
function direction(mapName: string): 'ingress' | 'egress' | 'both' {
  if (/ingress|^in(_|$)/i.test(mapName)) return 'ingress';
  if (/egress|^eg(_|$)|^out(_|$)/i.test(mapName)) return 'egress';
  return 'both';
}

/**
 * conntrack -D argument lists for the flows that the table changes stop
 * admitting (Neutron does the same; nft alone leaves established flows alive):
 *  - firewall (inet/bridge) verdict maps: a port whose element changed or went
 *    away (key = its device, its index, or index << 16) loses its flows in its
 *    zone: ingress → to its addresses, egress → from them;
 *  - firewall address sets (remote groups): each single address removed, both
 *    directions, in every zone on this host;
 *  - NAT (ip/ip6) address maps (floating IPs): removed or changed keys,
 *    `-d` for dnat maps, `-s` for snat maps.
 */
export function conntrackCuts(diffs: TableDiff[], firewall: FirewallPort[]): string[][] {
  const cuts = new Map<string, string[]>();
  const cut = (args: string[]) => cuts.set(args.join(' '), args);
  const zones = [...new Set(firewall.map((p) => p.zone))].sort((a, b) => a - b);
  const portOf = (key: string) => firewall.filter((p) => p.device === key || String(p.index) === key || String(p.index * 65536) === key);
  for (const d of diffs) {
    const nat = d.family === 'ip' || d.family === 'ip6';
    for (const c of d.mapChanges) {
      const [keyType, valueType] = normType(c.mapType).split(' : ');
      if (nat) {
        if (!isAddrType(keyType ?? '') || !isAddrType(valueType ?? '') || !isSingleAddress(c.key)) continue;
        if (!/snat/i.test(c.map)) cut(['-D', '-d', c.key]);
        if (!/dnat/i.test(c.map)) cut(['-D', '-s', c.key]);
        continue;
      }
      if (valueType !== 'verdict') continue;
      const dir = direction(c.map);
      for (const port of portOf(c.key)) {
        for (const a of port.addresses.map(normElement).filter(isSingleAddress)) {
          if (dir !== 'egress') cut(['-D', '-w', String(port.zone), '-d', a]);
          if (dir !== 'ingress') cut(['-D', '-w', String(port.zone), '-s', a]);
        }
      }
    }
    if (nat) continue;
    for (const r of d.setRemovals) {
      if (!isAddrType(r.setType) || !isSingleAddress(r.element)) continue;
      for (const z of zones) {
        cut(['-D', '-w', String(z), '-s', r.element]);
        cut(['-D', '-w', String(z), '-d', r.element]);
      }
    }
  }
  return [...cuts.values()];
}
