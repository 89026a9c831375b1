// What the bot file JSON Schema (GET /api/schema, the same as `lkrun schema`) says about a place
// in a YAML file: the keys that fit there and the values a key takes, with their descriptions.
// It only suggests and explains; the problems come from lkrun's own checker (POST /api/check).
import { yamlLanguage } from '@codemirror/lang-yaml';

const VALUE_NODES = new Set(['BlockMapping', 'FlowMapping', 'BlockSequence', 'FlowSequence', 'Literal',
  'QuotedLiteral', 'BlockLiteral']);
export const PLACEHOLDER = 'lkrunCursor0';

// ---- the YAML side: a plain value of the document, and the path of a node ---------------------
function scalar(node, text) {
  const raw = text.slice(node.from, node.to);
  if (node.name === 'QuotedLiteral') {
    if (raw.startsWith("'")) return raw.slice(1, -1).replace(/''/g, "'");
    try { return JSON.parse(raw); } catch (_) { return raw.slice(1, -1); }
  }
  return raw.trim();
}

function valueNode(node) {
  for (let child = node.firstChild; child; child = child.nextSibling) {
    if (VALUE_NODES.has(child.name)) return child;
  }
  return null;
}

function pairValue(pair) {
  for (let child = pair.firstChild; child; child = child.nextSibling) {
    if (child.name !== 'Key' && VALUE_NODES.has(child.name)) return child;
  }
  return null;
}

export function keyText(pair, text) {
  const key = pair.getChild('Key');
  const inner = key && valueNode(key);
  return inner ? String(scalar(inner, text)) : '';
}

export function toValue(node, text, depth = 0) {
  if (!node || depth > 64) return undefined;
  switch (node.name) {
    case 'Stream': return toValue(node.getChild('Document'), text, depth + 1);
    case 'Document': case 'Item': case 'Key': return toValue(valueNode(node), text, depth + 1);
    case 'BlockMapping': case 'FlowMapping': {
      const out = {};
      for (const pair of node.getChildren('Pair')) {
        const value = pairValue(pair);
        out[keyText(pair, text)] = value ? toValue(value, text, depth + 1) : null;
      }
      return out;
    }
    case 'BlockSequence': case 'FlowSequence':
      return node.getChildren('Item').map((item) => toValue(item, text, depth + 1));
    case 'Literal': case 'QuotedLiteral': return scalar(node, text);
    case 'BlockLiteral': return '';
    default: return undefined;
  }
}

// The keys and item indexes from the document's top down to `node` (the node's own key excluded).
export function pathOf(node, text) {
  const path = [];
  let child = node;
  for (let parent = node.parent; parent; child = parent, parent = parent.parent) {
    if (parent.name === 'Pair' && child.name !== 'Key') path.push(keyText(parent, text));
    else if (parent.name === 'Item') {
      let index = 0;
      for (let prev = parent.prevSibling; prev; prev = prev.prevSibling) if (prev.name === 'Item') index += 1;
      path.push(index);
    }
  }
  return path.reverse();
}

export function parse(text) {
  return yamlLanguage.parser.parse(text);
}

// What is being typed at `pos`: {kind: 'key' | 'value' | 'item', path, data}. The text has the
// placeholder inserted at the cursor, so that a blank line still parses as a key.
export function contextAt(text, pos) {
  const tree = parse(text);
  let node = tree.resolveInner(pos, -1);
  while (node && !['Literal', 'QuotedLiteral'].includes(node.name)) node = node.parent;
  if (!node) return null;
  const data = toValue(tree.topNode, text);
  const parent = node.parent;
  if (!parent) return null;
  if (parent.name === 'Key') return { kind: 'key', path: pathOf(parent.parent, text), data };
  if (parent.name === 'Pair') {
    const key = parent.getChild('Key');
    if (key && text.slice(key.to, node.from).includes('\n')) return { kind: 'key', path: pathOf(node, text), data };
    return { kind: 'value', path: pathOf(node, text), data };
  }
  if (parent.name === 'Item') return { kind: 'item', path: pathOf(node, text), data };
  return { kind: 'key', path: pathOf(node, text), data };
}

// The thing under the mouse: a key (its path includes it) or a scalar value.
export function hoverAt(text, pos, side) {
  const tree = parse(text);
  let node = tree.resolveInner(pos, side);
  while (node && !['Literal', 'QuotedLiteral'].includes(node.name)) node = node.parent;
  if (!node || !node.parent) return null;
  const data = toValue(tree.topNode, text);
  if (node.parent.name === 'Key') {
    const pair = node.parent.parent;
    return { kind: 'key', path: [...pathOf(pair, text), keyText(pair, text)], data, from: node.from, to: node.to };
  }
  return { kind: 'value', path: pathOf(node, text), value: scalar(node, text), data, from: node.from, to: node.to };
}

function get(data, path) {
  let value = data;
  for (const part of path) value = value !== null && typeof value === 'object' ? value[part] : undefined;
  return value;
}

function setAt(data, path, value) {
  if (!path.length) return value;
  const [head, ...rest] = path;
  const base = data !== null && typeof data === 'object' ? data : (typeof head === 'number' ? [] : {});
  const copy = Array.isArray(base) ? [...base] : { ...base };
  copy[head] = setAt(copy[head], rest, value);
  return copy;
}

// ---- the schema side -----------------------------------------------------------------------------
export class SchemaIndex {
  constructor(root) {
    this.root = root;
    this.env = root.$defs && root.$defs.env;
    this.stageTypes = (root.$defs && root.$defs.stage_types) || {};
  }

