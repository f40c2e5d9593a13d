import { useState } from "preact/hooks";
import { Check, ChevronRight } from "lucide";
import { Icon } from "./icon";

/** A collapsible JSON tree: objects and arrays fold; the first `openDepth` levels start open. */
export function JsonTree({ value, openDepth = 2 }: { value: unknown; openDepth?: number }) {
  return (
    <div class="json-tree" data-testid="json-tree">
      <JsonNode value={value} depth={0} openDepth={openDepth} />
    </div>
  );
}

function JsonNode({ name, value, depth, openDepth, last = true }: { name?: string; value: unknown; depth: number; openDepth: number; last?: boolean }) {
  const [open, setOpen] = useState(depth < openDepth);
  const key = name !== undefined ? <span class="json-key">{JSON.stringify(name)}: </span> : null;
  const comma = last ? "" : ",";
  if (value === null || typeof value !== "object") {
    return (
      <div class="json-line">
        {key}
        <JsonScalar value={value} />
        {comma}
      </div>
    );
  }
  const isArray = Array.isArray(value);
  const entries: [string, unknown][] = isArray ? (value as unknown[]).map((v, i) => [String(i), v]) : Object.entries(value as object);
  const [openBrace, closeBrace] = isArray ? ["[", "]"] : ["{", "}"];
  if (entries.length === 0) {
    return (
      <div class="json-line">
        {key}
        <span class="json-punct">
          {openBrace}
          {closeBrace}
        </span>
        {comma}
      </div>
    );
  }
  return (
    <div class="json-node">
      <div class="json-line json-toggle" onClick={() => setOpen(!open)}>
        <span class={`json-caret ${open ? "is-open" : ""}`}>
          <Icon icon={ChevronRight} size={12} />
        </span>
        {key}
        <span class="json-punct">{openBrace}</span>
        {!open && (
          <>
            <span class="json-summary">{isArray ? `${entries.length} items` : `${entries.length} keys`}</span>
            <span class="json-punct">{closeBrace}</span>
            {comma}
          </>
        )}
      </div>
      {open && (
        <>
          <div class="json-children">
            {entries.map(([k, v], i) => (
              <JsonNode key={k} name={isArray ? undefined : k} value={v} depth={depth + 1} openDepth={openDepth} last={i === entries.length - 1} />
            ))}
          </div>
          <div class="json-line">
            <span class="json-punct">{closeBrace}</span>
            {comma}
          </div>
        </>
      )}
    </div>
  );
}

function JsonScalar({ value }: { value: unknown }) {
  if (value === null) return <span class="json-null">null</span>;
  switch (typeof value) {
    case "string":
      return <span class="json-string">{JSON.stringify(value)}</span>;
    case "number":
      return <span class="json-number">{String(value)}</span>;
    case "boolean":
      return <span class="json-bool">{String(value)}</span>;
    default:
      return <span class="json-null">{String(value)}</span>;
  }
}

export type Parsed = { ok: true; value: unknown } | { ok: false; error: string };

/** Where JSON text first goes wrong: [index, what was expected]. A small validating scanner, so the
 * message can name a line and column whatever the browser's own JSON.parse message says. */
function locateJsonError(text: string): [number, string] {
  let i = 0;
  const ws = () => {
    while (i < text.length && " \t\n\r".includes(text[i])) i++;
  };
  const fail = (what: string): never => {
    throw [i, what];
  };
  const literal = (word: string) => {
    if (text.startsWith(word, i)) i += word.length;
    else fail("a value");
  };
  const string = () => {
    i++;
    while (i < text.length && text[i] !== '"') {
      if (text[i] === "\\") i++;
      else if (text.charCodeAt(i) < 32) fail("a closing quote (strings cannot span lines)");
      i++;
    }
    if (i >= text.length) fail("a closing quote");
    i++;
  };
  const number = () => {
    const match = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i));
    if (!match) fail("a value");
    i += match![0].length;
  };
  const value = (): void => {
    ws();
    const c = text[i];
    if (c === "{") {
      i++;
      ws();
      if (text[i] === "}") return void i++;
      for (;;) {
        ws();
        if (text[i] !== '"') fail("a property name in double quotes");
        string();
        ws();
        if (text[i] !== ":") fail("':'");
        i++;
        value();
        ws();
        if (text[i] === ",") {
          i++;
          continue;
        }
        if (text[i] === "}") return void i++;
        fail("',' or '}'");
      }
    }
    if (c === "[") {
      i++;
      ws();
      if (text[i] === "]") return void i++;
      for (;;) {
        value();
        ws();
        if (text[i] === ",") {
          i++;
          continue;
        }
        if (text[i] === "]") return void i++;
        fail("',' or ']'");
      }
    }
    if (c === '"') return string();
    if (c === "-" || (c >= "0" && c <= "9")) return number();
    if (c === "t") return literal("true");
    if (c === "f") return literal("false");
    if (c === "n") return literal("null");
    fail(c === undefined ? "a value (the text ends early)" : "a value (strings need double quotes)");
  };
  try {
    value();
    ws();
    if (i < text.length) fail("the end of the JSON");
  } catch (error) {
    if (Array.isArray(error)) return error as [number, string];
    throw error;
  }
  return [text.length, "valid JSON"];
}

/** Parse JSON with an error that says where: "line 3, column 11: expected a value, found 'p'". */
export function parseJson(text: string, requireObject = true): Parsed {
  if (!text.trim()) return requireObject ? { ok: true, value: {} } : { ok: false, error: "Empty: enter a JSON value" };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    const [index, expected] = locateJsonError(text);
    const before = text.slice(0, index).split("\n");
    const found = index < text.length ? `found ${JSON.stringify(text[index])}` : "found the end";
    const where = `line ${before.length}, column ${before[before.length - 1].length + 1}`;
    return {
      ok: false,
      error: expected === "valid JSON" ? `Invalid JSON: ${(error as Error).message}` : `Invalid JSON at ${where}: expected ${expected}, ${found}`,
    };
  }
  if (requireObject && (value === null || typeof value !== "object" || Array.isArray(value))) {
    return { ok: false, error: 'The data must be a JSON object, like {"userId": "u1"}' };
  }
  return { ok: true, value };
}

/** A JSON textarea with live validation and a clear error line. */
export function JsonEditor({ value, onInput, rows = 8, testId }: { value: string; onInput: (text: string) => void; rows?: number; testId?: string }) {
  const parsed = parseJson(value);
  return (
    <div class={`json-editor ${parsed.ok ? "is-valid" : "is-invalid"}`}>
      <textarea
        class="input mono"
        rows={rows}
        spellcheck={false}
        value={value}
        data-testid={testId}
        aria-invalid={!parsed.ok}
        onInput={(e) => onInput((e.target as HTMLTextAreaElement).value)}
        onKeyDown={(e) => {
          if (e.key === "Tab") {
            e.preventDefault();
            const area = e.target as HTMLTextAreaElement;
            const { selectionStart: start, selectionEnd: end } = area;
            const next = `${value.slice(0, start)}  ${value.slice(end)}`;
            onInput(next);
            requestAnimationFrame(() => area.setSelectionRange(start + 2, start + 2));
          }
        }}
      />
      <div class={`json-status ${parsed.ok ? "ok" : "bad"}`} data-testid={testId ? `${testId}-status` : undefined}>
        {parsed.ok ? <><Icon icon={Check} size={13} /> Valid JSON object</> : parsed.error}
      </div>
    </div>
  );
}
