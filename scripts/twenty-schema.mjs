// Rebuilds the GraphQL schema (SDL) of Twenty's `/metadata` API from the client Twenty publishes on npm,
// `twenty-client-sdk`, versioned like the server. Usage:
//
//   node scripts/twenty-schema.mjs <unpacked package dir> <output .graphql>
//
// Two generated files of the package carry the schema between them:
// - `dist/metadata.mjs` holds genql's type map: every type, every field with its type, and every argument with
//   its full GraphQL typing ("[UUID!]!"); which types are leaves (scalars and enums); union members and
//   interface implementations as `on_<Type>` fields. It is evaluated as the JavaScript literal it is.
// - `dist/metadata/generated/schema.d.ts` adds what the type map drops: nullability and list wrappers of
//   object and input fields (`name?: T` is nullable, `T[]` a list) and the values of enums.
// Every field of the type map must be found in schema.d.ts, or the step fails: a parse that silently loses
// information would validate documents against a schema Twenty does not have.
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';

const [packageDir, output] = process.argv.slice(2);
if (!packageDir || !output) {
  console.error('usage: node scripts/twenty-schema.mjs <package dir> <output .graphql>');
  process.exit(2);
}
const fail = (message) => {
  console.error(`twenty-schema: ${message}`);
  process.exit(1);
};