  pointer(ref) {
    if (typeof ref !== 'string' || !ref.startsWith('#/')) return null;
    let node = this.root;
    for (const part of ref.slice(2).split('/')) {
      node = node && node[part.replace(/~1/g, '/').replace(/~0/g, '~')];
    }
    return node || null;
  }

  // every schema that applies to `value`: through $ref, anyOf, oneOf, allOf and if/then
  expand(schema, value, out = [], depth = 0) {
    if (!schema || typeof schema !== 'object' || depth > 16 || out.includes(schema)) return out;
    out.push(schema);
    if (schema.$ref) this.expand(this.pointer(schema.$ref), value, out, depth + 1);
    for (const key of ['anyOf', 'oneOf', 'allOf']) {
      for (const sub of schema[key] || []) this.expand(sub, value, out, depth + 1);
    }
    if (schema.if && schema.then && this.matches(schema.if, value)) this.expand(schema.then, value, out, depth + 1);
    return out;
  }

  // a small `if`: required keys present, constant properties equal (an absent key does not match)
  matches(condition, value) {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
    for (const key of condition.required || []) if (!(key in value)) return false;
    for (const [key, sub] of Object.entries(condition.properties || {})) {
      if (!(key in value)) return false;
      if ('const' in sub && value[key] !== sub.const) return false;
      if (sub.enum && !sub.enum.includes(value[key])) return false;
    }
    return true;
  }

  child(schemas, key, value) {
    const out = [];
    for (const schema of schemas) {
      let sub = null;
      if (typeof key === 'number') {
        sub = (schema.prefixItems && schema.prefixItems[key]) || (typeof schema.items === 'object' ? schema.items : null);
      } else if (schema.properties && schema.properties[key]) {
        sub = schema.properties[key];
      } else if (schema.patternProperties) {
        for (const [pattern, s] of Object.entries(schema.patternProperties)) {
          try { if (new RegExp(pattern, 'u').test(key)) { sub = s; break; } } catch (_) { /* skip */ }
        }
      }
      if (!sub && typeof key !== 'number' && typeof schema.additionalProperties === 'object') {
        sub = schema.additionalProperties;
      }
      if (sub) this.expand(sub, value, out);
    }
    return out;
  }

  at(path, data) {
    let schemas = this.expand(this.root, data);
    let value = data;
    for (const part of path) {
      value = value !== null && typeof value === 'object' ? value[part] : undefined;
      schemas = this.child(schemas, part, value);
      if (!schemas.length) break;
    }
    return schemas;
  }

  describe(schemas) {
    const description = schemas.find((s) => s !== this.env && typeof s.description === 'string');
    const types = new Set();
    let fallback = null;
    let deprecated = false;
    for (const s of schemas) {
      if (s === this.env || (s.pattern && s.pattern === (this.env || {}).pattern)) continue;
      for (const t of [].concat(s.type || [])) types.add(t);
      if ('default' in s && s.default !== null && fallback === null) fallback = s.default;
      if (s.deprecated) deprecated = true;
    }
    const facts = [];
    if (types.size) facts.push([...types].join(' or '));
    if (fallback !== null) facts.push(`default ${JSON.stringify(fallback)}`);
    return { text: description ? description.description : '', facts: facts.join(', '), deprecated };
  }

  // the keys that fit in the mapping at `path`, each with what it is
  keys(path, data) {
    const schemas = this.at(path, data);
    const here = get(data, path);
    const present = here !== null && typeof here === 'object' && !Array.isArray(here) ? here : {};
    // once a key is there (an action's), only what goes with it; else every key the place allows
    const typed = Object.keys(present).some((k) => !k.includes(PLACEHOLDER));
    const names = new Set();
    const listed = new Set();  // named by a propertyNames list only: kept when a schema describes it
    for (const s of schemas) {
      for (const name of Object.keys(s.properties || {})) names.add(name);
      if (!typed) for (const name of (s.propertyNames && s.propertyNames.enum) || []) listed.add(name);
    }
    const out = [];
    for (const name of new Set([...names, ...listed])) {
      if (name.includes(PLACEHOLDER) || (name in present && present[name] !== null)) continue;
      // described as if it were there (an action's schema applies once its key is present)
      const probe = setAt(data, path, { ...Object.fromEntries(Object.entries(present)
        .filter(([k]) => !k.includes(PLACEHOLDER))), [name]: null });
      const found = this.at([...path, name], probe);
      if (!names.has(name) && !found.length) continue;  // a companion key (an 'if' action's 'then')
      out.push({ name, ...this.describe(found) });
    }
    return out;
  }

  // the values the key at `path` takes (enums, constants, booleans), a stage type with its description
  values(path, data) {
    const out = new Map();
    for (const s of this.at(path, data)) {
      for (const v of s.enum || []) out.set(String(v), this.valueInfo(v));
      if ('const' in s) out.set(String(s.const), this.valueInfo(s.const));
      for (const t of [].concat(s.type || [])) {
        if (t === 'boolean') { out.set('true', { text: '' }); out.set('false', { text: '' }); }
      }
    }
    return [...out].map(([name, info]) => ({ name, ...info }));
  }

  valueInfo(value) {
    const stage = typeof value === 'string' && this.stageTypes[value];
    return { text: stage && stage.description ? stage.description : '' };
  }
}