// ---- the type map --------------------------------------------------------------------------------------------
const bundle = readFileSync(join(packageDir, 'dist/metadata.mjs'), 'utf8');
const typeMap = evaluateLiteral(bundle, /\{\s*scalars:\s*\[/);
if (!typeMap.types || !typeMap.scalars) fail('no type map (scalars, types) in dist/metadata.mjs');
const typeNames = Object.keys(typeMap.types);
const nameOf = (index) => {
  const name = typeNames[index];
  if (name === undefined) fail(`type index ${index} is out of range`);
  return name;
};
const leaves = new Set(typeMap.scalars.map(nameOf));

/** Evaluates the object literal that starts where `start` matches (a data-only literal: numbers, strings). */
function evaluateLiteral(text, start) {
  const match = start.exec(text);
  if (!match) fail(`no match for ${start}`);
  let depth = 0;
  let quote = null;
  for (let i = match.index; i < text.length; i++) {
    const c = text[i];
    if (quote) {
      if (c === '\\') i++;
      else if (c === quote) quote = null;
    } else if (c === '"' || c === "'" || c === '`') quote = c;
    else if (c === '{' || c === '[') depth++;
    else if (c === '}' || c === ']') {
      depth--;
      if (depth === 0) return Function(`"use strict"; return (${text.slice(match.index, i + 1)});`)();
    }
  }
  fail('unterminated type map literal');
}

// ---- schema.d.ts: field wrappers and enum values ---------------------------------------------------------------
const declarations = readFileSync(join(packageDir, 'dist/metadata/generated/schema.d.ts'), 'utf8');
const enums = new Map();
const interfaces = new Map();
{
  let current = null;
  for (const line of declarations.split('\n')) {
    const enumMatch = /^export type (\w+) = ('.*');$/.exec(line);
    if (enumMatch) {
      enums.set(enumMatch[1], [...enumMatch[2].matchAll(/'([^']*)'/g)].map((m) => m[1]));
      continue;
    }
    const open = /^export interface (\w+) \{$/.exec(line);
    if (open) {
      current = new Map();
      interfaces.set(open[1], current);
      continue;
    }
    if (line === '}') {
      current = null;
      continue;
    }
    const member = current && /^ {4}(\w+)(\?)?: (.+);$/.exec(line);
    if (member) current.set(member[1], { optional: member[2] === '?', type: member[3] });
  }
}

/** `{ list: [elementNullable…], nullable }` of a schema.d.ts field type such as `(Scalars['UUID'][] | null)`. */
function wrappers(declared, optional) {
  let text = declared.trim();
  let nullable = optional;
  const orNull = /^\((.*) \| null\)$/.exec(text);
  if (orNull) {
    text = orNull[1];
    nullable = true;
  }
  const lists = [];
  while (text.endsWith('[]')) {
    text = text.slice(0, -2);
    const inner = /^\((.*) \| null\)$/.exec(text);
    if (inner) text = inner[1];
    lists.unshift(Boolean(inner));
  }
  return { nullable, lists };
}

/** The SDL type of `name` wrapped as schema.d.ts declares it (`lists[i]`: whether that list's items may be null). */
function render(name, { nullable, lists }) {
  let text = name;
  for (let depth = lists.length - 1; depth >= 0; depth--) text = `[${text}${lists[depth] ? '' : '!'}]`;
  return nullable ? text : `${text}!`;
}

// ---- kinds ---------------------------------------------------------------------------------------------------
const BUILT_IN = new Set(['String', 'Int', 'Float', 'Boolean', 'ID']);
const fieldsOf = (name) => Object.entries(typeMap.types[name] || {}).filter(([field]) => field !== '__typename');
const isEnum = (name) => leaves.has(name) && enums.has(name);

// Input objects: argument types and, transitively, the types of their fields.
const inputs = new Set();
{
  const queue = [];
  for (const name of typeNames) {
    for (const [, entry] of fieldsOf(name)) {
      for (const [, argument] of Object.entries(entry?.[1] || {})) {
        if (argument) queue.push(nameOf(argument[0]));
      }
    }
  }
  while (queue.length > 0) {
    const name = queue.pop();
    if (leaves.has(name) || inputs.has(name)) continue;
    inputs.add(name);
    for (const [, entry] of fieldsOf(name)) if (entry) queue.push(nameOf(entry[0]));
  }
}

const unions = new Map();
const interfaceTypes = new Map();
const implementsOf = new Map();
for (const name of typeNames) {
  if (leaves.has(name) || inputs.has(name)) continue;
  const fields = fieldsOf(name);
  const members = fields.filter(([field]) => field.startsWith('on_')).map(([field]) => field.slice(3));
  if (members.length === 0) continue;
  if (members.length === fields.length) unions.set(name, members);
  else {
    interfaceTypes.set(name, members);
    for (const member of members) implementsOf.set(member, [...(implementsOf.get(member) || []), name]);
  }
}

// ---- SDL -----------------------------------------------------------------------------------------------------
const missing = [];
const typeOfField = (owner, field, target) => {
  // An interface is a union alias in schema.d.ts: its fields are declared on the types implementing it.
  const declared =
    interfaces.get(owner)?.get(field) ??
    (interfaceTypes.get(owner) || []).map((member) => interfaces.get(member)?.get(field)).find(Boolean);
  if (!declared) {
    missing.push(`${owner}.${field}`);
    return target;
  }
  return render(target, wrappers(declared.type, declared.optional));
};

const out = [
  `# Twenty's /metadata schema, rebuilt by scripts/twenty-schema.mjs from twenty-client-sdk@${
    JSON.parse(readFileSync(join(packageDir, 'package.json'), 'utf8')).version
  }. Generated; do not edit.`,
];
for (const name of typeNames) {
  if (leaves.has(name)) {
    if (isEnum(name)) out.push(`enum ${name} {\n${enums.get(name).map((v) => `  ${v}`).join('\n')}\n}`);
    else if (!BUILT_IN.has(name)) out.push(`scalar ${name}`);
    continue;
  }
  if (unions.has(name)) {
    out.push(`union ${name} = ${unions.get(name).join(' | ')}`);
    continue;
  }
  const fields = fieldsOf(name).filter(([field, entry]) => entry && !field.startsWith('on_'));
  if (fields.length === 0) continue;
  const lines = fields.map(([field, [target, args]]) => {
    const type = typeOfField(name, field, nameOf(target));
    if (inputs.has(name)) return `  ${field}: ${type}`;
    const argumentList = Object.entries(args || {})
      .filter(([, argument]) => argument)
      .map(([arg, [argType, typing]]) => `${arg}: ${typing || nameOf(argType)}`);
    return `  ${field}${argumentList.length ? `(${argumentList.join(', ')})` : ''}: ${type}`;
  });
  const keyword = inputs.has(name) ? 'input' : interfaceTypes.has(name) ? 'interface' : 'type';
  const implemented = implementsOf.get(name);
  const clause = implemented ? ` implements ${implemented.join(' & ')}` : '';
  out.push(`${keyword} ${name}${clause} {\n${lines.join('\n')}\n}`);
}
if (missing.length > 0) {
  fail(`${missing.length} field(s) of the type map are not in schema.d.ts, e.g. ${missing.slice(0, 5).join(', ')}`);
}
for (const root of ['Query', 'Mutation']) if (!typeMap.types[root]) fail(`no ${root} type`);
mkdirSync(dirname(output), { recursive: true });
writeFileSync(output, `${out.join('\n\n')}\n`);
console.log(`twenty-schema: ${typeNames.length} types (${inputs.size} inputs, ${enums.size} enums) → ${output}`);
